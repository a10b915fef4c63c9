// The machine's floating-point peak as `deltann run` measures it (src/run/peak_benchmark.h) and
// records it with the campaign (meta `cpu_peak`), so that the analysis can set each variant's
// achieved GFLOP/s against the peak at its thread count (docs/ANALYSIS.md, "FLOPs and peak").
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace deltann {

struct CpuPeak {
  std::string cpu;             // the processor's model name (/proc/cpuinfo)
  std::string isa;             // the widest FMA the benchmark used: avx512, avx2 or generic
  double gflops_per_core = 0;  // single-precision FMA peak of one core, in GFLOP/s
  int cores = 1;               // CPUs the measuring process could run on (its affinity)
  std::string source;          // "measured", or the cache file it was read from
};

// The peak at `threads` threads: min(threads, cores) times one core's peak. It assumes every core
// reaches the single-core peak at once (no frequency drop under all-core load) and that threads
// beyond the cores add nothing; a value at or below 0 threads counts as 1.
double peak_gflops(const CpuPeak& peak, int threads);

nlohmann::json to_json(const CpuPeak& peak);
// The record as meta `cpu_peak` holds it; nullopt when the text is not JSON or lacks a positive
// peak (a database from before the peak was recorded has no such key at all).
std::optional<CpuPeak> parse_cpu_peak(const std::string& text);

}  // namespace deltann
