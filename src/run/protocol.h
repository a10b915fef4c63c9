// The worker protocol (docs/PROTOCOL.md): one JSON object per line, requests on the worker's
// standard input, replies on its standard output. Engines log to standard error, which the
// campaign keeps for failure messages.
#pragma once

#include <string>
#include <vector>

namespace deltann::protocol {

inline constexpr int kVersion = 1;

// Float vectors travel as base64 of their little-endian bytes: exact, and NaN/Inf survive.
std::string encode_floats(const std::vector<float>& values);
std::vector<float> decode_floats(const std::string& text);

}  // namespace deltann::protocol
