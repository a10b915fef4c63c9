#include "deltann/cpu_peak.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace deltann {

double peak_gflops(const CpuPeak& peak, int threads) {
  return std::clamp(threads, 1, std::max(peak.cores, 1)) * peak.gflops_per_core;
}

nlohmann::json to_json(const CpuPeak& peak) {
  return {{"cpu", peak.cpu},
          {"isa", peak.isa},
          {"gflops_per_core", peak.gflops_per_core},
          {"cores", peak.cores},
          {"source", peak.source}};
}

std::optional<CpuPeak> parse_cpu_peak(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("gflops_per_core") || !j["gflops_per_core"].is_number())
    return std::nullopt;
  CpuPeak peak;
  peak.gflops_per_core = j["gflops_per_core"].get<double>();
  if (!std::isfinite(peak.gflops_per_core) || peak.gflops_per_core <= 0) return std::nullopt;
  if (j.contains("cores") && j["cores"].is_number_integer())
    peak.cores = static_cast<int>(std::clamp<int64_t>(j["cores"].get<int64_t>(), 1, 1 << 20));
  for (auto [key, field] : {std::pair{"cpu", &peak.cpu}, std::pair{"isa", &peak.isa},
                            std::pair{"source", &peak.source}})
    if (j.contains(key) && j[key].is_string()) *field = j[key].get<std::string>();
  return peak;
}

}  // namespace deltann
