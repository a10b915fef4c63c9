// Statistics for timing and metric comparisons (stats.h). Every expected number is worked out by
// hand in the comments, or computed here independently of src/analysis/stats.cpp.
#include "deltann/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace deltann::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// 1, 2, ..., n as doubles, so an order statistic x_(k) is k itself.
std::vector<double> one_to(size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<double>(i + 1);
  return v;
}

// log P(B = i) for B ~ Binomial(n, 1/2).
double log_binomial_half_pmf(size_t n, size_t i) {
  const double nd = static_cast<double>(n), id = static_cast<double>(i);
  return std::lgamma(nd + 1) - std::lgamma(id + 1) - std::lgamma(nd - id + 1) - nd * std::log(2.0);
}

// P(B <= j), summed term by term from i = 0 (terms too small for a double become 0, which changes
// nothing at the precision that matters here).
double binomial_half_cdf(size_t n, size_t j) {
  double sum = 0;
  for (size_t i = 0; i <= j; ++i) sum += std::exp(log_binomial_half_pmf(n, i));
  return sum;
}

// The documented lower rank: the largest k >= 1 with P(B <= k - 1) <= (1 - confidence) / 2
// (k = 1 when there is none), at most (n + 1) / 2; found by a plain scan from 0.
size_t reference_lower_rank(size_t n, double confidence) {
  const double half_alpha = (1 - confidence) / 2;
  const auto pmf = [n](size_t i) { return std::exp(log_binomial_half_pmf(n, i)); };
  // k = 1 always qualifies (P(B <= 0 - 1) = 0); k + 1 does when P(B <= k) <= alpha / 2.
  size_t k = 1;
  double cdf_k = pmf(0) + pmf(1);  // P(B <= k)
  while (k < (n + 1) / 2 && cdf_k <= half_alpha) {
    ++k;
    cdf_k += pmf(k);
  }
  return k;
}

TEST(StatsPercentile, LinearInterpolationBetweenClosestRanks) {
  // numpy's default ("linear"): h = (n - 1) p / 100, x[floor h] + frac(h) (x[floor h + 1] - ...).
  const std::vector<double> v{1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 25), 1.75);  // h = 0.75
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 50), 2.5);   // h = 1.5
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 90), 3.7);   // h = 2.7: 3 + 0.7 * (4 - 3)
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 100), 4.0);
  // Five values: h = 4 * 0.4 = 1.6, so 2 + 0.6 * (3 - 2) = 2.6 (numpy.percentile gives 2.6).
  EXPECT_DOUBLE_EQ(percentile_sorted({1, 2, 3, 4, 5}, 40), 2.6);
  // Uneven gaps: h = 3 * 0.5 = 1.5 between 10 and 30.
  EXPECT_DOUBLE_EQ(percentile_sorted({0, 10, 30, 100}, 50), 20.0);
}

TEST(StatsPercentile, EdgeCases) {
  EXPECT_DOUBLE_EQ(percentile_sorted({7.0}, 90), 7.0);
  EXPECT_TRUE(std::isnan(percentile_sorted({}, 50)));
  EXPECT_TRUE(std::isnan(percentile_sorted({1, 2}, kNaN)));
  // p outside [0, 100] is clamped.
  EXPECT_DOUBLE_EQ(percentile_sorted({1, 2, 3}, -5), 1.0);
  EXPECT_DOUBLE_EQ(percentile_sorted({1, 2, 3}, 150), 3.0);
  // Equal neighbours give the value itself, not a rounded interpolation.
  EXPECT_EQ(percentile_sorted({0.1, 0.1, 0.1}, 37), 0.1);
}

TEST(StatsCoefficientOfVariation, SampleStandardDeviationOverMean) {
  // {2,4,4,4,5,5,7,9}: mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32, sample variance 32/7,
  // sd = sqrt(32/7) = 2.13809, CV = 2.13809 / 5 = 0.427618.
  EXPECT_NEAR(coefficient_of_variation({2, 4, 4, 4, 5, 5, 7, 9}), std::sqrt(32.0 / 7) / 5, 1e-15);
  EXPECT_NEAR(coefficient_of_variation({2, 4, 4, 4, 5, 5, 7, 9}), 0.427618, 1e-6);
  EXPECT_DOUBLE_EQ(coefficient_of_variation({3, 3, 3}), 0.0);
  // {1, 3}: mean 2, sample variance (1 + 1) / 1 = 2, CV = sqrt(2) / 2.
  EXPECT_DOUBLE_EQ(coefficient_of_variation({1, 3}), std::sqrt(2.0) / 2);
}

