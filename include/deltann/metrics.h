// Per-image metrics between two variants' outputs (docs/ANALYSIS.md defines each one).
#pragma once

#include <cstdint>
#include <vector>

#include "deltann/spec.h"

namespace deltann::metrics {

// |A ∩ B| / |A ∪ B| of two top-K id lists; 1 when both are empty.
double jaccard(const std::vector<int>& a, const std::vector<int>& b);

// Rank correlation over the union U of both top-K lists: in each list an id's rank is its position
// by score (1 = best, tied scores share the average rank); ids of U missing from a list share the
// average of the ranks after its last one. The result is Spearman's rho of the two rank vectors:
// 1 for identical rankings, 1 when |U| <= 1, and it falls as the lists reorder or disagree. A list
// whose ranks are all equal (all scores tied, nothing missing) gives 1 against another such list
// and 0 otherwise. NaN when a score is NaN; std::invalid_argument when a list's ids and scores
// differ in length.
double topk_rank_correlation(const std::vector<int>& a_ids, const std::vector<float>& a_scores,
                             const std::vector<int>& b_ids, const std::vector<float>& b_scores);

// How close the top-1 decision was: the relative gap (p1 - p2) / p1 between the two most likely
// classes, which needs only the two best scores: 1 - exp(s2 - s1) for logits (softmax cancels
// the other classes), (s1 - s2) / s1 for probabilities. 1 when there is a single score; NaN when
// a score is not finite, the list is empty, or (probabilities) s1 <= 0.
double top2_relative_gap(const std::vector<float>& top_scores, OutputKind kind);

struct NumericDifference {
  double max_abs = 0;
  double sum_abs = 0;  // with `elements`, gives the mean
  int64_t elements = 0;
  double relative_l2 = 0;  // ||a - b|| / ||a|| (0 when both are 0, inf when only a is 0)
  double cosine = 1;       // a·b / (||a|| ||b||) (1 when both are 0, 0 when only one is)
  // Smallest rtol that passes with atol = 0: max |a-b| / |b|, each quotient raised to the next
  // double when rounding put it just below what the check needs, so that every element passes
  // |a - b| <= rtol * |b| evaluated in double (inf when some b = 0 and a != b).
  double min_rtol = 0;
  int64_t failing = 0;  // elements with |a - b| > atol + rtol * |b| (numpy.allclose rule)
};
// Element-wise differences of two equally long vectors (std::invalid_argument otherwise). A NaN
// on one side only counts as an infinite difference (max_abs, sum_abs, relative_l2 and min_rtol
// inf, cosine NaN, the element fails), NaN on both sides as none (the element is left out of the
// sums and passes); infinities count as none when equal, as infinite otherwise.
NumericDifference numeric_difference(const std::vector<float>& a, const std::vector<float>& b,
                                     double atol, double rtol);

}  // namespace deltann::metrics
