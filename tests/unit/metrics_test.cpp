// Per-image metrics between two variants' outputs (metrics.h), on hand-made inputs whose expected
// values are worked out in the comments.
#include "deltann/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

namespace deltann::metrics {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(MetricsJaccard, SetOverlap) {
  EXPECT_DOUBLE_EQ(jaccard({1, 2, 3}, {2, 3, 4}), 0.5);              // {2,3} / {1,2,3,4}
  EXPECT_DOUBLE_EQ(jaccard({1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}), 1.0);  // order does not matter
  EXPECT_DOUBLE_EQ(jaccard({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}), 0.0);
  EXPECT_DOUBLE_EQ(jaccard({}, {}), 1.0);
  EXPECT_DOUBLE_EQ(jaccard({1}, {}), 0.0);
  EXPECT_DOUBLE_EQ(jaccard({1, 2, 3, 4, 5}, {1, 2, 3, 4, 6}), 4.0 / 6);  // 4 common, 6 in all
}

TEST(MetricsRankCorrelation, IdenticalAndReversed) {
  const std::vector<int> ids{7, 3, 9, 1, 4};
  const std::vector<float> scores{0.5f, 0.2f, 0.1f, 0.05f, 0.01f};
  EXPECT_DOUBLE_EQ(topk_rank_correlation(ids, scores, ids, scores), 1.0);
  // The same five ids in the opposite order: ranks 1..5 against 5..1, rho = -1.
  const std::vector<int> reversed{4, 1, 9, 3, 7};
  EXPECT_DOUBLE_EQ(topk_rank_correlation(ids, scores, reversed, scores), -1.0);
  // Scores need not come sorted: the ranks follow the scores, not the positions.
  EXPECT_DOUBLE_EQ(
      topk_rank_correlation({9, 7, 4, 3, 1}, {0.1f, 0.5f, 0.01f, 0.2f, 0.05f}, ids, scores), 1.0);
}

// Equal strictly ranked lists return 1 without the general computation; the general one gives
// exactly 1 for the same ranking stored in another order, so the shortcut changes no value.
// Equal lists with tied scores or repeated ids still take the general path.
TEST(MetricsRankCorrelation, SameRankingIsExactlyOneWithOrWithoutTheShortcut) {
  std::mt19937 rng(7);
  for (size_t k = 1; k <= 64; ++k) {
    std::vector<int> ids(k);
    std::vector<float> scores(k);
    for (size_t i = 0; i < k; ++i) {
      ids[i] = static_cast<int>(rng() % 100000);
      scores[i] = static_cast<float>(k - i);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    scores.resize(ids.size());
    std::shuffle(ids.begin(), ids.end(), rng);
    EXPECT_EQ(topk_rank_correlation(ids, scores, ids, scores), 1.0) << k;
    const std::vector<int> ids_reordered(ids.rbegin(), ids.rend());
    const std::vector<float> scores_reordered(scores.rbegin(), scores.rend());
    EXPECT_EQ(topk_rank_correlation(ids, scores, ids_reordered, scores_reordered), 1.0) << k;
    EXPECT_EQ(jaccard(ids, ids), 1.0);
  }
  // Tied scores on one side: the same ids, but ranks 1, 2.5, 2.5 against 1, 2, 3.
  const double tied = topk_rank_correlation({1, 2, 3}, {3, 2, 1}, {1, 2, 3}, {3, 1, 1});
  EXPECT_LT(tied, 1.0);
  EXPECT_NEAR(tied, std::sqrt(0.75), 1e-12);  // cov 1.5 / sqrt(2 * 1.5)
  EXPECT_DOUBLE_EQ(topk_rank_correlation({1, 1, 2}, {3, 2, 1}, {1, 1, 2}, {3, 2, 1}), 1.0);
}

TEST(MetricsRankCorrelation, DisjointLists) {
  // Union of 10 ids. In a: ids 1..5 take ranks 1..5 and the five absent ids share the mean of the
  // ranks 6..10, which is 8; in b the other way round. Both vectors have mean 5.5.
  //   a: 1 2 3 4 5 8 8 8 8 8     deviations -4.5 -3.5 -2.5 -1.5 -0.5 | 2.5 x5
  //   b: 8 8 8 8 8 1 2 3 4 5     deviations 2.5 x5 | -4.5 -3.5 -2.5 -1.5 -0.5
  // sum da db = 2.5 * (-12.5) * 2 = -62.5; sum da^2 = 20.25+12.25+6.25+2.25+0.25 + 5*6.25 = 72.5.
  // rho = -62.5 / 72.5 = -25/29 = -0.862069.
  const std::vector<float> scores{5, 4, 3, 2, 1};
  const double rho = topk_rank_correlation({1, 2, 3, 4, 5}, scores, {6, 7, 8, 9, 10}, scores);
  EXPECT_NEAR(rho, -25.0 / 29, 1e-15);
  EXPECT_NEAR(rho, -0.862069, 1e-6);
}

TEST(MetricsRankCorrelation, PartialOverlap) {
  // a = {1,2,3}, b = {1,3,4} (both by descending score). Union {1,2,3,4}.
  // a ranks: 1->1, 2->2, 3->3, 4 absent -> rank 4 (the only rank after a's last one).
  // b ranks: 1->1, 3->2, 4->3, 2 absent -> 4.
  // Over ids (1,2,3,4): ra = (1,2,3,4), rb = (1,4,2,3), both mean 2.5.
  // da = (-1.5,-0.5,0.5,1.5), db = (-1.5,1.5,-0.5,0.5): sum da db = 2.25-0.75-0.25+0.75 = 2,
  // sum da^2 = sum db^2 = 5: rho = 2/5 = 0.4.
  EXPECT_NEAR(topk_rank_correlation({1, 2, 3}, {0.5f, 0.3f, 0.2f}, {1, 3, 4}, {0.6f, 0.3f, 0.1f}),
              0.4, 1e-15);
}

TEST(MetricsRankCorrelation, TiedScoresShareTheirRank) {
  // a: ids 1 and 2 tie -> ranks 1.5, 1.5, then 3; b: 1, 2, 3. Means 2.
  // da = (-0.5,-0.5,1), db = (-1,0,1): sum da db = 0.5+0+1 = 1.5, sum da^2 = 1.5, sum db^2 = 2:
  // rho = 1.5 / sqrt(3) = 0.866025.
  EXPECT_NEAR(topk_rank_correlation({1, 2, 3}, {0.5f, 0.5f, 0.1f}, {1, 2, 3}, {0.9f, 0.5f, 0.1f}),
              1.5 / std::sqrt(3.0), 1e-15);
  // A list that ties everything carries no order: 1 against another such list, 0 otherwise.
  EXPECT_DOUBLE_EQ(topk_rank_correlation({1, 2}, {1, 1}, {2, 1}, {3, 3}), 1.0);
  EXPECT_DOUBLE_EQ(topk_rank_correlation({1, 2}, {1, 1}, {1, 2}, {3, 2}), 0.0);
}

TEST(MetricsRankCorrelation, ListsOfDifferentLengths) {
  // a = {1,2,3}, b = {2,1}. Union {1,2,3}. a ranks (1,2,3); b ranks 2->1, 1->2 and 3, absent,
  // takes the one rank after b's last: 3. Over ids (1,2,3): ra = (1,2,3), rb = (2,1,3), means 2.
  // da = (-1,0,1), db = (0,-1,1): sum da db = 1, sum da^2 = sum db^2 = 2: rho = 0.5.
  EXPECT_NEAR(topk_rank_correlation({1, 2, 3}, {3, 2, 1}, {2, 1}, {2, 1}), 0.5, 1e-15);
}

TEST(MetricsRankCorrelation, SmallAndInvalidInputs) {
  EXPECT_DOUBLE_EQ(topk_rank_correlation({7}, {0.9f}, {7}, {0.4f}), 1.0);  // |U| = 1
  EXPECT_DOUBLE_EQ(topk_rank_correlation({}, {}, {}, {}), 1.0);            // |U| = 0
  // {7} against {8}: ranks (1, 2) and (2, 1): rho = -1.
  EXPECT_DOUBLE_EQ(topk_rank_correlation({7}, {0.9f}, {8}, {0.4f}), -1.0);
  EXPECT_TRUE(std::isnan(topk_rank_correlation({1, 2}, {0.5f, kNaN}, {1, 2}, {0.5f, 0.4f})));
  EXPECT_THROW(topk_rank_correlation({1, 2}, {0.5f}, {1, 2}, {0.5f, 0.4f}), std::invalid_argument);
}

TEST(MetricsTop2Gap, LogitsAndProbabilities) {
  // Logits {2, 1}: p1/p2 = e^(2-1), so (p1 - p2) / p1 = 1 - e^-1 = 0.632121.
  EXPECT_NEAR(top2_relative_gap({2, 1}, OutputKind::Logits), 1 - std::exp(-1.0), 1e-15);
  EXPECT_NEAR(top2_relative_gap({1, 2, -3}, OutputKind::Logits), 1 - std::exp(-1.0), 1e-15);
  // Probabilities {0.6, 0.3}: (0.6 - 0.3) / 0.6 = 0.5 (0.3f is exactly half of 0.6f).
  EXPECT_DOUBLE_EQ(top2_relative_gap({0.6f, 0.3f, 0.1f}, OutputKind::Probabilities), 0.5);
  EXPECT_DOUBLE_EQ(top2_relative_gap({0.4f, 0.4f}, OutputKind::Probabilities), 0.0);  // a tie
  EXPECT_DOUBLE_EQ(top2_relative_gap({3, 3}, OutputKind::Logits), 0.0);
  EXPECT_DOUBLE_EQ(top2_relative_gap({0.9f}, OutputKind::Probabilities), 1.0);
  EXPECT_DOUBLE_EQ(top2_relative_gap({-4}, OutputKind::Logits), 1.0);
}

TEST(MetricsTop2Gap, UndefinedCases) {
  EXPECT_TRUE(std::isnan(top2_relative_gap({kNaN, 1}, OutputKind::Logits)));
  EXPECT_TRUE(std::isnan(top2_relative_gap({2, 1, kNaN}, OutputKind::Logits)));
  EXPECT_TRUE(std::isnan(top2_relative_gap({kInf, 1}, OutputKind::Logits)));
  EXPECT_TRUE(std::isnan(top2_relative_gap({kNaN}, OutputKind::Probabilities)));
  EXPECT_TRUE(std::isnan(top2_relative_gap({}, OutputKind::Logits)));
  EXPECT_TRUE(std::isnan(top2_relative_gap({0, 0}, OutputKind::Probabilities)));
}

TEST(MetricsNumericDifference, HandMadeVectors) {
  // a = {1, 2, 3, 4}, b = {1, 2.5, 2, 4}: |a - b| = {0, 0.5, 1, 0}.
  const std::vector<float> a{1, 2, 3, 4}, b{1, 2.5f, 2, 4};
  const NumericDifference d = numeric_difference(a, b, 0.1, 0.1);
  EXPECT_EQ(d.max_abs, 1.0);
  EXPECT_EQ(d.sum_abs, 1.5);
  EXPECT_EQ(d.elements, 4);
  // ||a - b||^2 = 0.25 + 1 = 1.25, ||a||^2 = 1+4+9+16 = 30: sqrt(1.25/30) = 0.204124.
  EXPECT_NEAR(d.relative_l2, std::sqrt(1.25 / 30), 1e-15);
  EXPECT_NEAR(d.relative_l2, 0.204124, 1e-6);
  // a.b = 1 + 5 + 6 + 16 = 28, ||b||^2 = 1 + 6.25 + 4 + 16 = 27.25: 28 / sqrt(817.5) = 0.979296.
  EXPECT_NEAR(d.cosine, 28 / std::sqrt(30 * 27.25), 1e-15);
  EXPECT_NEAR(d.cosine, 0.979296, 1e-6);
  // |a-b|/|b| = {0, 0.5/2.5 = 0.2, 1/2 = 0.5, 0}: min_rtol = 0.5.
  EXPECT_DOUBLE_EQ(d.min_rtol, 0.5);
  // atol 0.1, rtol 0.1: 0.5 > 0.1 + 0.25 and 1 > 0.1 + 0.2 both fail.
  EXPECT_EQ(d.failing, 2);
  // atol 0, rtol 0.5: 0.5 <= 1.25 and 1 <= 1 (the boundary passes, as in numpy.allclose).
  EXPECT_EQ(numeric_difference(a, b, 0, 0.5).failing, 0);
  // atol 0.5, rtol 0: 0.5 <= 0.5 passes, 1 > 0.5 fails.
  EXPECT_EQ(numeric_difference(a, b, 0.5, 0).failing, 1);
}

TEST(MetricsNumericDifference, IdenticalAndEmpty) {
  const std::vector<float> v{0.1f, -2, 3e-8f, 1e30f};
  const NumericDifference same = numeric_difference(v, v, 0, 0);
  EXPECT_EQ(same.max_abs, 0.0);
  EXPECT_EQ(same.relative_l2, 0.0);
  EXPECT_EQ(same.cosine, 1.0);
  EXPECT_EQ(same.min_rtol, 0.0);
  EXPECT_EQ(same.failing, 0);
  const NumericDifference empty = numeric_difference({}, {}, 0, 0);
  EXPECT_EQ(empty.elements, 0);
  EXPECT_EQ(empty.max_abs, 0.0);
  EXPECT_EQ(empty.relative_l2, 0.0);
  EXPECT_EQ(empty.cosine, 1.0);
  EXPECT_THROW(numeric_difference({1, 2}, {1}, 0, 0), std::invalid_argument);
}

TEST(MetricsNumericDifference, ZeroVectors) {
  const NumericDifference both = numeric_difference({0, 0}, {0, 0}, 0, 0);
  EXPECT_EQ(both.relative_l2, 0.0);
  EXPECT_EQ(both.cosine, 1.0);
  EXPECT_EQ(both.min_rtol, 0.0);
  EXPECT_EQ(both.failing, 0);
  // Only a is zero: ||a - b|| / ||a|| = 1 / 0 = inf; no direction to compare: cosine 0.
  // |a - b| / |b| = {1/1, 0}: min_rtol 1.
  const NumericDifference a_zero = numeric_difference({0, 0}, {1, 0}, 0, 0);
  EXPECT_TRUE(std::isinf(a_zero.relative_l2));
  EXPECT_EQ(a_zero.cosine, 0.0);
  EXPECT_EQ(a_zero.min_rtol, 1.0);
  EXPECT_EQ(a_zero.failing, 1);
  // Only b is zero: ||a - b|| / ||a|| = 5 / 5 = 1; |a - b| / |b| with b = 0 and a != b: inf.
  const NumericDifference b_zero = numeric_difference({3, 4}, {0, 0}, 0, 0);
  EXPECT_EQ(b_zero.relative_l2, 1.0);
  EXPECT_EQ(b_zero.cosine, 0.0);
  EXPECT_TRUE(std::isinf(b_zero.min_rtol));
  EXPECT_EQ(b_zero.failing, 2);
  // atol still applies where b = 0: with atol 3.5, |3 - 0| passes and |4 - 0| fails.
  EXPECT_EQ(numeric_difference({3, 4}, {0, 0}, 3.5, 0).failing, 1);
}

TEST(MetricsNumericDifference, NaNOnOneSideIsAnInfiniteDifference) {
  const NumericDifference d = numeric_difference({1, kNaN, 3}, {1, 2, 3}, 1e-3, 1e-3);
  EXPECT_EQ(d.elements, 3);
  EXPECT_TRUE(std::isinf(d.max_abs));
  EXPECT_TRUE(std::isinf(d.sum_abs));
  EXPECT_TRUE(std::isinf(d.relative_l2));
  EXPECT_TRUE(std::isinf(d.min_rtol));
  EXPECT_TRUE(std::isnan(d.cosine));
  EXPECT_EQ(d.failing, 1);
  // The NaN may sit on b's side as well.
  EXPECT_EQ(numeric_difference({1, 2, 3}, {1, 2, kNaN}, 1e9, 1e9).failing, 1);
}

TEST(MetricsNumericDifference, NaNOnBothSidesIsNoDifference) {
  // The (NaN, NaN) element drops out; what is left: a = {1, 3}, b = {1.5, 3}.
  // max = sum = 0.5; ||a - b||^2 = 0.25, ||a||^2 = 10: sqrt(0.025) = 0.158114.
  // a.b = 1.5 + 9 = 10.5, ||b||^2 = 2.25 + 9 = 11.25: 10.5 / sqrt(112.5) = 0.989949.
  // min_rtol = 0.5 / 1.5 = 1/3.
  const NumericDifference d = numeric_difference({1, kNaN, 3}, {1.5f, kNaN, 3}, 0, 0);
  EXPECT_EQ(d.elements, 3);
  EXPECT_EQ(d.max_abs, 0.5);
  EXPECT_EQ(d.sum_abs, 0.5);
  EXPECT_NEAR(d.relative_l2, std::sqrt(0.025), 1e-15);
  EXPECT_NEAR(d.cosine, 10.5 / std::sqrt(112.5), 1e-15);
  EXPECT_NEAR(d.min_rtol, 1.0 / 3, 1e-15);
  EXPECT_EQ(d.failing, 1);  // only the 0.5; the NaN pair passes (numpy equal_nan)
}

TEST(MetricsNumericDifference, Infinities) {
  // Equal infinities are no difference (numpy.allclose compares non-finite values by equality).
  const NumericDifference same = numeric_difference({kInf, 1}, {kInf, 1}, 0, 0);
  EXPECT_EQ(same.max_abs, 0.0);
  EXPECT_EQ(same.failing, 0);
  EXPECT_EQ(same.cosine, 1.0);
  // Opposite infinities, or an infinity against a number, fail whatever the tolerance.
  EXPECT_EQ(numeric_difference({kInf}, {-kInf}, 0, 0).failing, 1);
  const NumericDifference d = numeric_difference({1, 2}, {1, kInf}, 1e9, 1e9);
  EXPECT_EQ(d.failing, 1);
  EXPECT_TRUE(std::isinf(d.max_abs));
  EXPECT_TRUE(std::isinf(d.min_rtol));
}

TEST(MetricsNumericDifference, MinRtolPassesAtItsOwnRounding) {
  // 0.5f against 0.3f: d = 0.20000000298..., |b| = 0.30000001192...; d / |b| rounds to a double
  // whose product with |b| rounds back below d, so the plain quotient would still fail its own
  // element. The reported rtol is the next double up, and that passes.
  const double d = 0.5 - static_cast<double>(0.3f), ay = 0.3f;
  ASSERT_LT(d / ay * ay, d);  // the rounding this test is about
  const NumericDifference r = numeric_difference({0.5f}, {0.3f}, 0, 0);
  EXPECT_EQ(r.min_rtol, std::nextafter(d / ay, HUGE_VAL));
  EXPECT_EQ(numeric_difference({0.5f}, {0.3f}, 0, r.min_rtol).failing, 0);
  // One step lower is below the exact quotient, so no smaller tolerance is honest.
  EXPECT_LT(std::fma(std::nextafter(r.min_rtol, 0.0), ay, -d), 0);
  // The same element in the vector loop (a block of four) as in the tail.
  const NumericDifference block =
      numeric_difference({1, 0.5f, 1, 1, 0.5f}, {1, 0.3f, 1, 1, 0.3f}, 0, 0);
  EXPECT_EQ(block.min_rtol, r.min_rtol);
}

// For random outputs of many lengths (vector loop and tail), the reported min_rtol makes every
// element pass the check with atol = 0, and the double below it is under the exact largest ratio
// (std::fma gives the exact sign of rtol * |b| - d).
TEST(MetricsNumericDifference, MinRtolPassesEveryElementOfRandomOutputs) {
  std::mt19937_64 random(11);
  std::normal_distribution<float> value(0, 3), noise(0, 1e-3f);
  int raised = 0;  // vectors where the plain largest quotient would have failed an element
  for (int trial = 0; trial < 2000; ++trial) {
    const size_t n = 1 + static_cast<size_t>(trial % 37);
    std::vector<float> a(n), b(n);
    for (size_t i = 0; i < n; ++i) {
      b[i] = value(random);
      a[i] = trial % 2 ? b[i] + noise(random) : value(random);
    }
    const NumericDifference r = numeric_difference(a, b, 0, 0);
    ASSERT_TRUE(std::isfinite(r.min_rtol)) << trial;
    EXPECT_EQ(numeric_difference(a, b, 0, r.min_rtol).failing, 0) << trial;
    bool below_exact = false;
    double plain = 0;
    for (size_t i = 0; i < n; ++i) {
      const double d = std::abs(static_cast<double>(a[i]) - b[i]), ay = std::abs(b[i]);
      below_exact = below_exact || std::fma(std::nextafter(r.min_rtol, 0.0), ay, -d) < 0;
      if (d > 0) plain = std::max(plain, d / ay);
    }
    EXPECT_TRUE(below_exact) << trial;
    raised += numeric_difference(a, b, 0, plain).failing > 0;
  }
  EXPECT_GT(raised, 10);  // the case is common: the test exercises it
}

// The definitions in metrics.h written as plainly as possible, for finite inputs.
NumericDifference plain_difference(const std::vector<float>& a, const std::vector<float>& b,
                                   double atol, double rtol) {
  NumericDifference r;
  double diff_sq = 0, a_sq = 0, b_sq = 0, dot = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i], d = std::abs(x - y);
    r.max_abs = std::max(r.max_abs, d);
    r.sum_abs += d;
    diff_sq += d * d;
    a_sq += x * x;
    b_sq += y * y;
    dot += x * y;
    if (d > 0) {
      double ratio = d / std::abs(y);  // raised one step when it fails its own element
      if (ratio * std::abs(y) < d) ratio = std::nextafter(ratio, HUGE_VAL);
      r.min_rtol = std::max(r.min_rtol, ratio);
    }
    if (!(d <= atol + rtol * std::abs(y))) ++r.failing;
  }
  r.elements = static_cast<int64_t>(a.size());
  r.relative_l2 = std::sqrt(diff_sq / a_sq);
  r.cosine = dot / std::sqrt(a_sq * b_sq);
  return r;
}