TEST(StatsCoefficientOfVariation, UndefinedCases) {
  EXPECT_TRUE(std::isnan(coefficient_of_variation({})));
  EXPECT_TRUE(std::isnan(coefficient_of_variation({4})));
  EXPECT_TRUE(std::isnan(coefficient_of_variation({-1, 1})));  // mean 0
}

TEST(StatsMedianCi, TenValues) {
  // B ~ Binomial(10, 1/2): P(B <= 0) = 1/1024 = 0.00098, P(B <= 1) = 11/1024 = 0.0107,
  // P(B <= 2) = 56/1024 = 0.0547. At 95 %, alpha / 2 = 0.025: the largest k with
  // P(B <= k - 1) <= 0.025 is k = 2, so the interval is [x_(2), x_(9)], coverage
  // 1 - 2 * 11/1024 = 0.9785.
  EXPECT_NEAR(binomial_half_cdf(10, 1), 11.0 / 1024, 1e-15);
  EXPECT_NEAR(binomial_half_cdf(10, 2), 56.0 / 1024, 1e-15);
  ASSERT_EQ(reference_lower_rank(10, 0.95), 2u);
  const Interval ci = median_ci_sorted(one_to(10), 0.95);
  EXPECT_EQ(ci.low, 2.0);
  EXPECT_EQ(ci.high, 9.0);
  // At 99 %, alpha / 2 = 0.005: only P(B <= 0) = 0.00098 qualifies, k = 1: [x_(1), x_(10)].
  const Interval wide = median_ci_sorted(one_to(10), 0.99);
  EXPECT_EQ(wide.low, 1.0);
  EXPECT_EQ(wide.high, 10.0);
}

TEST(StatsMedianCi, HundredValues) {
  // B ~ Binomial(100, 1/2): P(B <= 39) = 0.0176, P(B <= 40) = 0.0284. At 95 % (alpha / 2 =
  // 0.025) k = 40: [x_(40), x_(61)], the ranks of the usual tables.
  EXPECT_NEAR(binomial_half_cdf(100, 39), 0.0176, 1e-4);
  EXPECT_NEAR(binomial_half_cdf(100, 40), 0.0284, 1e-4);
  ASSERT_EQ(reference_lower_rank(100, 0.95), 40u);
  const Interval ci = median_ci_sorted(one_to(100), 0.95);
  EXPECT_EQ(ci.low, 40.0);
  EXPECT_EQ(ci.high, 61.0);
  // 99 %: P(B <= 36) = 0.0033 <= 0.005 < P(B <= 37) = 0.0060, so k = 37: [x_(37), x_(64)].
  ASSERT_EQ(reference_lower_rank(100, 0.99), 37u);
  const Interval ci99 = median_ci_sorted(one_to(100), 0.99);
  EXPECT_EQ(ci99.low, 37.0);
  EXPECT_EQ(ci99.high, 64.0);
}

TEST(StatsMedianCi, AgreesWithAPlainBinomialSum) {
  // The implementation sums only the tail near the quantile; the reference sums from 0.
  for (size_t n : {1u, 2u, 3u, 7u, 9u, 20u, 31u, 64u, 101u, 250u, 1000u, 4321u})
    for (double confidence : {0.5, 0.8, 0.9, 0.95, 0.99, 0.999}) {
      const size_t k = reference_lower_rank(n, confidence);
      const Interval ci = median_ci_sorted(one_to(n), confidence);
      EXPECT_EQ(ci.low, static_cast<double>(k)) << "n = " << n << ", confidence " << confidence;
      EXPECT_EQ(ci.high, static_cast<double>(n + 1 - k))
          << "n = " << n << ", confidence " << confidence;
    }
}

