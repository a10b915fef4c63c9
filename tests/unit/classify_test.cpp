// Ranking an output vector (classify.h).
#include "deltann/classify.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace deltann {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(TopK, OrdersByDescendingScore) {
  const TopK top = top_k({0.1f, 0.7f, -2.0f, 0.3f, 5.0f}, 3);
  EXPECT_EQ(top.ids, (std::vector<int>{4, 1, 3}));
  EXPECT_EQ(top.scores, (std::vector<float>{5.0f, 0.7f, 0.3f}));
}

TEST(TopK, TiesGoToTheLowerIndex) {
  const TopK top = top_k({1.0f, 2.0f, 2.0f, 1.0f, 2.0f}, 4);
  EXPECT_EQ(top.ids, (std::vector<int>{1, 2, 4, 0}));
  EXPECT_EQ(top.scores, (std::vector<float>{2.0f, 2.0f, 2.0f, 1.0f}));
  // -0.0 and 0.0 compare equal, so they tie as well.
  EXPECT_EQ(top_k({-0.0f, 0.0f}, 2).ids, (std::vector<int>{0, 1}));
}

TEST(TopK, NaNRanksBelowEveryNumber) {
  const TopK top = top_k({kNaN, -kInf, kNaN, 3.0f, -1.0f}, 5);
  EXPECT_EQ(top.ids, (std::vector<int>{3, 4, 1, 0, 2}));  // NaNs last, lower index first
  ASSERT_EQ(top.scores.size(), 5u);
  EXPECT_EQ(top.scores[2], -kInf);
  EXPECT_TRUE(std::isnan(top.scores[3]));
  EXPECT_TRUE(std::isnan(top.scores[4]));
  // Even when only the best is asked for, a NaN never wins.
  EXPECT_EQ(top_k({kNaN, -1e30f}, 1).ids, (std::vector<int>{1}));
  EXPECT_EQ(top_k({kInf, kNaN}, 1).ids, (std::vector<int>{0}));
}

TEST(TopK, LabelOffsetDropsTheBackgroundSlotAndShiftsIds) {
  // Index 0 is TF's background class: the highest output, but not a class.
  const TopK top = top_k({9.0f, 0.5f, 3.0f, 1.0f}, 2, 1);
  EXPECT_EQ(top.ids, (std::vector<int>{1, 2}));  // indices 2 and 3, minus the offset
  EXPECT_EQ(top.scores, (std::vector<float>{3.0f, 1.0f}));
  EXPECT_EQ(top_k({9.0f, 0.5f, 3.0f, 1.0f}, 10, 1).ids, (std::vector<int>{1, 2, 0}));
}

TEST(TopK, KLargerThanTheOutputReturnsEverything) {
  const TopK top = top_k({0.2f, 0.9f, 0.5f}, 10);
  EXPECT_EQ(top.ids, (std::vector<int>{1, 2, 0}));
  EXPECT_EQ(top.scores.size(), 3u);
}

TEST(TopK, DegenerateInputs) {
  EXPECT_TRUE(top_k({}, 5).ids.empty());
  EXPECT_TRUE(top_k({1.0f, 2.0f}, 0).ids.empty());
  EXPECT_TRUE(top_k({1.0f, 2.0f}, -3).ids.empty());
  EXPECT_TRUE(top_k({1.0f}, 5, 1).ids.empty());  // only the background slot
  EXPECT_TRUE(top_k({1.0f}, 5, 4).ids.empty());  // offset beyond the output
}

}  // namespace
}  // namespace deltann
