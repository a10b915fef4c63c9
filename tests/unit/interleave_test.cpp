// The order of the interleaved timing (docs/ANALYSIS.md, "Interleaved timing"): rounds of one
// request per variant, the first of each round rotating.
#include <gtest/gtest.h>

#include <vector>

#include "run/variant_runner.h"

namespace deltann {
namespace {

using Turns = std::vector<Turn>;

TEST(InterleavedTurns, EachRoundRunsEveryVariantOnceStartingOneFurther) {
  EXPECT_EQ(interleaved_turns({3, 3}), (Turns{{0, 0}, {1, 0}, {1, 1}, {0, 1}, {0, 2}, {1, 2}}));
  EXPECT_EQ(interleaved_turns({2, 2, 2}), (Turns{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {2, 1}, {0, 1}}));
}

TEST(InterleavedTurns, NoVariantAlwaysGoesFirst) {
  const Turns turns = interleaved_turns({4, 4, 4, 4});
  std::vector<int> first(4, 0);
  for (size_t i = 0; i < turns.size(); i += 4) ++first[turns[i].variant];
  EXPECT_EQ(first, (std::vector<int>{1, 1, 1, 1}));
}

TEST(InterleavedTurns, AVariantWithFewerRequestsDropsOutWhenItHasRunThem) {
  // A resumed variant with one timed image left beside one with three.
  EXPECT_EQ(interleaved_turns({1, 3}), (Turns{{0, 0}, {1, 0}, {1, 1}, {1, 2}}));
  EXPECT_EQ(interleaved_turns({0, 2}), (Turns{{1, 0}, {1, 1}}));
}

TEST(InterleavedTurns, NothingToTimeNoTurns) {
  EXPECT_TRUE(interleaved_turns({}).empty());
  EXPECT_TRUE(interleaved_turns({0, 0}).empty());
}

}  // namespace
}  // namespace deltann
