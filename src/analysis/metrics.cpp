// Per-image metrics between two variants' outputs (metrics.h). docs/ANALYSIS.md, section
// "Per-image metrics", defines each one. These run once per image and pair of variants, so they
// keep their working space in per-thread buffers instead of allocating on every call.
#include "deltann/metrics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace deltann::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// One id of a top-K list with its rank in that list; `in_b` says which list it came from.
struct Ranked {
  int id = 0;
  bool in_b = false;
  double rank = 0;
};

// Appends the ids of a list with their 1-based ranks by descending score (equal scores share the
// mean of their ranks). `order` is working space.
void append_ranks(const std::vector<int>& ids, const std::vector<float>& scores, bool in_b,
                  std::vector<size_t>& order, std::vector<Ranked>& out) {
  const size_t k = ids.size();
  order.resize(k);
  for (size_t i = 0; i < k; ++i) order[i] = i;
  // Equal scores get equal ranks, so their order does not matter (std::sort, unlike stable_sort,
  // does not allocate).
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return scores[i] > scores[j]; });
  for (size_t start = 0; start < k;) {
    size_t end = start + 1;
    while (end < k && scores[order[end]] == scores[order[start]]) ++end;
    // Positions start..end-1 take the ranks start+1..end, whose mean is (start + 1 + end) / 2.
    const double rank = static_cast<double>(start + 1 + end) / 2;
    for (size_t i = start; i < end; ++i) out.push_back({ids[order[i]], in_b, rank});
    start = end;
  }
}

// The rtol that passes one element with atol = 0 under the check as numeric_difference evaluates
// it in double, d <= rtol * ay, for d = |a - b| and ay = |b|. The quotient d / ay is rounded to
// the nearest double and may land just below the exact one, so that quotient * ay rounds below d
// and the element fails at its own quotient; the next double up is above the exact quotient, so
// its product cannot round below d (rounding is monotone and d is a double). Since the check is
// monotone in rtol, the largest of these passes every element. d = 0 gives 0 (NaN when ay = 0
// too, which the callers' comparisons drop), ay = 0 < d gives inf. Branch-free, for the vector
// loop.
double passing_rtol(double d, double ay) {
  const double ratio = d / ay;
  // Only a finite positive quotient can fail its own check; for those, adding one to the bit
  // pattern is std::nextafter(ratio, inf), without a call that would stop vectorisation.
  const double next_up = std::bit_cast<double>(std::bit_cast<uint64_t>(ratio) + 1);
  return ratio * ay < d ? next_up : ratio;
}

bool any_nan(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float f) { return std::isnan(f); });
}

// Running sums of numeric_difference over some of the elements.
struct DifferenceSums {
  double max_abs = 0, sum_abs = 0, diff_sq = 0, a_sq = 0, b_sq = 0, dot = 0;
  double max_rtol = 0;  // the largest passing_rtol(|a - b|, |b|)
  int64_t failing = 0;
  bool infinite = false;  // some element differs infinitely

  // One pair of elements (the slow path, for vectors holding a NaN or an infinity).
  void add(double x, double y, double atol, double rtol) {
    if (!std::isfinite(x) || !std::isfinite(y)) {
      // NaN on both sides or equal infinities: no difference, and left out of the norms.
      if ((std::isnan(x) && std::isnan(y)) || x == y) return;
      infinite = true;  // fails any tolerance: numpy.allclose wants non-finite values equal
      ++failing;
      return;
    }
    const double d = std::abs(x - y), ay = std::abs(y);
    max_abs = std::max(max_abs, d);
    sum_abs += d;
    diff_sq += d * d;
    a_sq += x * x;
    b_sq += y * y;
    dot += x * y;
    if (d > 0) max_rtol = std::max(max_rtol, passing_rtol(d, ay));
    if (d > atol + rtol * ay) ++failing;  // numpy.allclose passes |a - b| <= atol + rtol |b|
  }

  void merge(const DifferenceSums& o) {
    max_abs = std::max(max_abs, o.max_abs);
    sum_abs += o.sum_abs;
    diff_sq += o.diff_sq;
    a_sq += o.a_sq;
    b_sq += o.b_sq;
    dot += o.dot;
    max_rtol = std::max(max_rtol, o.max_rtol);
    failing += o.failing;
    infinite = infinite || o.infinite;
  }
};

