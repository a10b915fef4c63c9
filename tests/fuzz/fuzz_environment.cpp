// Environment strings (src/core/environment.cpp parse_environment, src/core/backend_info.cpp
// resolve_environment): what --env gives. An accepted string must print canonically
// (to_string) and parse back to the same environment, and resolving it against an engine's knobs
// either succeeds or says why not.
#include "deltann/backend.h"
#include "deltann/environment.h"
#include "fuzz_util.h"

namespace {

// Knobs of every kind a worker describes: fixed values, a positive integer, a '+'-joined subset,
// one left out at its default, and one value unavailable here.
deltann::BackendInfo engine() {
  deltann::BackendInfo info;
  info.name = "fuzz";
  info.version = "1.0";
  info.devices = {"cpu"};
  info.knobs = {
      {"opt", {"disable", "basic", "all"}, "all", "", false, {{"all", "not on this machine"}}},
      {"device", {"cpu", "cuda"}, "cpu", ""},
      {"threads", {}, "1", ""},
      {"disable", {"A", "B", "C"}, "none", "", true, {}, true},
  };
  return info;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  static const BackendInfo info = engine();
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::refusal_is_fine([&] {
    const Environment env = parse_environment(text);
    const std::string canonical = env.to_string();
    fuzz::check(parse_environment(canonical) == env, "parse(to_string(env)) == env");
    fuzz::check(parse_environment(canonical).to_string() == canonical, "to_string is canonical");
    const Environment resolved = resolve_environment(env, info);
    fuzz::check(parse_environment(resolved.to_string()) == resolved,
                "a resolved environment parses back to itself");
  });
  return 0;
}
