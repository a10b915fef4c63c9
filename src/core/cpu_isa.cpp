#include "deltann/cpu_isa.h"

#include <fstream>
#include <sstream>

#include "deltann/error.h"
#include "deltann/text.h"

namespace deltann {
namespace {}  // namespace

std::set<std::string> parse_cpu_flags(std::string_view cpuinfo) {
  std::istringstream in{std::string(cpuinfo)};
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    if (key != "flags") continue;
    std::istringstream words(line.substr(colon + 1));
    std::set<std::string> flags;
    for (std::string word; words >> word;) flags.insert(word);
    return flags;  // the first processor's; the kernel lists the same for each
  }
  return {};
}

const std::set<std::string>& cpu_flags() {
  static const std::set<std::string> flags = [] {
    std::ifstream in("/proc/cpuinfo");
    std::ostringstream text;
    text << in.rdbuf();
    return parse_cpu_flags(text.str());
  }();
  return flags;
}

const std::vector<std::string>& isa_level_flags(const std::string& level) {
  static const std::map<std::string, std::vector<std::string>> flags = {
      {"avx512", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}},
      {"avx2", {"avx2", "fma"}},
      {"avx", {"avx"}},
      {"sse4_2", {"sse4_2"}},
      {"baseline", {}}};
  const auto found = flags.find(level);
  if (found == flags.end()) throw Error("unknown instruction-set level '" + level + "'");
  return found->second;
}

std::string isa_missing(const std::string& level, const std::set<std::string>& flags) {
  std::vector<std::string> missing;
  for (const auto& flag : isa_level_flags(level))
    if (!flags.count(flag)) missing.push_back(flag);
  if (missing.empty()) return "";
  return "this CPU lacks " + joined(missing, ", ") + " (/proc/cpuinfo)";
}

Knob isa_knob(const std::vector<std::string>& caps,
              std::map<std::string, std::vector<std::string>> environment, const std::string& help,
              const std::set<std::string>& flags) {
  Knob knob{"isa", {"native"}, "native", help};
  knob.omit_default = true;  // variants named before the knob keep their names
  knob.environment = std::move(environment);
  for (const auto& cap : caps) {
    knob.values.push_back(cap);
    if (const std::string missing = isa_missing(cap, flags); !missing.empty())
      knob.unavailable[cap] = missing;
  }
  return knob;
}

}  // namespace deltann
