#include "protocol.h"

#include <openssl/evp.h>

#include <cstring>
#include <limits>

#include "core/bounded_json.h"
#include "deltann/error.h"

namespace deltann::protocol {

std::string encode_floats(const std::vector<float>& values) {
  const size_t bytes = values.size() * sizeof(float);
  std::string text(4 * ((bytes + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                                reinterpret_cast<const unsigned char*>(values.data()),
                                static_cast<int>(bytes));
  text.resize(static_cast<size_t>(n));
  return text;
}

std::vector<float> decode_floats(const std::string& text) {
  const auto padding_at = text.find('=');
  if (text.size() % 4 != 0 || (padding_at != std::string::npos && padding_at + 2 < text.size()))
    throw Error("worker sent a malformed float vector");
  std::string bytes(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) throw Error("worker sent a malformed float vector");
  // EVP_DecodeBlock counts the padding as data; the true length is the float count times 4.
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  const size_t length = static_cast<size_t>(n) - padding;
  if (length % sizeof(float) != 0) throw Error("worker sent a float vector of odd length");
  std::vector<float> values(length / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), length);
  return values;
}

std::optional<nlohmann::json> parse_reply_line(const std::string& line) {
  nlohmann::json reply;
  try {
    reply = parse_bounded_json(line);
  } catch (const std::exception&) {  // not JSON, or nested deeper than any reply
    return std::nullopt;
  }
  if (!reply.is_object()) return std::nullopt;
  for (const char* field : {"event", "message"})
    if (reply.contains(field) && !reply.at(field).is_string()) return std::nullopt;
  return reply;
}

void check_version(const nlohmann::json& ready, const std::string& worker) {
  const auto it = ready.find("protocol");
  const bool same = it != ready.end() && it->is_number_integer() && it->get<int64_t>() == kVersion;
  if (same) return;
  const std::string theirs = it == ready.end() ? "none" : it->dump();
  throw Error(worker + " speaks worker protocol version " + theirs +
              ", but this deltann speaks version " + std::to_string(kVersion) +
              ": rebuild the worker from the same sources as deltann");
}

namespace {

// A duration in nanoseconds: JSON keeps a non-negative integer as unsigned. Reading it with get()
// instead would convert a float (1e300) to an integer, which is undefined behaviour.
int64_t nanoseconds(const nlohmann::json& value, const std::string& field) {
  if (!value.is_number_unsigned() ||
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw Error("reply field '" + field + "' is not a duration in nanoseconds: " +
                (value.is_primitive() ? value.dump() : std::string(value.type_name())));
  return static_cast<int64_t>(value.get<uint64_t>());
}

}  // namespace

LoadReply parse_load_reply(const nlohmann::json& reply) {
  LoadReply r;
  if (reply.contains("engine_version")) {
    if (!reply.at("engine_version").is_string())
      throw Error("reply field 'engine_version' is not a string");
    r.engine_version = reply.at("engine_version").get<std::string>();
  }
  if (reply.contains("load_ns")) r.load_ns = nanoseconds(reply.at("load_ns"), "load_ns");
  return r;
}

namespace {

// The timing fields, shared by a reply to one image and to a batch.
void parse_timings(const nlohmann::json& reply, std::optional<int64_t>& first_ns,
                   std::vector<int64_t>& samples_ns) {
  if (reply.contains("first_ns")) first_ns = nanoseconds(reply.at("first_ns"), "first_ns");
  if (reply.contains("samples_ns")) {
    const auto& samples = reply.at("samples_ns");
    if (!samples.is_array()) throw Error("reply field 'samples_ns' is not a list");
    for (const auto& sample : samples) samples_ns.push_back(nanoseconds(sample, "samples_ns"));
  }
}

// The fields of one image's result: its output and its repeat difference.
RunReply parse_image_result(const nlohmann::json& reply) {
  RunReply r;
  if (!reply.contains("output") || !reply.at("output").is_string())
    throw Error("reply has no 'output' string");
  r.output = decode_floats(reply.at("output").get<std::string>());
  if (reply.contains("repeat_max_abs_diff")) {
    const auto& diff = reply.at("repeat_max_abs_diff");
    if (!diff.is_number()) throw Error("reply field 'repeat_max_abs_diff' is not a number");
    r.repeat_max_abs_diff = diff.get<double>();
  }
  return r;
}

}  // namespace

RunReply parse_run_reply(const nlohmann::json& reply) {
  RunReply r = parse_image_result(reply);
  parse_timings(reply, r.first_ns, r.samples_ns);
  return r;
}

BatchReply parse_batch_reply(const nlohmann::json& reply, const std::vector<std::string>& images) {
  BatchReply b;
  const auto results = reply.find("results");
  if (results == reply.end() || !results->is_array())
    throw Error("reply to a batch has no 'results' list");
  if (results->size() != images.size())
    throw Error("reply to a batch of " + std::to_string(images.size()) + " images has " +
                std::to_string(results->size()) + " results");
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& one = results->at(i);
    if (!one.is_object() || !one.contains("image") || one.at("image") != images[i])
      throw Error("result " + std::to_string(i) + " of a batch is not for image '" + images[i] +
                  "'");
    b.results.push_back(parse_image_result(one));
  }
  const auto batch = reply.find("batch");
  const bool size = batch != reply.end() && batch->is_number_integer() &&
                    batch->get<int64_t>() >= static_cast<int64_t>(images.size()) &&
                    batch->get<int64_t>() <= (int64_t{1} << 20);
  if (!size)
    throw Error("reply field 'batch' is not a batch size of at least " +
                std::to_string(images.size()));
  b.batch = batch->get<int64_t>();
  parse_timings(reply, b.first_ns, b.samples_ns);
  return b;
}

}  // namespace deltann::protocol