TEST(StatsMedianCi, CoverageAtLeastConfidenceForLargeSamples) {
  // With a million values the ranks must still satisfy the definition: P(B <= k - 1) <= 0.025 <
  // P(B <= k). The normal approximation puts k near n/2 - 1.96 sqrt(n) / 2 = 499020.
  const size_t n = 1'000'000;
  const Interval ci = median_ci_sorted(one_to(n), 0.95);
  const auto k = static_cast<size_t>(ci.low);
  EXPECT_EQ(ci.high, static_cast<double>(n + 1 - k));
  EXPECT_NEAR(static_cast<double>(k), 499020, 3);
  EXPECT_LE(binomial_half_cdf(n, k - 1), 0.025);
  EXPECT_GT(binomial_half_cdf(n, k), 0.025);
}

TEST(StatsMedianCi, TinySamplesGiveTheFullRange) {
  // n = 5: P(B = 0) = 1/32 = 0.031 > 0.025, no rank qualifies: the full range (coverage 0.94).
  // n = 8: P(B <= 1) = 9/256 = 0.035 > 0.025, k = 1. n = 9: P(B <= 1) = 10/512 = 0.0195, k = 2.
  for (size_t n : {2u, 3u, 4u, 5u, 6u, 7u, 8u}) {
    const Interval ci = median_ci_sorted(one_to(n), 0.95);
    EXPECT_EQ(ci.low, 1.0) << n;
    EXPECT_EQ(ci.high, static_cast<double>(n)) << n;
  }
  EXPECT_EQ(median_ci_sorted(one_to(9), 0.95).low, 2.0);
  EXPECT_EQ(median_ci_sorted(one_to(9), 0.95).high, 8.0);
  const Interval one = median_ci_sorted({4.5}, 0.95);
  EXPECT_EQ(one.low, 4.5);
  EXPECT_EQ(one.high, 4.5);
  const Interval none = median_ci_sorted({}, 0.95);
  EXPECT_TRUE(std::isnan(none.low));
  EXPECT_TRUE(std::isnan(none.high));
}

TEST(StatsMedianCi, ExtremeConfidences) {
  // Confidence 1: the full range. Confidence 0: the interval shrinks to the median, which is one
  // value for odd n and the two middle values for even n.
  EXPECT_EQ(median_ci_sorted(one_to(50), 1.0).low, 1.0);
  EXPECT_EQ(median_ci_sorted(one_to(50), 1.0).high, 50.0);
  EXPECT_EQ(median_ci_sorted(one_to(11), 0.0).low, 6.0);
  EXPECT_EQ(median_ci_sorted(one_to(11), 0.0).high, 6.0);
  EXPECT_EQ(median_ci_sorted(one_to(10), 0.0).low, 5.0);
  EXPECT_EQ(median_ci_sorted(one_to(10), 0.0).high, 6.0);
}

TEST(StatsBootstrap, SeededAndPlausible) {
  const std::vector<double> values = one_to(101);  // median 51
  const Interval a = bootstrap_median_ci(values, 0.95, 2000, 42);
  const Interval b = bootstrap_median_ci(values, 0.95, 2000, 42);
  EXPECT_EQ(a.low, b.low);  // same seed, same interval
  EXPECT_EQ(a.high, b.high);
  EXPECT_LE(a.low, 51.0);
  EXPECT_GE(a.high, 51.0);
  // The sample median of 101 uniform values has a standard error near 101 / (2 sqrt(101)) = 5,
  // so the 95 % interval reaches about 10 either side.
  EXPECT_GT(a.low, 35.0);
  EXPECT_LT(a.high, 67.0);
  // Another seed draws other resamples (the interval may move a little, never outside the data).
  const Interval c = bootstrap_median_ci(values, 0.95, 2000, 7);
  EXPECT_GE(c.low, 1.0);
  EXPECT_LE(c.high, 101.0);
}

TEST(StatsBootstrap, DegenerateInputs) {
  const Interval constant = bootstrap_median_ci({3, 3, 3, 3}, 0.95, 100, 1);
  EXPECT_EQ(constant.low, 3.0);
  EXPECT_EQ(constant.high, 3.0);
  // Two values: every resample median is 1, 1.5 or 2.
  const Interval two = bootstrap_median_ci({1, 2}, 0.9, 500, 3);
  EXPECT_GE(two.low, 1.0);
  EXPECT_LE(two.high, 2.0);
  EXPECT_TRUE(std::isnan(bootstrap_median_ci({}, 0.95, 100, 1).low));
  EXPECT_TRUE(std::isnan(bootstrap_median_ci({1, 2, 3}, 0.95, 0, 1).high));
}

