#include "roofline.h"

#include <charconv>

namespace deltann {
namespace {

// The variant's thread count; 1 when the knob is absent or not a positive number.
int threads_of(const std::map<std::string, std::string>& knobs) {
  const auto it = knobs.find("threads");
  if (it == knobs.end()) return 1;
  int threads = 0;
  const auto [end, error] =
      std::from_chars(it->second.data(), it->second.data() + it->second.size(), threads);
  return error == std::errc() && end == it->second.data() + it->second.size() && threads > 0
             ? threads
             : 1;
}

bool on_cpu(const std::map<std::string, std::string>& knobs) {
  const auto it = knobs.find("device");
  return it == knobs.end() || it->second == "cpu";
}

}  // namespace

Roofline roofline(std::optional<int64_t> flops, std::optional<double> median_ms,
                  const std::map<std::string, std::string>& knobs,
                  const std::optional<CpuPeak>& peak) {
  Roofline r;
  if (flops && median_ms && *median_ms > 0)
    r.gflops = static_cast<double>(*flops) / (*median_ms * 1e6);  // FLOP / ms = 1e-6 GFLOP/s
  if (peak && on_cpu(knobs)) {
    r.peak_gflops = peak_gflops(*peak, threads_of(knobs));
    if (r.gflops) r.peak_share = *r.gflops / *r.peak_gflops;
  }
  return r;
}

}  // namespace deltann
