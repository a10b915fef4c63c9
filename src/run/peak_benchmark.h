// Measuring one core's single-precision FMA peak with a short microbenchmark, cached per CPU
// model: `deltann run` records the result with the campaign (meta `cpu_peak`,
// deltann/cpu_peak.h) as the denominator of every variant's share of peak.
#pragma once

#include <filesystem>
#include <string>

#include "deltann/cpu_peak.h"

namespace deltann {

// Runs independent chains of fused multiply-adds in the widest vector registers the CPU has
// (AVX-512, else AVX2 with FMA, chosen at run time; elsewhere the compiler's generic vectors) on
// the calling thread, and returns the best rate of a few short repeats: about 300 ms in all.
CpuPeak measure_cpu_peak();

// What identifies a CPU's peak: its model name and feature flags (/proc/cpuinfo).
std::string cpu_identity();

// The peak of this CPU from `cache_dir`/cpu-peak/, measured and stored there the first time (a
// cache that cannot be written is only a lost saving; an unreadable entry is measured again).
CpuPeak cached_cpu_peak(const std::filesystem::path& cache_dir);

}  // namespace deltann
