#include "run/peak_benchmark.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "deltann/hash.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;

// Independent accumulator chains: enough to cover the FMA latency (4 cycles) times the FMA units
// (2) of current cores, few enough to stay in registers (16 of AVX2's, 32 of AVX-512's).
constexpr int kChains = 12;

// Each kernel runs `iterations` rounds of kChains vector FMAs and returns a value that depends on
// every one of them, so the compiler cannot drop the work. The multiplier is just below 1 and the
// addend small, so the values settle instead of overflowing or becoming subnormal.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) float fma_avx512(int64_t iterations) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(1.0f + 0.01f * static_cast<float>(c));
  const __m512 scale = _mm512_set1_ps(0.9999f), offset = _mm512_set1_ps(1e-4f);
  for (int64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16  // every chain in its own register, not in memory
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], scale, offset);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float lanes[16];  // not _mm512_reduce_add_ps, which GCC 12 warns about
  _mm512_store_ps(lanes, sum);
  float total = 0;
  for (const float lane : lanes) total += lane;
  return total;
}
constexpr double kAvx512Flops = kChains * 16 * 2;  // per iteration: 16 floats, 2 operations each

__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iterations) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(1.0f + 0.01f * static_cast<float>(c));
  const __m256 scale = _mm256_set1_ps(0.9999f), offset = _mm256_set1_ps(1e-4f);
  for (int64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16  // every chain in its own register, not in memory
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], scale, offset);
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (const float lane : lanes) total += lane;
  return total;
}
constexpr double kAvx2Flops = kChains * 8 * 2;
#endif

// The portable kernel: 128-bit vectors of the compiler's vector extension; a * b + c becomes a
// fused multiply-add where the target has one (GCC and Clang contract it by default).
using Generic = float __attribute__((vector_size(16)));
float fma_generic(int64_t iterations) {
  Generic acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = Generic{} + (1.0f + 0.01f * static_cast<float>(c));
  const Generic scale = Generic{} + 0.9999f, offset = Generic{} + 1e-4f;
  for (int64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16  // every chain in its own register, not in memory
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * scale + offset;
  float total = 0;
  for (int c = 0; c < kChains; ++c) total += acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3];
  return total;
}
constexpr double kGenericFlops = kChains * 4 * 2;

// The CPU time this thread has used, in seconds: time the scheduler gave to other processes is
// not in it, so a busy machine does not lower the measured peak.
double thread_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// The best GFLOP/s of `kernel` over a few repeats of about 60 ms of CPU time each: the best,
// because what remains of other processes' interference (a shared core's other hardware thread,
// caches, interrupts) can only slow a repeat down.
double best_rate(float (*kernel)(int64_t), double flops_per_iteration) {
  volatile float sink = 0;
  const auto seconds = [&](int64_t iterations) {
    const double start = thread_seconds();
    sink = sink + kernel(iterations);
    return std::max(thread_seconds() - start, 1e-9);
  };
  // Calibrate: grow the round count until one run takes a measurable time.
  int64_t iterations = 1 << 14;
  while (seconds(iterations) < 0.01 && iterations < (int64_t{1} << 40)) iterations *= 2;
  iterations *= 6;  // about 60 ms
  double best = 0;
  for (int repeat = 0; repeat < 4; ++repeat)
    best = std::max(
        best, flops_per_iteration * static_cast<double>(iterations) / seconds(iterations) / 1e9);
  return best;
}

std::string cpuinfo_field(const std::string& name) {
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind(name, 0) == 0 && line.find(':') != std::string::npos) {
      const auto colon = line.find(':');
      return line.substr(std::min(line.size(), colon + 2));
    }
  return "";
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
}

}  // namespace

CpuPeak measure_cpu_peak() {
  CpuPeak peak;
  peak.cpu = cpuinfo_field("model name");
  peak.cores = usable_cpus();
  peak.source = "measured";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    peak.isa = "avx512";
    peak.gflops_per_core = best_rate(fma_avx512, kAvx512Flops);
  }
  // Some cores split 512-bit work into two 256-bit halves or clock down for it: AVX2 may be the
  // faster way to the peak, so it is measured too and the better one kept.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    const double avx2 = best_rate(fma_avx2, kAvx2Flops);
    if (avx2 > peak.gflops_per_core) {
      peak.isa = "avx2";
      peak.gflops_per_core = avx2;
    }
  }
#endif
  if (peak.gflops_per_core <= 0) {
    peak.isa = "generic";
    peak.gflops_per_core = best_rate(fma_generic, kGenericFlops);
  }
  return peak;
}

std::string cpu_identity() {
  return cpuinfo_field("model name") + "\n" + cpuinfo_field("flags") + "\n" +
         cpuinfo_field("Features");  // Arm's name for the flags
}

CpuPeak cached_cpu_peak(const fs::path& cache_dir) {
  const fs::path file =
      cache_dir / "cpu-peak" / (sha256_text(cpu_identity()).substr(0, 16) + ".json");
  {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (in) {
      if (auto peak = parse_cpu_peak(text.str())) {
        peak->source = file.string();
        peak->cores = usable_cpus();  // the affinity of this process, not the measuring one's
        return *peak;
      }
    }
  }
  CpuPeak peak = measure_cpu_peak();
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  // Written beside and renamed, so that a concurrent reader never sees half a file.
  const fs::path partial = file.string() + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(partial);
    out << to_json(peak).dump(2) << '\n';
  }
  fs::rename(partial, file, ec);
  if (ec) fs::remove(partial, ec);
  return peak;
}

}  // namespace deltann
