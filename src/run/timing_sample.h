// The campaign's timing sample: which images are timed (warm-up and repeats) and which run once
// for their outputs only (docs/ANALYSIS.md, "Timing sample").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace deltann {

// An image of this run that may be timed.
struct SampleCandidate {
  int64_t id = 0;            // its row
  std::string sha256;        // of the image file's content
  std::string key;           // its key in the dataset, to break ties between equal contents
  bool in_sample = false;    // already in the database's sample (images.timed)
  bool has_results = false;  // some variant already stored a result for it
};

// The ids of the candidates that are timed in this run: those already in the sample (an image
// never leaves it, its results were timed), then, while fewer than `size` (nullopt: no limit),
// the others in ascending order of content hash (then key), leaving out those that already have
// results, which were stored untimed and cannot be timed after the fact for every variant. The
// order of content hashes is a deterministic pseudo-random order that does not depend on file
// names or the order of the dataset, so the same images give the same sample. Returned in
// ascending hash order.
std::vector<int64_t> choose_timing_sample(std::vector<SampleCandidate> candidates,
                                          std::optional<int64_t> size);

// "50" or "all", as the timing setting and messages write a sample size.
std::string timing_images_text(std::optional<int64_t> size);

}  // namespace deltann
