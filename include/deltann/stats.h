// Statistics for timing and metric comparisons. Every function is deterministic (fixed seeds) so
// that reports and golden tests are reproducible.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace deltann::stats {

struct Interval {
  double low = 0;
  double high = 0;
};

// Percentile by linear interpolation between closest ranks (p in [0,100], clamped) of sorted
// values, as numpy's default: h = (n-1) p / 100, i = floor(h), x[i] + (h-i) (x[i+1] - x[i]).
// NaN for an empty vector.
double percentile_sorted(const std::vector<double>& sorted, double p);

// Sample standard deviation / mean (n - 1 in the denominator); NaN with fewer than 2 values or a
// zero mean.
double coefficient_of_variation(const std::vector<double>& values);

// Distribution-free confidence interval of the median from order statistics (binomial ranks) of
// sorted values: [x_(k), x_(n+1-k)] with k the largest rank >= 1 such that P(B <= k-1) <=
// (1 - confidence) / 2, B ~ Binomial(n, 1/2), so coverage >= confidence. [NaN, NaN] when empty.
// With very few values (no such rank) the interval is the full range. O(sqrt(n)).
Interval median_ci_sorted(const std::vector<double>& sorted, double confidence);

// Percentile-bootstrap confidence interval of the median (`resamples` resamples, seeded).
// Used where a bootstrap is wanted explicitly; costs O(resamples * n).
Interval bootstrap_median_ci(const std::vector<double>& values, double confidence, int resamples,
                             uint64_t seed);

struct MannWhitney {
  double u = 0;        // U statistic of the first sample
  double z = 0;        // normal approximation with tie and continuity correction
  double p_value = 1;  // two-sided
};
// Two-sided Mann-Whitney U test of two sorted samples, O(n + m) by merging. The p-value uses the
// normal approximation with tie correction (exact enough for n, m >= 8; documented in
// docs/ANALYSIS.md). p = 1 when either sample is empty or all values are tied.
MannWhitney mann_whitney_sorted(const std::vector<double>& a, const std::vector<double>& b);

// How far the values of `higher` lie above those of `lower` (unsorted; NaN entries are skipped),
// as a rank test and its effect sizes: the two-sided Mann-Whitney p-value (mann_whitney_sorted),
// the common-language effect size auc = U / (n m) = P(X > Y) + P(X = Y) / 2 with X from
// `higher` and Y from `lower` (the area under the ROC curve of telling the groups apart by the
// value; 0.5 when they do not differ), and the rank-biserial correlation 2 auc - 1. The interval
// of auc is Hanley and McNeil's normal approximation, clamped to [0, 1]:
//   se^2 = (A (1 - A) + (n - 1) (A / (2 - A) - A^2) + (m - 1) (2 A^2 / (1 + A) - A^2)) / (n m);
// it is cheap but shrinks to a point at auc = 0 or 1 (perfect separation). With an empty group
// auc, the correlation and the interval are NaN and p = 1.
struct Separation {
  size_t n_higher = 0, n_lower = 0;  // values used (NaN skipped)
  double auc = 0;
  double rank_biserial = 0;
  Interval auc_ci;
  double p_value = 1;
};
Separation rank_separation(std::vector<double> higher, std::vector<double> lower,
                           double confidence);

// Holm's step-down adjustment of a family of p-values for multiple comparisons, in the input
// order: with the m p-values sorted ascending, p_(1) <= ... <= p_(m),
//   adjusted_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
// Calling a test significant when its adjusted p-value is below alpha keeps the probability of
// any false call in the family at most alpha, whatever the dependence between the tests. NaN
// entries stay NaN and are not counted in m.
std::vector<double> holm_adjusted(const std::vector<double>& p_values);

// Ratio median(b) / median(a) of sorted samples with a conservative confidence interval: each
// median's distribution-free interval at level 1 - (1 - confidence) / 2, combined as
// [low_b / high_a, high_b / low_a] (Bonferroni), so coverage is at least `confidence`.
struct RatioEstimate {
  double ratio = 0;
  Interval ci;
};
RatioEstimate median_ratio_sorted(const std::vector<double>& a, const std::vector<double>& b,
                                  double confidence);

// Confidence intervals of a binomial proportion: `successes` of `n` trials (0 <= successes <= n).
// Both give no interval (nullopt) for n = 0 — nothing was observed, and [0, 1] would pretend
// otherwise — and clamp to [0, 1]. docs/ANALYSIS.md, "Intervals of rates".
//
// Wilson score interval: centre (k + z^2/2) / (n + z^2), half-width
// z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4), z the normal quantile of (1 + confidence) / 2.
// Its coverage is close to `confidence` on average but dips below it for some n and p.
std::optional<Interval> wilson_interval(int64_t successes, int64_t n, double confidence);
// Clopper-Pearson ("exact") interval from beta quantiles, alpha = 1 - confidence:
// low = Beta(alpha/2; k, n - k + 1) (0 when k = 0), high = Beta(1 - alpha/2; k + 1, n - k)
// (1 when k = n). Its coverage is at least `confidence` for every n and p.
std::optional<Interval> clopper_pearson_interval(int64_t successes, int64_t n, double confidence);
// The interval every rate of the analysis carries: Clopper-Pearson, always. Decisions (`check`
// limits, findings) rest on its ends, so the guaranteed coverage matters more than the slightly
// narrower Wilson interval; on thousands of images the two differ in the third decimal. Its lower
// end is above 0 exactly when successes > 0, and its upper end below 1 exactly when
// successes < n.
std::optional<Interval> rate_interval(int64_t successes, int64_t n, double confidence);

// Spearman rank correlation (Pearson correlation of average ranks, ties allowed); NaN when a side
// is constant or sizes differ or are < 2.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// Standard normal cumulative distribution function.
double normal_cdf(double z);

}  // namespace deltann::stats