// The sums of numeric_difference, fast when every element is finite: the blocks of four elements
// go through one pass without branches, where four interleaved accumulators per sum let the
// processor overlap the additions (a single sum is a chain of dependent additions) and let the
// compiler use packed instructions; about 1.8 times faster than DifferenceSums::add on 1000-class
// outputs. A NaN or an infinity in the blocks shows as a sum_abs that is not finite (a sum of
// |a - b| over floats cannot overflow a double), and the caller then starts again with
// DifferenceSums::add, element by element. The last n % 4 elements go through add here.
DifferenceSums sums_if_finite(const float* a, const float* b, size_t n, double atol, double rtol) {
  constexpr size_t kLanes = 4;
  double max_abs[kLanes] = {}, sum_abs[kLanes] = {}, diff_sq[kLanes] = {}, a_sq[kLanes] = {},
         b_sq[kLanes] = {}, dot[kLanes] = {}, max_rtol[kLanes] = {};
  double failing[kLanes] = {};  // counted in doubles (exact up to 2^53), like the other sums
  const size_t blocks = n / kLanes * kLanes;
  for (size_t i = 0; i < blocks; i += kLanes)
    for (size_t k = 0; k < kLanes; ++k) {
      const double x = a[i + k], y = b[i + k];
      const double d = std::abs(x - y), ay = std::abs(y);
      max_abs[k] = d > max_abs[k] ? d : max_abs[k];
      sum_abs[k] += d;
      diff_sq[k] += d * d;
      a_sq[k] += x * x;
      b_sq[k] += y * y;
      dot[k] += x * y;
      // d / 0 is inf, as wanted; 0 / 0 is NaN, which the comparison drops (no difference there).
      const double ratio = passing_rtol(d, ay);
      max_rtol[k] = ratio > max_rtol[k] ? ratio : max_rtol[k];
      failing[k] += d > atol + rtol * ay ? 1.0 : 0.0;  // allclose passes |a-b| <= atol + rtol |b|
    }
  DifferenceSums s;
  for (size_t i = blocks; i < n; ++i) s.add(a[i], b[i], atol, rtol);  // the last n % 4
  for (size_t k = 0; k < kLanes; ++k) {
    DifferenceSums lane;
    lane.max_abs = max_abs[k];
    lane.sum_abs = sum_abs[k];
    lane.diff_sq = diff_sq[k];
    lane.a_sq = a_sq[k];
    lane.b_sq = b_sq[k];
    lane.dot = dot[k];
    lane.max_rtol = max_rtol[k];
    lane.failing = static_cast<int64_t>(failing[k]);
    s.merge(lane);
  }
  return s;
}

}  // namespace

double jaccard(const std::vector<int>& a, const std::vector<int>& b) {
  thread_local std::vector<int> sa, sb;
  sa.assign(a.begin(), a.end());
  sb.assign(b.begin(), b.end());
  std::sort(sa.begin(), sa.end());
  sa.erase(std::unique(sa.begin(), sa.end()), sa.end());
  std::sort(sb.begin(), sb.end());
  sb.erase(std::unique(sb.begin(), sb.end()), sb.end());
  if (sa.empty() && sb.empty()) return 1.0;
  size_t common = 0;
  for (size_t i = 0, j = 0; i < sa.size() && j < sb.size();) {
    if (sa[i] < sb[j]) {
      ++i;
    } else if (sb[j] < sa[i]) {
      ++j;
    } else {
      ++common;
      ++i;
      ++j;
    }
  }
  return static_cast<double>(common) / static_cast<double>(sa.size() + sb.size() - common);
}