TEST(StatsMannWhitney, CompletelySeparatedSamples) {
  // a = 1..8 holds ranks 1..8: R_a = 36, U = 36 - 8*9/2 = 0. mu = 8*8/2 = 32,
  // sigma = sqrt(8*8*17/12) = sqrt(90.667) = 9.52190, z = (0 - 32 + 0.5) / 9.52190 = -3.30816
  // (the continuity correction moves U half a unit towards mu), p = 2 Phi(-3.30816) = 0.000939.
  const std::vector<double> a = one_to(8);
  std::vector<double> b;
  for (int v = 9; v <= 16; ++v) b.push_back(v);
  const MannWhitney r = mann_whitney_sorted(a, b);
  EXPECT_EQ(r.u, 0.0);
  EXPECT_NEAR(r.z, (0 - 32 + 0.5) / std::sqrt(8.0 * 8 * 17 / 12), 1e-12);
  EXPECT_NEAR(r.z, -3.30816, 1e-5);
  EXPECT_NEAR(r.p_value, 0.000939106, 1e-8);
  // Swapping the samples: U' = 8*8 - U = 64, z changes sign, same p.
  const MannWhitney s = mann_whitney_sorted(b, a);
  EXPECT_EQ(s.u, 64.0);
  EXPECT_NEAR(s.z, 3.30816, 1e-5);
  EXPECT_NEAR(s.p_value, r.p_value, 1e-15);
}

TEST(StatsMannWhitney, TiesUseAverageRanksAndTieCorrection) {
  // a = {1,2,2,3}, b = {2,3,3,4}. Pooled: 1(a) | 2(a) 2(a) 2(b) | 3(a) 3(b) 3(b) | 4(b).
  // Ranks: 1 -> 1; the three 2s share (2+3+4)/3 = 3; the three 3s share (5+6+7)/3 = 6; 4 -> 8.
  // R_a = 1 + 3 + 3 + 6 = 13, U = 13 - 4*5/2 = 3 (pairs: 0 + 0.5 + 0.5 + (1 + 0.5 + 0.5) = 3).
  // mu = 8, ties: two groups of 3, sum (t^3 - t) = 24 + 24 = 48, N = 8:
  // sigma^2 = 4*4/12 * (9 - 48 / (8*7)) = 1.33333 * 8.142857 = 10.857143, sigma = 3.295018.
  // z = (3 - 8 + 0.5) / 3.295018 = -1.365698, p = 2 Phi(-1.365698) = 0.172034.
  const MannWhitney r = mann_whitney_sorted({1, 2, 2, 3}, {2, 3, 3, 4});
  EXPECT_EQ(r.u, 3.0);
  EXPECT_NEAR(r.z, -4.5 / std::sqrt(16.0 / 12 * (9 - 48.0 / 56)), 1e-12);
  EXPECT_NEAR(r.z, -1.365698, 1e-6);
  EXPECT_NEAR(r.p_value, 0.172034, 1e-6);
}

TEST(StatsMannWhitney, HollanderWolfeDepressionData) {
  // Hollander & Wolfe's depression scores (the classic paired example), tested here as two
  // independent samples. Sorted:
  //   a: 0.50 1.30 1.55 1.62 1.68 1.83 1.88 2.48 3.06
  //   b: 0.598 0.647 0.878 1.06 1.06 1.29 1.29 2.05 3.14
  // U of a = number of pairs with a > b (no value is shared between the samples):
  //   0.50 -> 0; 1.30, 1.55, 1.62, 1.68, 1.83, 1.88 -> 7 each (everything up to 1.29);
  //   2.48, 3.06 -> 8 each (also 2.05). U = 6*7 + 2*8 = 58.
  // mu = 81/2 = 40.5. Ties within b: 1.06 twice, 1.29 twice: sum (t^3 - t) = 6 + 6 = 12, N = 18:
  // sigma^2 = 81/12 * (19 - 12 / (18*17)) = 6.75 * 18.960784 = 127.985294, sigma = 11.313059.
  // z = (58 - 40.5 - 0.5) / 11.313059 = 1.502688, p = 2 (1 - Phi(1.502688)) = 0.13292.
  std::vector<double> a{1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30};
  std::vector<double> b{0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29};
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const MannWhitney r = mann_whitney_sorted(a, b);
  EXPECT_EQ(r.u, 58.0);
  EXPECT_NEAR(r.z, 1.502688, 1e-6);
  EXPECT_NEAR(r.p_value, 0.13292, 1e-3);
  EXPECT_NEAR(r.p_value, 0.1329195, 1e-6);
}

