#include "deltann/classify.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace deltann {

TopK top_k(const std::vector<float>& output, int k, int label_offset) {
  std::vector<int> order;
  for (int i = std::max(label_offset, 0); i < static_cast<int>(output.size()); ++i)
    order.push_back(i);
  const auto better = [&](int a, int b) {
    const float x = output[static_cast<size_t>(a)], y = output[static_cast<size_t>(b)];
    if (std::isnan(x) != std::isnan(y)) return std::isnan(y);
    if (!std::isnan(x) && x != y) return x > y;
    return a < b;
  };
  const size_t n = std::min(order.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    better);
  TopK top;
  for (size_t i = 0; i < n; ++i) {
    top.ids.push_back(order[i] - label_offset);
    top.scores.push_back(output[static_cast<size_t>(order[i])]);
  }
  return top;
}

}  // namespace deltann
