// Worker replies (src/run/protocol.cpp): one line of a worker's standard output read as the
// campaign reads it (WorkerProcess::receive), then the fields of a `loaded` or `result` reply
// checked and decoded as the campaign does before storing them, and the base64 float vectors on
// their own.
#include <cstring>

#include "deltann/backend.h"
#include "deltann/classify.h"
#include "fuzz_util.h"
#include "run/protocol.h"

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  const std::string line(reinterpret_cast<const char*>(data), size);

  if (const auto reply = protocol::parse_reply_line(line)) {
    // Every reader asks these of any reply (the error path included) without checking types.
    const std::string event = reply->value("event", "");
    const std::string message = reply->value("message", reply->dump());
    fuzz::refusal_is_fine([&] {
      if (event == "loaded") protocol::parse_load_reply(*reply);
    });
    fuzz::refusal_is_fine([&] {
      if (event != "result") return;
      const protocol::RunReply r = protocol::parse_run_reply(*reply);
      for (const int64_t ns : r.samples_ns) fuzz::check(ns >= 0, "a timing is non-negative");
      const TopK top = top_k(r.output, 5);
      fuzz::check(top.ids.size() == std::min<size_t>(5, r.output.size()), "top-5 of the output");
    });
    // A worker's --describe line: the planner turns any exception from it into "cannot start".
    try {
      backend_info_from_json(*reply);
    } catch (const std::exception&) {
    }
  }

  // The float vector encoding alone: whatever decodes encodes back to the same floats.
  fuzz::refusal_is_fine([&] {
    const std::vector<float> values = protocol::decode_floats(line);
    fuzz::check(same_bits(protocol::decode_floats(protocol::encode_floats(values)), values),
                "decode(encode(values)) == values");
  });
  return 0;
}