TEST(StatsMannWhitney, NoEvidenceGivesPOne) {
  // Identical samples: U = mu = 32, z = 0, p = 1.
  const MannWhitney same = mann_whitney_sorted(one_to(8), one_to(8));
  EXPECT_EQ(same.u, 32.0);
  EXPECT_EQ(same.z, 0.0);
  EXPECT_EQ(same.p_value, 1.0);
  // |U - mu| = 0.5 is eaten by the continuity correction: p = 1.
  // a = {1, 2}, b = {2}: U = 0 + 0.5 (the tie) = 0.5, mu = 1.
  EXPECT_EQ(mann_whitney_sorted({1, 2}, {2}).u, 0.5);
  EXPECT_EQ(mann_whitney_sorted({1, 2}, {2}).p_value, 1.0);
  // Every value tied: variance 0, p = 1, U = mu.
  const MannWhitney tied = mann_whitney_sorted({5, 5, 5}, {5, 5});
  EXPECT_EQ(tied.u, 3.0);
  EXPECT_EQ(tied.p_value, 1.0);
  EXPECT_EQ(mann_whitney_sorted({}, {1, 2}).p_value, 1.0);
  EXPECT_EQ(mann_whitney_sorted({1, 2}, {}).p_value, 1.0);
  EXPECT_EQ(mann_whitney_sorted({}, {}).p_value, 1.0);
}

TEST(StatsMannWhitney, UEqualsPairCountOnInterleavedSamples) {
  // U counts pairs with a > b, halves for ties; checked against a direct O(nm) count.
  const std::vector<double> a{0.5, 1, 1, 2, 4, 4, 4, 7, 9, 9.5};
  const std::vector<double> b{1, 3, 4, 4, 5, 9, 9, 10};
  double pairs = 0;
  for (double x : a)
    for (double y : b) pairs += x > y ? 1.0 : x == y ? 0.5 : 0.0;
  EXPECT_EQ(mann_whitney_sorted(a, b).u, pairs);
  EXPECT_EQ(mann_whitney_sorted(b, a).u, 80 - pairs);
}

TEST(StatsMedianRatio, IdenticalSamples) {
  // n = 20 at the per-median level 1 - 0.05/2 = 0.975 (alpha / 2 = 0.0125): P(B <= 4) = 0.0059,
  // P(B <= 5) = 0.0207, so k = 5 and each interval is [x_(5), x_(16)] = [5, 16].
  // Ratio interval [5/16, 16/5] = [0.3125, 3.2].
  const std::vector<double> a = one_to(20);
  ASSERT_EQ(reference_lower_rank(20, 0.975), 5u);
  const RatioEstimate r = median_ratio_sorted(a, a, 0.95);
  EXPECT_EQ(r.ratio, 1.0);
  EXPECT_DOUBLE_EQ(r.ci.low, 5.0 / 16);
  EXPECT_DOUBLE_EQ(r.ci.high, 16.0 / 5);
  EXPECT_LE(r.ci.low, 1.0);
  EXPECT_GE(r.ci.high, 1.0);
}

