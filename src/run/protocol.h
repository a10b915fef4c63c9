// The worker protocol (docs/PROTOCOL.md): one JSON object per line, requests on the worker's
// standard input, replies on its standard output. Engines log to standard error, which the
// campaign keeps for failure messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltann::protocol {

inline constexpr int kVersion = 1;

// Float vectors travel as base64 of their little-endian bytes: exact, and NaN/Inf survive.
std::string encode_floats(const std::vector<float>& values);
std::vector<float> decode_floats(const std::string& text);

// One line of a worker's (or build tool's) standard output read as a protocol message: a JSON
// object whose "event" and "message", when present, are strings, so that every reader may ask for
// them with value(). nullopt for anything else (an engine printing to standard output, or JSON
// nested deeper than any reply: see core/bounded_json.h), which the reader keeps as log instead
// of a reply.
std::optional<nlohmann::json> parse_reply_line(const std::string& line);

// The worker protocol version a `ready` line announces must be this deltann's: a worker built
// from other sources would read requests or write replies another way. Throws Error naming the
// worker and both versions when it differs (or is missing).
void check_version(const nlohmann::json& ready, const std::string& worker);

// A `loaded` reply's fields, checked.
struct LoadReply {
  std::string engine_version;
  int64_t load_ns = 0;
};
// A `result` reply's fields, checked: `output` decoded, timings non-negative integers.
struct RunReply {
  std::vector<float> output;
  std::optional<int64_t> first_ns;
  std::vector<int64_t> samples_ns;
  std::optional<double> repeat_max_abs_diff;
};
// A `result` reply to a batched run request (docs/PROTOCOL.md, "Batches"): one RunReply per
// image, in the request's order, each with its own output and repeat difference; the timings are
// the batch's, in its own fields.
struct BatchReply {
  std::vector<RunReply> results;
  int64_t batch = 0;  // images the engine ran in one call, padding included
  std::optional<int64_t> first_ns;
  std::vector<int64_t> samples_ns;
};
// Read a reply of that event; throw Error naming the field that is missing or of the wrong type.
LoadReply parse_load_reply(const nlohmann::json& reply);
RunReply parse_run_reply(const nlohmann::json& reply);
// Also checks that the reply holds exactly `images` results, for those images in that order.
BatchReply parse_batch_reply(const nlohmann::json& reply, const std::vector<std::string>& images);

}  // namespace deltann::protocol
