// JSON read from files and from workers, parsed with a bound on its nesting. nlohmann's dump() and
// copies of a value recurse once per level, so a few hundred kilobytes of '[' would overflow the
// stack in whatever reads the value next; no spec or reply nests more than a handful of levels.
#pragma once

#include <algorithm>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "deltann/error.h"

namespace deltann {

inline constexpr int kMaxJsonDepth = 32;

// json::parse(input) (a string or a stream), which throws nlohmann::json::parse_error for text
// that is not JSON, and Error for JSON nested deeper than kMaxJsonDepth.
template <typename Input>
nlohmann::json parse_bounded_json(Input&& input) {
  int depth = 0;
  const auto deepest = [&](int level, nlohmann::json::parse_event_t, nlohmann::json&) {
    depth = std::max(depth, level);
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(std::forward<Input>(input), deepest);
  if (depth > kMaxJsonDepth)
    throw Error("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  return j;
}

}  // namespace deltann