TEST(StatsMedianRatio, TwiceAsSlow) {
  // b = 2a: medians 10.5 and 21, ratio 2; intervals a [5, 16], b [10, 32]:
  // [10/16, 32/5] = [0.625, 6.4], which holds 2.
  const std::vector<double> a = one_to(20);
  std::vector<double> b;
  for (double v : a) b.push_back(2 * v);
  const RatioEstimate r = median_ratio_sorted(a, b, 0.95);
  EXPECT_EQ(r.ratio, 2.0);
  EXPECT_DOUBLE_EQ(r.ci.low, 0.625);
  EXPECT_DOUBLE_EQ(r.ci.high, 6.4);
  // Large samples make the interval tight: n = 10000 per side, 10 000 distinct timings in
  // [1, 1.1) and twice that; the interval is within a few per cent of 2 and excludes 1.
  std::vector<double> big_a, big_b;
  for (int i = 0; i < 10000; ++i) {
    big_a.push_back(1 + i * 1e-5);
    big_b.push_back(2 * (1 + i * 1e-5));
  }
  const RatioEstimate big = median_ratio_sorted(big_a, big_b, 0.95);
  EXPECT_NEAR(big.ratio, 2.0, 1e-12);
  EXPECT_LE(big.ci.low, 2.0);
  EXPECT_GE(big.ci.high, 2.0);
  EXPECT_GT(big.ci.low, 1.99);
  EXPECT_LT(big.ci.high, 2.01);
}

TEST(StatsMedianRatio, EmptySample) {
  const RatioEstimate r = median_ratio_sorted({}, {1, 2}, 0.95);
  EXPECT_TRUE(std::isnan(r.ratio));
  EXPECT_TRUE(std::isnan(r.ci.low));
  EXPECT_TRUE(std::isnan(r.ci.high));
}

// Expects adjusted == want element by element, to rounding.
void expect_adjusted(const std::vector<double>& p, const std::vector<double>& want) {
  const std::vector<double> got = holm_adjusted(p);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    if (std::isnan(want[i]))
      EXPECT_TRUE(std::isnan(got[i])) << i;
    else
      EXPECT_NEAR(got[i], want[i], 1e-15) << i;
}

TEST(StatsHolm, TextbookExample) {
  // Four tests with p = 0.01, 0.04, 0.03, 0.005. Sorted: 0.005, 0.01, 0.03, 0.04, multiplied by
  // 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04, and the running maximum: 0.02, 0.03, 0.06, 0.06. At
  // alpha 0.05 the tests with p = 0.005 and 0.01 are rejected, the other two not.
  expect_adjusted({0.01, 0.04, 0.03, 0.005}, {0.03, 0.06, 0.06, 0.02});
  // 0.01 .. 0.05: 5 x 0.01 = 0.05, 4 x 0.02 = 0.08, 3 x 0.03 = 0.09, then 0.08 and 0.05 are
  // lifted to 0.09 by the running maximum (R's p.adjust(method = "holm") gives the same).
  expect_adjusted({0.01, 0.02, 0.03, 0.04, 0.05}, {0.05, 0.08, 0.09, 0.09, 0.09});
}

TEST(StatsHolm, ClampsTiesNaNAndSmallFamilies) {
  expect_adjusted({0.3, 0.6, 0.9}, {0.9, 1, 1});  // 3 x 0.3, min(1, 2 x 0.6), running max
  expect_adjusted({0.02, 0.02}, {0.04, 0.04});    // ties share the larger multiplier's value
  expect_adjusted({kNaN, 0.04, 0.01}, {kNaN, 0.04, 0.02});  // a NaN is not a test: m = 2
  expect_adjusted({0.03}, {0.03});                          // one test: nothing to adjust
  expect_adjusted({}, {});
}

TEST(StatsHolm, BetweenTheRawPAndBonferroni) {
  std::vector<double> p;
  for (int i = 1; i <= 496; ++i) p.push_back(std::fmod(0.618033988749895 * i, 1.0) / 10);
  const std::vector<double> adjusted = holm_adjusted(p);
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_GE(adjusted[i], p[i]);
    EXPECT_LE(adjusted[i], std::min(1.0, 496 * p[i]));
  }
}

TEST(StatsSpearman, SmallVectors) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3}, {1, 4, 9}), 1.0);  // monotone, not linear
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0);
  // x = 1..5 -> ranks 1..5; y = {5,6,7,8,7} -> ranks {1, 2, 3.5, 5, 3.5} (the two 7s share
  // (3+4)/2). Deviations from 3: dx = -2,-1,0,1,2; dy = -2,-1,0.5,2,0.5.
  // sum dx dy = 4+1+0+2+1 = 8, sum dx^2 = 10, sum dy^2 = 4+1+0.25+4+0.25 = 9.5:
  // rho = 8 / sqrt(95) = 0.820783.
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 8 / std::sqrt(95.0), 1e-15);
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 0.820783, 1e-6);
}

