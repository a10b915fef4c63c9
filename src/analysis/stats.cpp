// Statistics for timing and metric comparisons (stats.h). docs/ANALYSIS.md, section "Statistics",
// gives every formula used here.
#include "deltann/stats.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>

#include <boost/math/distributions/beta.hpp>
#include <boost/math/distributions/normal.hpp>

namespace deltann::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The 1-based rank k of the lower end of the distribution-free median interval
// [x_(k), x_(n+1-k)] of n >= 1 sorted values: the largest k >= 1 with P(B <= k - 1) <= alpha / 2,
// B ~ Binomial(n, 1/2), capped at the middle. k = 1 (the full range) when even P(B = 0) = 2^-n is
// larger than alpha / 2. The coverage of the interval is 1 - 2 P(B <= k - 1) >= 1 - alpha.
//
// Only the lower tail up to the quantile is summed, from 10 standard deviations (sqrt(n) / 2 each)
// below the mean n / 2. Hoeffding's inequality bounds the mass left out:
// P(B < n/2 - 5 sqrt(n)) <= exp(-2 * 25) < 2e-22, negligible next to the smallest alpha / 2 that a
// double confidence below 1 can give (about 5.5e-17). For n <= 100 the sum starts at 0 and is exact
// up to rounding. The work is O(sqrt(n)).
size_t median_lower_rank(size_t n, double alpha) {
  const size_t middle = (n + 1) / 2;  // k may not pass the middle: x_(k) <= x_(n+1-k)
  const double half_alpha = alpha / 2;
  if (!(half_alpha > 0)) return 1;  // confidence 1 (or more): the full range
  const double nd = static_cast<double>(n);
  const double start_d = std::floor(nd / 2 - 5 * std::sqrt(nd));
  const size_t start = start_d > 0 ? static_cast<size_t>(start_d) : 0;
  // pmf(start) from log-gamma; the rest by the recurrence pmf(j+1) = pmf(j) (n - j) / (j + 1).
  double pmf = start == 0 ? std::ldexp(1.0, -static_cast<int>(n))  // n <= 100 here
                          : std::exp(std::lgamma(nd + 1) - std::lgamma(start_d + 1) -
                                     std::lgamma(nd - start_d + 1) - nd * std::log(2.0));
  double cdf = 0;    // P(B <= j - 1) when the loop reaches j (mass below `start` neglected)
  size_t k = start;  // the largest rank found so far with P(B <= k - 1) <= alpha / 2
  for (size_t j = start; j < middle; ++j) {
    cdf += pmf;  // now P(B <= j)
    if (cdf > half_alpha) break;
    k = j + 1;  // P(B <= (j + 1) - 1) <= alpha / 2, so rank j + 1 qualifies
    pmf *= static_cast<double>(n - j) / static_cast<double>(j + 1);
  }
  return std::clamp<size_t>(k, 1, middle);
}

// Interval from ranks; `sorted` is non-empty.
Interval median_interval(const std::vector<double>& sorted, double confidence) {
  const size_t n = sorted.size();
  const double alpha = 1 - std::clamp(confidence, 0.0, 1.0);
  const size_t k = median_lower_rank(n, alpha);
  return {sorted[k - 1], sorted[n - k]};
}

// Median of values[0, n) by partial sorting (reorders the range).
double median_inplace(std::vector<double>& values) {
  const size_t n = values.size();
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(values.begin(), mid, values.end());
  if (n % 2 == 1) return *mid;
  const double below = *std::max_element(values.begin(), mid);
  return below + (*mid - below) / 2;
}

// A uniform index in [0, n) from the generator, by rejection so that it is unbiased and the same
// on every standard library (std::uniform_int_distribution's algorithm is not specified).
size_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % n;  // a multiple of n
  uint64_t r = rng();
  while (r >= limit) r = rng();
  return static_cast<size_t>(r % n);
}

// Average ranks (1-based, ties share the mean of their ranks) of `values`; no NaN allowed.
std::vector<double> average_ranks(const std::vector<double>& values) {
  const size_t n = values.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return values[i] < values[j]; });
  std::vector<double> ranks(n);
  for (size_t start = 0; start < n;) {
    size_t end = start + 1;
    while (end < n && values[order[end]] == values[order[start]]) ++end;
    // Positions start..end-1 hold ranks start+1..end: their mean is (start + 1 + end) / 2.
    const double rank = static_cast<double>(start + 1 + end) / 2;
    for (size_t i = start; i < end; ++i) ranks[order[i]] = rank;
    start = end;
  }
  return ranks;
}

}  // namespace

double percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty() || std::isnan(p)) return kNaN;
  const double h = static_cast<double>(sorted.size() - 1) * std::clamp(p, 0.0, 100.0) / 100;
  const auto lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  const double frac = h - static_cast<double>(lo);
  const double a = sorted[lo], b = sorted[lo + 1];
  return frac == 0 ? a : a + frac * (b - a);
}

double coefficient_of_variation(const std::vector<double>& values) {
  if (values.size() < 2) return kNaN;
  const double n = static_cast<double>(values.size());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  if (mean == 0) return kNaN;
  double squares = 0;  // two passes: no cancellation of large squares
  for (double v : values) squares += (v - mean) * (v - mean);
  return std::sqrt(squares / (n - 1)) / mean;
}

Interval median_ci_sorted(const std::vector<double>& sorted, double confidence) {
  if (sorted.empty() || std::isnan(confidence)) return {kNaN, kNaN};
  return median_interval(sorted, confidence);
}

Interval bootstrap_median_ci(const std::vector<double>& values, double confidence, int resamples,
                             uint64_t seed) {
  if (values.empty() || resamples < 1 || std::isnan(confidence)) return {kNaN, kNaN};
  const size_t n = values.size();
  std::mt19937_64 rng(seed);
  std::vector<double> sample(n);
  std::vector<double> medians(static_cast<size_t>(resamples));
  for (double& median : medians) {
    for (double& s : sample) s = values[uniform_index(rng, n)];
    median = median_inplace(sample);
  }
  std::sort(medians.begin(), medians.end());
  const double alpha = 1 - std::clamp(confidence, 0.0, 1.0);
  return {percentile_sorted(medians, 100 * alpha / 2),
          percentile_sorted(medians, 100 * (1 - alpha / 2))};
}

MannWhitney mann_whitney_sorted(const std::vector<double>& a, const std::vector<double>& b) {
  MannWhitney result;
  const size_t n = a.size(), m = b.size();
  if (n == 0 || m == 0) return result;
  // Merge the two sorted samples group by group of equal values. A group of t values occupies the
  // ranks r + 1 .. r + t, whose mean is r + (t + 1) / 2.
  double rank_sum_a = 0;
  double ties = 0;  // sum over groups of t^3 - t
  size_t i = 0, j = 0, groups = 0;
  while (i < n || j < m) {
    const double v = (j == m || (i < n && !(b[j] < a[i]))) ? a[i] : b[j];
    const size_t i0 = i, j0 = j;
    // "Not greater than v" rather than "equal to v" so that the loop always advances.
    while (i < n && !(v < a[i])) ++i;
    while (j < m && !(v < b[j])) ++j;
    const auto in_a = static_cast<double>(i - i0);
    const auto t = static_cast<double>((i - i0) + (j - j0));
    const auto before = static_cast<double>(i0 + j0);
    rank_sum_a += in_a * (before + (t + 1) / 2);
    ties += (t - 1) * t * (t + 1);
    ++groups;
  }
  const auto nd = static_cast<double>(n), md = static_cast<double>(m);
  const double total = nd + md;
  result.u = rank_sum_a - nd * (nd + 1) / 2;
  if (groups == 1) return result;  // every value tied: no evidence of a difference
  const double variance = nd * md / 12 * ((total + 1) - ties / (total * (total - 1)));
  if (!(variance > 0)) return result;
  const double d = result.u - nd * md / 2;
  const double corrected = std::max(std::abs(d) - 0.5, 0.0);  // continuity correction
  result.z = std::copysign(corrected, d) / std::sqrt(variance);
  result.p_value = std::min(1.0, 2 * normal_cdf(-std::abs(result.z)));
  return result;
}

