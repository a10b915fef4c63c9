// Per-image metrics between two variants' outputs (metrics.h). docs/ANALYSIS.md, section
// "Per-image metrics", defines each one. These run once per image and pair of variants, so they
// keep their working space in per-thread buffers instead of allocating on every call.
#include "deltann/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "deltann/compare_tensors.h"

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

bool any_nan(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float f) { return std::isnan(f); });
}

bool strictly_decreasing(const std::vector<float>& scores) {
  for (size_t i = 1; i < scores.size(); ++i)
    if (!(scores[i - 1] > scores[i])) return false;
  return true;
}

// Both lists hold the same distinct ids in the same order, each strictly ordered by its scores:
// the common case between two faithful variants. Ranks are then 1..k on both sides, and Spearman's
// rho is exactly 1 (every sum of the general computation is exact for such ranks: half-integer
// deviations, k small), so the caller can skip the sorting. Long lists take the general path,
// where the exactness argument stops holding.
bool same_strict_ranking(const std::vector<int>& a_ids, const std::vector<float>& a_scores,
                         const std::vector<int>& b_ids, const std::vector<float>& b_scores) {
  constexpr size_t kMaxShortcut = 64;
  if (a_ids.size() > kMaxShortcut || a_ids != b_ids) return false;
  if (!strictly_decreasing(a_scores) || !strictly_decreasing(b_scores)) return false;
  for (size_t i = 0; i < a_ids.size(); ++i)
    for (size_t j = i + 1; j < a_ids.size(); ++j)
      if (a_ids[i] == a_ids[j]) return false;
  return true;
}

}  // namespace

double jaccard(const std::vector<int>& a, const std::vector<int>& b) {
  if (a == b) return 1.0;  // the same set, whatever it holds: skips the sorting
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
  if (same_strict_ranking(a_ids, a_scores, b_ids, b_scores)) return 1.0;

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
  const ValueComparison s =
      compare_tensors(a, b, {.atol = atol, .rtol = rtol, .locate_worst = false});

  NumericDifference r;
  r.elements = s.elements;
  r.failing = s.failing;
  if (s.nonfinite_mismatches > 0) {
    r.max_abs = r.sum_abs = r.relative_l2 = r.min_rtol = kInf;
    r.cosine = kNaN;
    return r;
  }
  r.max_abs = s.max_abs;
  r.sum_abs = s.sum_abs;
  r.min_rtol = s.max_rel;
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