TEST(StatsSpearman, UndefinedCases) {
  EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3})));  // constant side
  EXPECT_TRUE(std::isnan(spearman({1, 2}, {1, 2, 3})));     // sizes differ
  EXPECT_TRUE(std::isnan(spearman({1}, {1})));              // fewer than 2
  EXPECT_TRUE(std::isnan(spearman({1, kNaN, 3}, {1, 2, 3})));
}

TEST(StatsNormalCdf, KnownValues) {
  EXPECT_DOUBLE_EQ(normal_cdf(0), 0.5);
  EXPECT_NEAR(normal_cdf(1.959963984540054), 0.975, 1e-15);
  EXPECT_NEAR(normal_cdf(-1), 0.15865525393145705, 1e-15);
  EXPECT_NEAR(normal_cdf(-10), 7.619853024160527e-24, 1e-36);  // no cancellation in the tail
}

// Reference intervals of a binomial proportion at 95%, from SciPy 1.10.1:
//   scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method='wilson'|'exact')
void expect_interval(const std::optional<Interval>& ci, double low, double high) {
  ASSERT_TRUE(ci.has_value());
  EXPECT_NEAR(ci->low, low, 1e-9);
  EXPECT_NEAR(ci->high, high, 1e-9);
}

TEST(StatsWilson, AgainstScipy) {
  expect_interval(wilson_interval(0, 9, 0.95), 0.0, 0.29914504841954404);
  expect_interval(wilson_interval(3, 10, 0.95), 0.10779126740630102, 0.6032218525388546);
  expect_interval(wilson_interval(50, 100, 0.95), 0.4038315303659956, 0.5961684696340044);
  expect_interval(wilson_interval(9, 9, 0.95), 0.7008549515804559, 1.0);
  expect_interval(wilson_interval(1, 9, 0.95), 0.019890887638544907, 0.434999705576656);
}

TEST(StatsClopperPearson, AgainstScipy) {
  // k = 0: the upper end solves (1 - p)^n = alpha / 2, p = 1 - 0.025^(1/9) = 0.336267...
  expect_interval(clopper_pearson_interval(0, 9, 0.95), 0.0, 1 - std::pow(0.025, 1.0 / 9));
  expect_interval(clopper_pearson_interval(0, 9, 0.95), 0.0, 0.3362671168799429);
  expect_interval(clopper_pearson_interval(9, 9, 0.95), 0.6637328831200571, 1.0);
  expect_interval(clopper_pearson_interval(3, 10, 0.95), 0.06673951117773447, 0.652452850060008);
  expect_interval(clopper_pearson_interval(50, 100, 0.95), 0.3983211295033011, 0.6016788704966989);
  expect_interval(clopper_pearson_interval(1, 9, 0.95), 0.0028091367465997693, 0.48249651491699447);
  expect_interval(clopper_pearson_interval(0, 1, 0.95), 0.0, 0.975);  // 1 - alpha / 2
}

TEST(StatsRateInterval, ExactEndsAndNoIntervalWithoutTrials) {
  EXPECT_FALSE(wilson_interval(0, 0, 0.95).has_value());
  EXPECT_FALSE(clopper_pearson_interval(0, 0, 0.95).has_value());
  EXPECT_FALSE(rate_interval(0, 0, 0.95).has_value());
  EXPECT_FALSE(rate_interval(3, 2, 0.95).has_value());  // more successes than trials
  EXPECT_FALSE(rate_interval(-1, 2, 0.95).has_value());
  // The rule of the analysis is Clopper-Pearson at any size; it contains the point estimate.
  for (const auto& [k, n] : {std::pair{0, 9}, {3, 10}, {50, 100}, {9, 9}, {7, 5000}}) {
    const auto ci = rate_interval(k, n, 0.95);
    const auto cp = clopper_pearson_interval(k, n, 0.95);
    ASSERT_TRUE(ci && cp);
    EXPECT_EQ(ci->low, cp->low);
    EXPECT_EQ(ci->high, cp->high);
    const double point = static_cast<double>(k) / n;
    EXPECT_LE(ci->low, point);
    EXPECT_GE(ci->high, point);
    EXPECT_EQ(ci->low > 0, k > 0);  // "certainly above 0" exactly when something differed
    EXPECT_EQ(ci->high < 1, k < n);
  }
}

