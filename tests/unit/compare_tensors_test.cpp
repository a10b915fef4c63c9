// The shared comparator (compare_tensors.h) on hand-made vectors whose expected values are worked
// out in the comments, and the one JSON encoding of non-finite numbers (json_number.h).
#include "deltann/compare_tensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/json_number.h"

namespace deltann {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kInfD = std::numeric_limits<double>::infinity();

TEST(CompareTensors, FiniteVectors) {
  // |a - b| = {0, 0.5, 1, 0}; |a - b| / |b| = {0, 0.2, 0.5, 0}.
  const std::vector<float> a{1, 2, 3, 4}, b{1, 2.5f, 2, 4};
  const ValueComparison c = compare_tensors(a, b, {0.1, 0.1});
  EXPECT_EQ(c.elements, 4);
  EXPECT_EQ(c.max_abs, 1.0);
  EXPECT_EQ(c.sum_abs, 1.5);
  EXPECT_EQ(c.mean_abs(), 0.375);
  EXPECT_DOUBLE_EQ(c.max_rel, 0.5);
  EXPECT_EQ(c.worst_index, 2);
  EXPECT_EQ(c.failing, 2);  // 0.5 > 0.1 + 0.25 and 1 > 0.1 + 0.2
  EXPECT_FALSE(c.passes());
  EXPECT_EQ(c.nonfinite_mismatches, 0);
  EXPECT_EQ(c.diff_sq, 1.25);
  EXPECT_EQ(c.a_sq, 30.0);
  EXPECT_EQ(c.b_sq, 27.25);
  EXPECT_EQ(c.dot, 28.0);
}

TEST(CompareTensors, ToleranceBoundariesPass) {
  const std::vector<float> a{1, 2, 3, 4}, b{1, 2.5f, 2, 4};
  // atol 1: 1 <= 1 passes (the boundary, as in numpy.allclose).
  EXPECT_TRUE(compare_tensors(a, b, {1.0, 0}).passes());
  EXPECT_EQ(compare_tensors(a, b, {std::nextafter(1.0, 0.0), 0}).failing, 1);
  // rtol 0.5: 0.5 <= 1.25 and 1 <= 0.5 * 2 pass.
  EXPECT_TRUE(compare_tensors(a, b, {0, 0.5}).passes());
  EXPECT_EQ(compare_tensors(a, b, {0, std::nextafter(0.5, 0.0)}).failing, 1);
  // Both together: 1 <= 0.5 + 0.25 * 2.
  EXPECT_TRUE(compare_tensors(a, b, {0.5, 0.25}).passes());
  EXPECT_EQ(compare_tensors(a, b, {0.5, 0.2}).failing, 1);
  // max_abs and max_rel are themselves passing tolerances.
  const ValueComparison c = compare_tensors(a, b);
  EXPECT_TRUE(compare_tensors(a, b, {c.max_abs, 0}).passes());
  EXPECT_TRUE(compare_tensors(a, b, {0, c.max_rel}).passes());
  // 0.5 against 0.3 as floats: the rounded quotient fails its own check, max_rel is raised.
  const ValueComparison r = compare_tensors(std::vector<float>{0.5f}, std::vector<float>{0.3f});
  EXPECT_TRUE(
      compare_tensors(std::vector<float>{0.5f}, std::vector<float>{0.3f}, {0, r.max_rel}).passes());
}

TEST(CompareTensors, IdenticalEmptyAndMismatchedLengths) {
  const std::vector<float> v{0.1f, -2, 3e-8f, 1e30f, 5};
  const ValueComparison same = compare_tensors(v, v);
  EXPECT_EQ(same.max_abs, 0.0);
  EXPECT_EQ(same.worst_index, -1);
  EXPECT_TRUE(same.passes());
  const ValueComparison empty = compare_tensors(std::vector<float>{}, std::vector<float>{});
  EXPECT_EQ(empty.elements, 0);
  EXPECT_EQ(empty.mean_abs(), 0.0);
  EXPECT_EQ(empty.worst_index, -1);
  EXPECT_THROW(compare_tensors(std::vector<float>{1, 2}, std::vector<float>{1}),
               std::invalid_argument);
  EXPECT_THROW(compare_tensors(std::vector<double>{1}, std::vector<double>{}),
               std::invalid_argument);
}

TEST(CompareTensors, NaNRules) {
  // NaN on both sides: no difference, left out of the sums, passes.
  const ValueComparison both = compare_tensors(std::vector<float>{1, kNaN, 3, 4, 5},
                                               std::vector<float>{1.5f, kNaN, 3, 4, 5});
  EXPECT_EQ(both.max_abs, 0.5);
  EXPECT_EQ(both.sum_abs, 0.5);
  EXPECT_EQ(both.elements, 5);
  EXPECT_EQ(both.worst_index, 0);
  EXPECT_EQ(both.nonfinite_mismatches, 0);
  EXPECT_EQ(both.a_sq, 1 + 9 + 16 + 25.0);
  EXPECT_EQ(both.failing, 1);
  // NaN on one side: infinite, fails any tolerance, and is the worst element.
  const ValueComparison one = compare_tensors(std::vector<float>{9, 2, 3, 4, kNaN},
                                              std::vector<float>{1, 2, 3, 4, 5}, {1e9, 1e9});
  EXPECT_EQ(one.max_abs, kInfD);
  EXPECT_EQ(one.sum_abs, kInfD);
  EXPECT_EQ(one.max_rel, kInfD);
  EXPECT_EQ(one.worst_index, 4);
  EXPECT_EQ(one.failing, 1);
  EXPECT_EQ(one.nonfinite_mismatches, 1);
  EXPECT_EQ(one.a_sq, 81 + 4 + 9 + 16.0);  // the finite pairs only
  EXPECT_EQ(element_difference(std::nan(""), std::nan("")), 0.0);
  EXPECT_EQ(element_difference(std::nan(""), 0), kInfD);
  EXPECT_EQ(element_difference(1, std::nan("")), kInfD);
}

TEST(CompareTensors, InfinityRules) {
  // Equal infinities: no difference.
  const ValueComparison same =
      compare_tensors(std::vector<float>{kInf, -kInf, 1}, std::vector<float>{kInf, -kInf, 1});
  EXPECT_EQ(same.max_abs, 0.0);
  EXPECT_TRUE(same.passes());
  EXPECT_EQ(same.b_sq, 1.0);
  // Opposite infinities and an infinity against a number: infinite; the first is the worst.
  const ValueComparison diff =
      compare_tensors(std::vector<float>{1, kInf, 2, -kInf}, std::vector<float>{1, -kInf, kInf, 7});
  EXPECT_EQ(diff.max_abs, kInfD);
  EXPECT_EQ(diff.nonfinite_mismatches, 3);
  EXPECT_EQ(diff.failing, 3);
  EXPECT_EQ(diff.worst_index, 1);
  EXPECT_EQ(element_difference(kInfD, kInfD), 0.0);
  EXPECT_EQ(element_difference(kInfD, -kInfD), kInfD);
  EXPECT_EQ(element_difference(3, -kInfD), kInfD);
  EXPECT_EQ(element_difference(1.5, -2), 3.5);
}

TEST(CompareTensors, WorstIndexIsTheFirstOfEqualDifferences) {
  // 9 elements: four-lane blocks plus a tail. The largest |a-b| = 2 at 2, 5 and 8.
  const std::vector<float> a{0, 0, 2, 0, 1, 2, 0, 0, 2}, b(9, 0.0f);
  EXPECT_EQ(compare_tensors(a, b).worst_index, 2);
  std::vector<float> tail = b;
  tail[8] = 3;  // only in the tail
  EXPECT_EQ(compare_tensors(tail, b).worst_index, 8);
  std::vector<float> lane = b;
  lane[7] = 4;
  lane[1] = 4;
  EXPECT_EQ(compare_tensors(lane, b).worst_index, 1);
  // A non-finite mismatch in the tail beats a larger finite difference in the blocks.
  std::vector<float> nan_tail = lane;
  nan_tail[8] = kNaN;
  EXPECT_EQ(compare_tensors(nan_tail, b).worst_index, 8);
}

TEST(CompareTensors, WorstIndexCanBeLeftUnlocated) {
  const std::vector<float> a{0, 0, 2, 0, 1}, b(5, 0.0f);
  const ValueComparison quick = compare_tensors(a, b, {.locate_worst = false});
  EXPECT_EQ(quick.worst_index, -1);
  EXPECT_EQ(quick.max_abs, 2.0);
  // A non-finite mismatch is located all the same (the element-by-element pass finds it).
  const std::vector<float> nan{0, 0, 2, kNaN, 1};
  EXPECT_EQ(compare_tensors(nan, b, {.locate_worst = false}).worst_index, 3);
}

// The float fast path and the one-by-one accumulator agree: max_abs, max_rel, worst_index and
// failing exactly, the sums to rounding; double vectors go through the accumulator, bit for bit.
TEST(CompareTensors, FastPathAgreesWithAccumulator) {
  std::mt19937 rng(7);
  std::normal_distribution<float> value(0, 3);
  for (const size_t n : {1u, 3u, 4u, 7u, 1000u, 1003u}) {
    std::vector<float> a(n), b(n);
    for (size_t i = 0; i < n; ++i) {
      a[i] = value(rng);
      b[i] = i % 5 == 0 ? a[i] : a[i] + value(rng) * 1e-3f;
    }
    const CompareOptions options{1e-4, 1e-3};
    const ValueComparison fast = compare_tensors(a, b, options);
    DifferenceAccumulator sums(options);
    for (size_t i = 0; i < n; ++i) sums.add(a[i], b[i]);
    const ValueComparison slow = sums.result();
    EXPECT_EQ(fast.elements, slow.elements);
    EXPECT_EQ(fast.max_abs, slow.max_abs);
    EXPECT_EQ(fast.max_rel, slow.max_rel);
    EXPECT_EQ(fast.worst_index, slow.worst_index);
    EXPECT_EQ(fast.failing, slow.failing);
    EXPECT_NEAR(fast.sum_abs, slow.sum_abs, 1e-12 * slow.sum_abs);
    EXPECT_NEAR(fast.diff_sq, slow.diff_sq, 1e-12 * slow.diff_sq);
    const std::vector<double> da(a.begin(), a.end()), db(b.begin(), b.end());
    const ValueComparison wide = compare_tensors(da, db, options);
    EXPECT_EQ(wide.sum_abs, slow.sum_abs);
    EXPECT_EQ(wide.diff_sq, slow.diff_sq);
    EXPECT_EQ(wide.worst_index, slow.worst_index);
  }
}

TEST(JsonNumber, FiniteValuesAreNumbers) {
  EXPECT_EQ(json_number(0.25).dump(), "0.25");
  EXPECT_EQ(json_number(-3.0).dump(), "-3.0");
  EXPECT_TRUE(json_number(std::numeric_limits<double>::max()).is_number());
  EXPECT_EQ(json_number(std::optional<double>{}).dump(), "null");
  EXPECT_EQ(json_number(std::optional<double>{2.0}).dump(), "2.0");
}

TEST(JsonNumber, NonFiniteValuesAreWords) {
  EXPECT_EQ(json_number(std::nan("")).dump(), "\"NaN\"");
  EXPECT_EQ(json_number(kInfD).dump(), "\"Infinity\"");
  EXPECT_EQ(json_number(-kInfD).dump(), "\"-Infinity\"");
  EXPECT_EQ(json_number<nlohmann::ordered_json>(-kInfD).dump(), "\"-Infinity\"");
  EXPECT_EQ(nonfinite_word(1.0), "");
}

TEST(JsonNumber, ReadsBackWhatItWrites) {
  for (const double v : {0.0, -1.5, 1e-300, kInfD, -kInfD}) {
    const nlohmann::json j = nlohmann::json::parse(json_number(v).dump());
    EXPECT_EQ(number_from_json(j), v);
  }
  EXPECT_TRUE(std::isnan(*number_from_json(nlohmann::json::parse(json_number(NAN).dump()))));
  EXPECT_EQ(number_from_json(nlohmann::json(nullptr)), std::nullopt);
  EXPECT_EQ(number_from_json(nlohmann::json("inf")), std::nullopt);  // only the three words
  EXPECT_EQ(number_from_json(nlohmann::json::array()), std::nullopt);
}

}  // namespace
}  // namespace deltann
