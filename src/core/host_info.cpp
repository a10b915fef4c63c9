#include "deltann/host_info.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/cpu_isa.h"
#include "deltann/error.h"
#include "deltann/text.h"

namespace deltann {
using nlohmann::json;

namespace {

// The key of a "key : value" line of /proc/cpuinfo, without the padding before the colon.
std::string cpuinfo_key(const std::string& line, size_t colon) {
  std::string key = line.substr(0, colon);
  key.erase(key.find_last_not_of(" \t") + 1);
  return key;
}

std::string trimmed(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return "";
  const size_t last = text.find_last_not_of(" \t\r");
  return std::string(text.substr(first, last - first + 1));
}

bool is_isa_flag(const std::string& flag) {
  for (const char* prefix : {"avx", "amx", "sse", "ssse"})
    if (flag.rfind(prefix, 0) == 0) return true;
  return flag == "fma" || flag == "f16c";
}

// Additions a core makes in `additions` steps of a dependent chain, per second.
double additions_per_second(uint64_t additions) {
  uint64_t x = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < additions / 16; ++i) {
    // Sixteen additions, each waiting for the one before: the loop's own counter and branch run
    // beside the chain, so the chain's latency (one cycle an addition) sets the pace.
#if defined(__x86_64__)
    asm volatile(
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
        : "+r"(x));
#elif defined(__aarch64__)
    asm volatile(
        "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
        "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
        "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
        "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1"
        : "+r"(x));
#endif
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return static_cast<double>(x) / took.count();
}

std::optional<double> optional_number(const json& stored, const char* key) {
  const auto it = stored.find(key);
  if (it == stored.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw Error(std::string("host identity: '") + key + "' is not a number");
  return it->get<double>();
}

}  // namespace

bool HostIdentity::same_machine(const HostIdentity& other) const {
  const auto gpu_names = [](const HostIdentity& h) {
    std::vector<std::string> names;
    for (const auto& gpu : h.gpus) names.push_back(gpu.name + " " + gpu.driver);
    return names;
  };
  return host == other.host && cpu_model == other.cpu_model && isa_flags == other.isa_flags &&
         logical_cores == other.logical_cores && gpu_names(*this) == gpu_names(other);
}

const std::vector<std::string>& nvidia_smi_query() {
  static const std::vector<std::string> argv = {
      "nvidia-smi",
      "--query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem",
      "--format=csv,noheader,nounits"};
  return argv;
}

std::string parse_cpu_model(std::string_view cpuinfo) {
  std::istringstream in{std::string(cpuinfo)};
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon != std::string::npos && cpuinfo_key(line, colon) == "model name")
      return trimmed(std::string_view(line).substr(colon + 1));
  }
  return "";
}

std::optional<double> parse_cpu_mhz(std::string_view cpuinfo) {
  std::istringstream in{std::string(cpuinfo)};
  double sum = 0;
  int count = 0;
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || cpuinfo_key(line, colon) != "cpu MHz") continue;
    const std::string value = trimmed(std::string_view(line).substr(colon + 1));
    char* end = nullptr;
    const double mhz = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(mhz > 0)) continue;  // not a clock: left out
    sum += mhz;
    ++count;
  }
  if (count == 0) return std::nullopt;
  return sum / count;
}

std::vector<std::string> isa_relevant_flags(const std::set<std::string>& flags) {
  std::vector<std::string> kept;
  for (const auto& flag : flags)
    if (is_isa_flag(flag)) kept.push_back(flag);
  return kept;
}

std::string highest_isa_level(const std::set<std::string>& flags) {
  for (const char* level : {"avx512", "avx2", "avx", "sse4_2"})
    if (isa_missing(level, flags).empty()) return level;
  return "baseline";
}

std::vector<GpuIdentity> parse_nvidia_smi(std::string_view csv) {
  std::vector<GpuIdentity> gpus;
  std::istringstream lines{std::string(csv)};
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (trimmed(line).empty()) continue;
    std::vector<std::string> fields;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(trimmed(cell));
    if (fields.size() != 6)
      throw Error("nvidia-smi's line " + std::to_string(number) + " has " +
                  std::to_string(fields.size()) + " fields, not the 6 asked for: '" + line + "'");
    gpus.push_back({fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]});
  }
  return gpus;
}

