// The environment grammar (docs/ENVIRONMENTS.md), parsed in one place:
//
//   framework[@conversion-or-version][:key=value[,key=value...]]
//
// e.g. `ort:opt=all,threads=2`, `opencv:opt=off`, `tvm:opt=3,device=cuda`, `tflite@onnx>tflite`,
// `tvm@0.19:opt=4`. After '@' a token made of digits and dots is an engine version; anything else
// is a conversion chain whose steps are separated by '>' (or '→').
#pragma once

#include <map>
#include <string>
#include <vector>

namespace deltann {

struct Environment {
  std::string framework;                     // "ort", "opencv", ...
  std::string version;                       // engine version requested ("" = the installed one)
  std::vector<std::string> conversion;       // e.g. {"pytorch","onnx","tflite"}; empty = native
  std::map<std::string, std::string> knobs;  // opt, device, precision, threads and engine knobs

  // Returns the knob's value, or `fallback` when the knob is unset.
  std::string knob(const std::string& key, const std::string& fallback = "") const;
  // Canonical text: knobs in a fixed order (opt, device, precision, threads, then by name).
  std::string to_string() const;
  bool operator==(const Environment&) const = default;
};

// Parses one environment string; throws Error quoting the string and saying what is wrong.
Environment parse_environment(const std::string& text);

}  // namespace deltann