Separation rank_separation(std::vector<double> higher, std::vector<double> lower,
                           double confidence) {
  const auto drop_nan_and_sort = [](std::vector<double>& v) {
    std::erase_if(v, [](double d) { return std::isnan(d); });
    std::sort(v.begin(), v.end());
  };
  drop_nan_and_sort(higher);
  drop_nan_and_sort(lower);
  Separation s;
  s.n_higher = higher.size();
  s.n_lower = lower.size();
  if (higher.empty() || lower.empty()) {
    s.auc = s.rank_biserial = kNaN;
    s.auc_ci = {kNaN, kNaN};
    return s;
  }
  const MannWhitney test = mann_whitney_sorted(higher, lower);
  const auto n = static_cast<double>(s.n_higher), m = static_cast<double>(s.n_lower);
  const double a = test.u / (n * m);
  s.auc = a;
  s.rank_biserial = 2 * a - 1;
  s.p_value = test.p_value;
  const double q1 = a / (2 - a), q2 = 2 * a * a / (1 + a);
  const double variance = (a * (1 - a) + (n - 1) * (q1 - a * a) + (m - 1) * (q2 - a * a)) / (n * m);
  const double z =
      boost::math::quantile(boost::math::normal_distribution<double>(), (1 + confidence) / 2);
  const double half = z * std::sqrt(std::max(variance, 0.0));
  s.auc_ci = {std::max(0.0, a - half), std::min(1.0, a + half)};
  return s;
}

std::vector<double> holm_adjusted(const std::vector<double>& p_values) {
  std::vector<size_t> order;  // the non-NaN entries, smallest p first
  for (size_t i = 0; i < p_values.size(); ++i)
    if (!std::isnan(p_values[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t i, size_t j) { return p_values[i] < p_values[j]; });
  std::vector<double> adjusted(p_values.size(), kNaN);
  const size_t m = order.size();
  double running_max = 0;  // the step-down keeps the adjusted values in the order of the raw ones
  for (size_t rank = 0; rank < m; ++rank) {
    const double scaled = static_cast<double>(m - rank) * p_values[order[rank]];
    running_max = std::max(running_max, std::min(1.0, scaled));
    adjusted[order[rank]] = running_max;
  }
  return adjusted;
}

RatioEstimate median_ratio_sorted(const std::vector<double>& a, const std::vector<double>& b,
                                  double confidence) {
  if (a.empty() || b.empty() || std::isnan(confidence)) return {kNaN, {kNaN, kNaN}};
  const double each = 1 - (1 - std::clamp(confidence, 0.0, 1.0)) / 2;
  const Interval ia = median_interval(a, each), ib = median_interval(b, each);
  RatioEstimate r;
  r.ratio = percentile_sorted(b, 50) / percentile_sorted(a, 50);
  r.ci.low = ib.low / ia.high;
  r.ci.high = ia.low > 0 ? ib.high / ia.low : kInf;
  return r;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n != y.size() || n < 2) return kNaN;
  const auto has_nan = [](const std::vector<double>& v) {
    return std::any_of(v.begin(), v.end(), [](double d) { return std::isnan(d); });
  };
  if (has_nan(x) || has_nan(y)) return kNaN;
  const std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  // Both rank vectors have the mean (n + 1) / 2.
  const double mean = static_cast<double>(n + 1) / 2;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = rx[i] - mean, dy = ry[i] - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0 || syy == 0) return kNaN;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

std::optional<Interval> wilson_interval(int64_t successes, int64_t n, double confidence) {
  if (n <= 0 || successes < 0 || successes > n) return std::nullopt;
  const double z =
      boost::math::quantile(boost::math::normal_distribution<double>(), (1 + confidence) / 2);
  const double k = static_cast<double>(successes), total = static_cast<double>(n);
  const double z2 = z * z;
  const double centre = (k + z2 / 2) / (total + z2);
  const double half = z / (total + z2) * std::sqrt(k * (total - k) / total + z2 / 4);
  // At k = 0 (k = n) the low (high) end is 0 (1) in exact arithmetic: say so exactly.
  return Interval{successes == 0 ? 0.0 : std::max(0.0, centre - half),
                  successes == n ? 1.0 : std::min(1.0, centre + half)};
}

std::optional<Interval> clopper_pearson_interval(int64_t successes, int64_t n, double confidence) {
  if (n <= 0 || successes < 0 || successes > n) return std::nullopt;
  const double alpha = 1 - confidence;
  const double k = static_cast<double>(successes), total = static_cast<double>(n);
  Interval ci{0.0, 1.0};
  if (successes > 0)
    ci.low =
        boost::math::quantile(boost::math::beta_distribution<double>(k, total - k + 1), alpha / 2);
  if (successes < n)
    ci.high = boost::math::quantile(boost::math::beta_distribution<double>(k + 1, total - k),
                                    1 - alpha / 2);
  return ci;
}

std::optional<Interval> rate_interval(int64_t successes, int64_t n, double confidence) {
  return clopper_pearson_interval(successes, n, confidence);
}

}  // namespace deltann::stats
