// The one element-wise comparator of two output vectors or tensors. Every place that measures how
// far two sets of numbers are apart uses it: `compare` (metrics.h), `localize`, `bisect` and the
// worker's repeat check, so that they agree on what a NaN or an infinity means.
//
// Non-finite values (docs/ANALYSIS.md, "Numeric difference of full outputs"):
// - NaN on both sides, or the same infinity on both sides: no difference (|a - b| = 0); the pair
//   passes and is left out of the norms (diff_sq, a_sq, b_sq, dot).
// - NaN on one side only, an infinity against a number, or opposite infinities: an infinite
//   difference, a "non-finite mismatch": it fails any tolerance, and max_abs, sum_abs and max_rel
//   of the whole comparison are +inf.
// For finite values |a - b| is computed in double, so results on float data are exact.
#pragma once

#include <cstdint>
#include <span>

namespace deltann {

// The pass/fail rule of numpy.allclose: an element passes when |a - b| <= atol + rtol * |b|.
struct CompareOptions {
  double atol = 0;
  double rtol = 0;
  // Whether compare_tensors finds worst_index for all-finite float vectors: a second scan that
  // adds about a quarter to the time of the pass, which `compare`, running once per image and
  // pair of variants, does without.
  bool locate_worst = true;
};

struct ValueComparison {
  int64_t elements = 0;
  double max_abs = 0;  // largest |a - b|; +inf when some element is a non-finite mismatch
  double sum_abs = 0;  // sum of |a - b| (+inf likewise); mean_abs() divides it by `elements`
  // Smallest rtol that passes every element with atol = 0: max |a - b| / |b|, each quotient
  // raised to the next double when rounding put it just below what the check needs (+inf when
  // some b = 0 and a != b, or a non-finite mismatch).
  double max_rel = 0;
  // The element with the largest |a - b| (the first non-finite mismatch when there is one, the
  // lowest index among equal ones); -1 when no element differs, or when it was not located
  // (CompareOptions::locate_worst false, and no non-finite value).
  int64_t worst_index = -1;
  int64_t failing = 0;               // elements that fail |a - b| <= atol + rtol * |b|
  int64_t nonfinite_mismatches = 0;  // elements whose difference is infinite by the rules above
  // Sums over the pairs where both sides are finite, for norms and cosines:
  // sum (a-b)^2, sum a^2, sum b^2, sum a*b.
  double diff_sq = 0, a_sq = 0, b_sq = 0, dot = 0;

  bool passes() const { return failing == 0; }
  double mean_abs() const { return elements > 0 ? sum_abs / static_cast<double>(elements) : 0; }
};

// |a - b| of one pair under the rules above: 0 for NaN against NaN and for equal infinities,
// +inf for the other non-finite pairs.
double element_difference(double a, double b);

// The comparison built one pair at a time, for callers that walk two tensors in an order of their
// own (a layout change, say). compare_tensors gives the same numbers, bit for bit, on the pairs
// in index order.
class DifferenceAccumulator {
 public:
  explicit DifferenceAccumulator(const CompareOptions& options = {}) : options_(options) {}
  void add(double a, double b);
  ValueComparison result() const;

 private:
  CompareOptions options_;
  ValueComparison sums_;  // max_abs, sum_abs and max_rel over the finite pairs only
};

// Compares two equally long vectors (std::invalid_argument otherwise), `b` being the side the
// relative tolerance is measured against. Float vectors whose values are all finite take a fast
// path without branches; its sums are added in four interleaved lanes, so they may differ in the
// last bits from DifferenceAccumulator's one-by-one order (max_abs, max_rel, worst_index, failing
// and the non-finite rules do not).
ValueComparison compare_tensors(std::span<const float> a, std::span<const float> b,
                                const CompareOptions& options = {});
ValueComparison compare_tensors(std::span<const double> a, std::span<const double> b,
                                const CompareOptions& options = {});

}  // namespace deltann