HostIdentity host_from_cpuinfo(std::string_view cpuinfo) {
  HostIdentity host;
  host.cpu_model = parse_cpu_model(cpuinfo);
  const std::set<std::string> flags = parse_cpu_flags(cpuinfo);
  host.isa_flags = isa_relevant_flags(flags);
  host.isa_level = highest_isa_level(flags);
  host.cpu_mhz_reported = parse_cpu_mhz(cpuinfo);
  return host;
}

std::optional<double> measure_cpu_mhz() {
#if defined(__x86_64__) || defined(__aarch64__)
  constexpr uint64_t kAdditions = 1u << 25;  // ~13 ms at 2.5 GHz
  additions_per_second(kAdditions / 8);      // wakes the core up from a low clock
  double best = 0;
  for (int i = 0; i < 3; ++i) best = std::max(best, additions_per_second(kAdditions));
  return best / 1e6;
#else
  return std::nullopt;
#endif
}

json to_json(const HostIdentity& host) {
  json gpus = json::array();
  for (const auto& gpu : host.gpus)
    gpus.push_back({{"name", gpu.name},
                    {"driver", gpu.driver},
                    {"clock_sm_mhz", gpu.clock_sm_mhz},
                    {"clock_mem_mhz", gpu.clock_mem_mhz},
                    {"clock_max_sm_mhz", gpu.clock_max_sm_mhz},
                    {"clock_max_mem_mhz", gpu.clock_max_mem_mhz}});
  json out = {{"host", host.host},
              {"cpu_model", host.cpu_model},
              {"isa_flags", host.isa_flags},
              {"isa_level", host.isa_level},
              {"logical_cores", host.logical_cores},
              {"cpu_mhz_measured", nullptr},
              {"cpu_mhz_reported", nullptr},
              {"gpus", gpus}};
  if (host.cpu_mhz_measured) out["cpu_mhz_measured"] = *host.cpu_mhz_measured;
  if (host.cpu_mhz_reported) out["cpu_mhz_reported"] = *host.cpu_mhz_reported;
  if (!host.gpu_note.empty()) out["gpu_note"] = host.gpu_note;
  return out;
}

HostIdentity host_identity_from_json(const json& stored) {
  if (!stored.is_object()) throw Error("host identity: not a JSON object");
  const auto text = [&](const char* key) {
    const auto it = stored.find(key);
    if (it == stored.end()) return std::string();
    if (!it->is_string()) throw Error(std::string("host identity: '") + key + "' is not a string");
    return it->get<std::string>();
  };
  HostIdentity host;
  host.host = text("host");
  host.cpu_model = text("cpu_model");
  host.isa_level = text("isa_level");
  host.gpu_note = text("gpu_note");
  try {
    host.isa_flags = stored.value("isa_flags", std::vector<std::string>{});
    host.logical_cores = stored.value("logical_cores", 0);
    for (const auto& gpu : stored.value("gpus", json::array()))
      host.gpus.push_back({gpu.value("name", ""), gpu.value("driver", ""),
                           gpu.value("clock_sm_mhz", ""), gpu.value("clock_mem_mhz", ""),
                           gpu.value("clock_max_sm_mhz", ""), gpu.value("clock_max_mem_mhz", "")});
  } catch (const json::exception& e) {
    throw Error(std::string("host identity: ") + e.what());
  }
  host.cpu_mhz_measured = optional_number(stored, "cpu_mhz_measured");
  host.cpu_mhz_reported = optional_number(stored, "cpu_mhz_reported");
  return host;
}

std::string describe_host(const HostIdentity& host) {
  std::string text = host.cpu_model.empty() ? "unknown CPU" : host.cpu_model;
  if (!host.isa_level.empty()) text += " (" + host.isa_level + ")";
  text += ", " + std::to_string(host.logical_cores) + " cores";
  if (host.cpu_mhz_measured)
    text += " at " + format_double("%.0f", *host.cpu_mhz_measured) + " MHz";
  for (const auto& gpu : host.gpus)
    text += ", GPU " + gpu.name + " (driver " + gpu.driver + ", SM " + gpu.clock_sm_mhz + "/" +
            gpu.clock_max_sm_mhz + " MHz)";
  if (!host.host.empty()) text += " on " + host.host;
  return text;
}

}  // namespace deltann
