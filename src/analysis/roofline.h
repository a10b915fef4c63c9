// Each variant against the machine's roofline: the model's FLOPs over its median inference time
// (achieved GFLOP/s) and that rate's share of the CPU's peak at the variant's thread count
// (docs/ANALYSIS.md, "FLOPs and peak").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "deltann/cpu_peak.h"

namespace deltann {

struct Roofline {
  std::optional<double> gflops;       // FLOPs / median time, in GFLOP/s
  std::optional<double> peak_gflops;  // peak_gflops(peak, threads): CPU variants only
  std::optional<double> peak_share;   // gflops / peak_gflops
};

// `knobs` are the variant's environment knobs: `threads` (1 when absent) sets the peak, and a
// `device` other than cpu leaves the peak and share empty (the CPU's peak says nothing about a
// GPU). Without a FLOP count, a median time or a recorded peak, what depends on it stays empty.
Roofline roofline(std::optional<int64_t> flops, std::optional<double> median_ms,
                  const std::map<std::string, std::string>& knobs,
                  const std::optional<CpuPeak>& peak);

}  // namespace deltann
