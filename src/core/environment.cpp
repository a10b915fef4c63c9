#include "deltann/environment.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "deltann/error.h"

namespace deltann {
namespace {

// Knobs every engine shares come first in the canonical text, in this order.
constexpr std::array<const char*, 4> kCommonKnobs = {"opt", "device", "precision", "threads"};

bool is_name(const std::string& s) {
  if (s.empty() || !std::islower(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::islower(c) || std::isdigit(c) || c == '_' || c == '-';
  });
}

bool is_value(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '+' || c == '-' || c == ':';
  });
}

bool is_version(const std::string& s) {
  return !s.empty() && std::isdigit(static_cast<unsigned char>(s[0])) &&
         std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return std::isdigit(c) || c == '.'; });
}

[[noreturn]] void fail(const std::string& text, const std::string& why) {
  throw Error(
      "invalid environment '" + text + "': " + why +
      " (expected framework[@chain-or-version][:key=value,...], e.g. ort:opt=all,threads=2)");
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at - start));
    if (at == std::string::npos) break;
    start = at + sep.size();
  }
  return parts;
}

}  // namespace

std::string Environment::knob(const std::string& key, const std::string& fallback) const {
  const auto it = knobs.find(key);
  return it == knobs.end() ? fallback : it->second;
}

std::string Environment::to_string() const {
  std::string text = framework;
  if (!version.empty()) text += "@" + version;
  if (!conversion.empty()) {
    text += "@";
    for (size_t i = 0; i < conversion.size(); ++i) text += (i ? ">" : "") + conversion[i];
  }
  std::vector<std::string> parts;
  for (const char* key : kCommonKnobs)
    if (knobs.count(key)) parts.push_back(std::string(key) + "=" + knobs.at(key));
  for (const auto& [key, value] : knobs)
    if (std::find(kCommonKnobs.begin(), kCommonKnobs.end(), key) == kCommonKnobs.end())
      parts.push_back(key + "=" + value);
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? "," : ":") + parts[i];
  return text;
}

Environment parse_environment(const std::string& text) {
  if (text.empty()) fail(text, "it is empty");
  Environment env;
  const size_t colon = text.find(':');
  std::string head = text.substr(0, colon);
  const std::string tail = colon == std::string::npos ? "" : text.substr(colon + 1);

  const size_t at = head.find('@');
  env.framework = head.substr(0, at);
  if (!is_name(env.framework))
    fail(text, "framework '" + env.framework + "' must be a lower-case name");
  if (at != std::string::npos) {
    std::string qualifier = head.substr(at + 1);
    if (qualifier.empty()) fail(text, "nothing after '@'");
    if (is_version(qualifier)) {
      env.version = qualifier;
    } else {
      // Accept the arrow (U+2192) that docs/ENVIRONMENTS.md may print as well as the ASCII '>'.
      const auto pieces = split(qualifier, "\xE2\x86\x92");
      std::string chain;
      for (size_t i = 0; i < pieces.size(); ++i) chain += (i ? ">" : "") + pieces[i];
      for (const auto& step : split(chain, ">")) {
        if (!is_name(step)) fail(text, "conversion step '" + step + "' is not a framework name");
        env.conversion.push_back(step);
      }
    }
  }
  if (colon != std::string::npos) {
    if (tail.empty()) fail(text, "nothing after ':'");
    for (const auto& pair : split(tail, ",")) {
      const size_t eq = pair.find('=');
      if (eq == std::string::npos) fail(text, "'" + pair + "' is not key=value");
      const std::string key = pair.substr(0, eq);
      const std::string value = pair.substr(eq + 1);
      if (!is_name(key)) fail(text, "'" + key + "' is not a knob name");
      if (!is_value(value)) fail(text, "knob '" + key + "' has an empty or invalid value");
      if (!env.knobs.emplace(key, value).second) fail(text, "knob '" + key + "' is given twice");
    }
  }
  return env;
}

}  // namespace deltann