TEST(StatsRankSeparation, EffectSizesAgainstHandCountAndScipy) {
  // higher sorted: 0.3 0.7 0.9 1.2 1.2 2.5 3.1 4.0; lower sorted: 0.05 0.1 0.2 0.3 0.4 0.5 0.6
  // 0.7 1.2. U of `higher` = pairs with x > y plus half the ties:
  //   0.3 -> 3 + 0.5; 0.7 -> 7 + 0.5; 0.9 -> 8; 1.2 -> 8 + 0.5 (twice); 2.5, 3.1, 4.0 -> 9 each:
  //   U = 3.5 + 7.5 + 8 + 17 + 27 = 63, auc = 63 / 72 = 0.875, rank-biserial 0.75.
  // p from scipy 1.10.1: mannwhitneyu(higher, lower, alternative='two-sided',
  // method='asymptotic', use_continuity=True).pvalue = 0.010485586098533548. The interval is
  // Hanley-McNeil's formula evaluated in numpy (norm.ppf(0.975)): [0.69566690, 1.05433310],
  // clamped to 1 at the top.
  const Separation s =
      rank_separation({0.3, 0.9, 1.2, 1.2, 2.5, 3.1, 0.7, 4.0},
                      {0.1, 0.3, 0.5, 0.7, 0.2, 1.2, 0.05, 0.4, 0.6, std::nan("")}, 0.95);
  EXPECT_EQ(s.n_higher, 8u);
  EXPECT_EQ(s.n_lower, 9u);  // the NaN is skipped
  EXPECT_DOUBLE_EQ(s.auc, 0.875);
  EXPECT_DOUBLE_EQ(s.rank_biserial, 0.75);
  EXPECT_NEAR(s.p_value, 0.010485586098533548, 1e-12);
  EXPECT_NEAR(s.auc_ci.low, 0.6956668985688129, 1e-9);
  EXPECT_EQ(s.auc_ci.high, 1.0);
}

TEST(StatsRankSeparation, DirectionAndDegenerateGroups) {
  // Swapping the groups mirrors the effect: auc 1 - 0.875, correlation -0.75, the same p.
  const Separation swapped = rank_separation({0.1, 0.3, 0.5, 0.7, 0.2, 1.2, 0.05, 0.4, 0.6},
                                             {0.3, 0.9, 1.2, 1.2, 2.5, 3.1, 0.7, 4.0}, 0.95);
  EXPECT_DOUBLE_EQ(swapped.auc, 0.125);
  EXPECT_DOUBLE_EQ(swapped.rank_biserial, -0.75);
  EXPECT_NEAR(swapped.p_value, 0.010485586098533548, 1e-12);
  // Complete separation: auc 1 and a zero-width interval (Hanley-McNeil's known weakness).
  const Separation perfect = rank_separation({5, 6, 7}, {1, 2, 3, 4}, 0.95);
  EXPECT_EQ(perfect.auc, 1.0);
  EXPECT_EQ(perfect.auc_ci.low, 1.0);
  // Every value tied: no separation, p = 1.
  const Separation tied = rank_separation({0, 0, 0}, {0, 0}, 0.95);
  EXPECT_EQ(tied.auc, 0.5);
  EXPECT_EQ(tied.rank_biserial, 0.0);
  EXPECT_EQ(tied.p_value, 1.0);
  // An empty group (here: only NaN): nothing to compare.
  const Separation empty = rank_separation({1, 2}, {std::nan("")}, 0.95);
  EXPECT_EQ(empty.n_lower, 0u);
  EXPECT_TRUE(std::isnan(empty.auc));
  EXPECT_EQ(empty.p_value, 1.0);
}

}  // namespace
}  // namespace deltann::stats