void expect_close(const NumericDifference& got, const NumericDifference& want) {
  EXPECT_EQ(got.max_abs, want.max_abs);
  EXPECT_NEAR(got.sum_abs, want.sum_abs, 1e-12 * want.sum_abs);
  EXPECT_EQ(got.elements, want.elements);
  EXPECT_NEAR(got.relative_l2, want.relative_l2, 1e-12 * want.relative_l2);
  EXPECT_NEAR(got.cosine, want.cosine, 1e-12);
  EXPECT_EQ(got.min_rtol, want.min_rtol);
  EXPECT_EQ(got.failing, want.failing);
}

TEST(MetricsNumericDifference, LongVectorsMatchThePlainDefinition) {
  // 1003 elements: 250 blocks of four and a tail of three, every element finite.
  std::vector<float> a(1003), b(1003);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(3 * std::sin(0.37 * static_cast<double>(i)));
    b[i] = a[i] + static_cast<float>(0.01 * std::cos(1.3 * static_cast<double>(i)));
  }
  a[10] = b[10] = 0;  // 0 / 0 in min_rtol: no difference, ignored
  a[21] = b[21] = 1;
  expect_close(numeric_difference(a, b, 1e-3, 1e-3), plain_difference(a, b, 1e-3, 1e-3));
  expect_close(numeric_difference(a, b, 0, 0), plain_difference(a, b, 0, 0));
  expect_close(numeric_difference(b, a, 5e-3, 0), plain_difference(b, a, 5e-3, 0));

  // A NaN pair inside a block: the result is that of the vectors without it (but still counts
  // the element).
  std::vector<float> a_nan = a, b_nan = b;
  a_nan[501] = b_nan[501] = kNaN;
  std::vector<float> a_less = a, b_less = b;
  a_less.erase(a_less.begin() + 501);
  b_less.erase(b_less.begin() + 501);
  NumericDifference want = plain_difference(a_less, b_less, 1e-3, 1e-3);
  want.elements = 1003;
  expect_close(numeric_difference(a_nan, b_nan, 1e-3, 1e-3), want);

  // A NaN on one side, in a block or in the tail: infinite difference, one more failing element.
  for (size_t at : {size_t{6}, size_t{1002}}) {
    std::vector<float> a_one = a;
    a_one[at] = kNaN;
    const NumericDifference d = numeric_difference(a_one, b, 0, 0);
    EXPECT_TRUE(std::isinf(d.max_abs)) << at;
    EXPECT_TRUE(std::isinf(d.relative_l2)) << at;
    EXPECT_TRUE(std::isinf(d.min_rtol)) << at;
    EXPECT_TRUE(std::isnan(d.cosine)) << at;
    // Every other element differs except 10 and 21 (and `at` itself fails as a NaN).
    EXPECT_EQ(d.failing, plain_difference(a, b, 0, 0).failing + (b[at] == a[at] ? 1 : 0)) << at;
  }

  // b = 0 where a is not, inside a block: min_rtol infinite, everything else finite.
  std::vector<float> b_zero = b;
  b_zero[5] = 0;
  const NumericDifference z = numeric_difference(a, b_zero, 0, 0);
  EXPECT_TRUE(std::isinf(z.min_rtol));
  EXPECT_TRUE(std::isfinite(z.max_abs));
  EXPECT_TRUE(std::isfinite(z.relative_l2));
}

}  // namespace
}  // namespace deltann::metrics
