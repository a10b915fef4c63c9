#include "timing_sample.h"

#include <algorithm>

namespace deltann {

std::vector<int64_t> choose_timing_sample(std::vector<SampleCandidate> candidates,
                                          std::optional<int64_t> size) {
  std::sort(candidates.begin(), candidates.end(),
            [](const SampleCandidate& a, const SampleCandidate& b) {
              return a.sha256 != b.sha256 ? a.sha256 < b.sha256 : a.key < b.key;
            });
  int64_t chosen = std::count_if(candidates.begin(), candidates.end(),
                                 [](const SampleCandidate& c) { return c.in_sample; });
  std::vector<int64_t> sample;
  for (const auto& c : candidates) {
    if (c.in_sample) {
      sample.push_back(c.id);
    } else if (!c.has_results && (!size || chosen < *size)) {
      sample.push_back(c.id);
      ++chosen;
    }
  }
  return sample;
}

std::string timing_images_text(std::optional<int64_t> size) {
  return size ? std::to_string(*size) : "all";
}

}  // namespace deltann