double topk_rank_correlation(const std::vector<int>& a_ids, const std::vector<float>& a_scores,
                             const std::vector<int>& b_ids, const std::vector<float>& b_scores) {
  if (a_ids.size() != a_scores.size() || b_ids.size() != b_scores.size())
    throw std::invalid_argument("topk_rank_correlation: a top-K list has " +
                                std::to_string(a_ids.size()) + "/" + std::to_string(b_ids.size()) +
                                " ids but " + std::to_string(a_scores.size()) + "/" +
                                std::to_string(b_scores.size()) + " scores");
  if (any_nan(a_scores) || any_nan(b_scores)) return kNaN;

  thread_local std::vector<size_t> order;
  thread_local std::vector<Ranked> all;
  thread_local std::vector<double> ra, rb;  // ranks over the union; NaN = absent from the list
  all.clear();
  append_ranks(a_ids, a_scores, false, order, all);
  append_ranks(b_ids, b_scores, true, order, all);
  // Group by id (list a first within an id, best rank first) to walk the union once.
  std::sort(all.begin(), all.end(), [](const Ranked& x, const Ranked& y) {
    if (x.id != y.id) return x.id < y.id;
    if (x.in_b != y.in_b) return !x.in_b;
    return x.rank < y.rank;
  });
  ra.clear();
  rb.clear();
  size_t missing_a = 0, missing_b = 0;
  for (size_t i = 0; i < all.size();) {
    const int id = all[i].id;
    double rank_a = kNaN, rank_b = kNaN;
    for (; i < all.size() && all[i].id == id; ++i) {
      double& rank = all[i].in_b ? rank_b : rank_a;
      if (std::isnan(rank)) rank = all[i].rank;  // a repeated id keeps its first (best) rank
    }
    missing_a += std::isnan(rank_a) ? 1 : 0;
    missing_b += std::isnan(rank_b) ? 1 : 0;
    ra.push_back(rank_a);
    rb.push_back(rank_b);
  }
  const size_t n = ra.size();
  if (n <= 1) return 1.0;
  // Ids absent from a list share the mean of the ranks after its last one: k+1 .. k+missing.
  const double absent_a =
      static_cast<double>(a_ids.size()) + static_cast<double>(missing_a + 1) / 2;
  const double absent_b =
      static_cast<double>(b_ids.size()) + static_cast<double>(missing_b + 1) / 2;
  double sum_a = 0, sum_b = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(ra[i])) ra[i] = absent_a;
    if (std::isnan(rb[i])) rb[i] = absent_b;
    sum_a += ra[i];
    sum_b += rb[i];
  }
  const double mean_a = sum_a / static_cast<double>(n), mean_b = sum_b / static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    const double da = ra[i] - mean_a, db = rb[i] - mean_b;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  // A list that ranks every id of the union alike carries no order: equal to another such list
  // (1), uncorrelated with any other (0).
  if (saa == 0 || sbb == 0) return saa == sbb ? 1.0 : 0.0;
  return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

double top2_relative_gap(const std::vector<float>& top_scores, OutputKind kind) {
  if (top_scores.empty()) return kNaN;
  double s1 = -kInf, s2 = -kInf;
  for (float f : top_scores) {
    if (!std::isfinite(f)) return kNaN;
    const double s = f;
    if (s > s1) {
      s2 = s1;
      s1 = s;
    } else if (s > s2) {
      s2 = s;
    }
  }
  if (top_scores.size() == 1) return 1.0;
  if (kind == OutputKind::Logits) return -std::expm1(s2 - s1);  // 1 - exp(s2 - s1), accurately
  if (!(s1 > 0)) return kNaN;  // no positive probability: no decision to measure
  return (s1 - s2) / s1;
}

NumericDifference numeric_difference(const std::vector<float>& a, const std::vector<float>& b,
                                     double atol, double rtol) {
  if (a.size() != b.size())
    throw std::invalid_argument("numeric_difference: vectors of " + std::to_string(a.size()) +
                                " and " + std::to_string(b.size()) + " elements");
  const size_t n = a.size();
  DifferenceSums s = sums_if_finite(a.data(), b.data(), n, atol, rtol);
  if (!std::isfinite(s.sum_abs)) {  // a NaN or an infinity somewhere: element by element
    s = DifferenceSums{};
    for (size_t i = 0; i < n; ++i) s.add(a[i], b[i], atol, rtol);
  }

  NumericDifference r;
  r.elements = static_cast<int64_t>(n);
  r.failing = s.failing;
  if (s.infinite) {
    r.max_abs = r.sum_abs = r.relative_l2 = r.min_rtol = kInf;
    r.cosine = kNaN;
    return r;
  }
  r.max_abs = s.max_abs;
  r.sum_abs = s.sum_abs;
  r.min_rtol = s.max_rtol;
  if (s.diff_sq == 0)
    r.relative_l2 = 0;
  else if (s.a_sq == 0)
    r.relative_l2 = kInf;
  else
    r.relative_l2 = std::sqrt(s.diff_sq / s.a_sq);
  if (s.a_sq == 0 && s.b_sq == 0)
    r.cosine = 1;
  else if (s.a_sq == 0 || s.b_sq == 0)
    r.cosine = 0;  // one side is all zeros: no direction to compare
  else
    r.cosine = std::clamp(s.dot / std::sqrt(s.a_sq * s.b_sq), -1.0, 1.0);
  return r;
}

}  // namespace deltann::metrics
