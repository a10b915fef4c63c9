// From an output vector to ranked class ids.
#pragma once

#include <vector>

namespace deltann {

struct TopK {
  std::vector<int> ids;       // class ids (output index - label_offset), best first
  std::vector<float> scores;  // the output values at those indices
};

// The k largest outputs, ties broken by the lower index, NaN ranked below every number.
// Indices below `label_offset` (e.g. a background slot) are not classes and are left out.
TopK top_k(const std::vector<float>& output, int k, int label_offset = 0);

}  // namespace deltann
