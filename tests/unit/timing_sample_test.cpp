// The campaign's timing sample (src/run/timing_sample.h).
#include "run/timing_sample.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace deltann {
namespace {

using Ids = std::vector<int64_t>;

// Candidates 1..n whose hashes are "h<id>" in the order given by `hash_rank` (so the order of the
// hashes differs from the order of the ids and of the keys).
std::vector<SampleCandidate> candidates(const std::vector<int>& hash_rank) {
  std::vector<SampleCandidate> out;
  for (size_t i = 0; i < hash_rank.size(); ++i) {
    const auto id = static_cast<int64_t>(i + 1);
    out.push_back({id, "h" + std::to_string(hash_rank[i]), "img" + std::to_string(id) + ".jpg",
                   false, false});
  }
  return out;
}

TEST(TimingSample, TakesTheImagesWithTheSmallestContentHashes) {
  // Ranks: id 1 -> h5, 2 -> h3, 3 -> h1, 4 -> h4, 5 -> h2.
  EXPECT_EQ(choose_timing_sample(candidates({5, 3, 1, 4, 2}), 2), (Ids{3, 5}));
  EXPECT_EQ(choose_timing_sample(candidates({5, 3, 1, 4, 2}), 3), (Ids{3, 5, 2}));
}

TEST(TimingSample, DoesNotDependOnTheOrderOfTheDataset) {
  auto c = candidates({9, 2, 7, 4, 1, 8, 3, 6, 5});
  const Ids expected = choose_timing_sample(c, 4);
  EXPECT_EQ(expected, (Ids{5, 2, 7, 4}));
  std::mt19937 generator(7);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(c.begin(), c.end(), generator);
    EXPECT_EQ(choose_timing_sample(c, 4), expected);
  }
}

TEST(TimingSample, AllWhenUnlimitedOrTheDatasetIsSmaller) {
  EXPECT_EQ(choose_timing_sample(candidates({2, 1, 3}), std::nullopt), (Ids{2, 1, 3}));
  EXPECT_EQ(choose_timing_sample(candidates({2, 1, 3}), 50), (Ids{2, 1, 3}));
}

TEST(TimingSample, ZeroTimesNothing) {
  EXPECT_TRUE(choose_timing_sample(candidates({2, 1, 3}), 0).empty());
  EXPECT_TRUE(choose_timing_sample({}, 5).empty());
}

TEST(TimingSample, EqualHashesAreOrderedByKey) {
  std::vector<SampleCandidate> c = {{1, "same", "b.jpg", false, false},
                                    {2, "same", "a.jpg", false, false}};
  EXPECT_EQ(choose_timing_sample(c, 1), (Ids{2}));
}

TEST(TimingSample, KeepsTheStoredSampleAndTopsItUp) {
  auto c = candidates({1, 2, 3, 4, 5});
  c[4].in_sample = true;  // h5, chosen by an earlier run over another dataset
  // It stays (its results were timed), and one more is added from the smallest hashes.
  EXPECT_EQ(choose_timing_sample(c, 2), (Ids{1, 5}));
  // A full stored sample gets nothing more, even where smaller hashes have come in.
  c[3].in_sample = true;
  EXPECT_EQ(choose_timing_sample(c, 2), (Ids{4, 5}));
}

TEST(TimingSample, NeverAddsAnImageWhoseResultsWereStoredUntimed) {
  auto c = candidates({1, 2, 3, 4});
  c[0].has_results = true;  // h1 ran untimed before: another variant cannot time it for it
  EXPECT_EQ(choose_timing_sample(c, 2), (Ids{2, 3}));
  // Unless it is in the sample already: then its results were timed.
  c[0].in_sample = true;
  EXPECT_EQ(choose_timing_sample(c, 2), (Ids{1, 2}));
}

TEST(TimingSample, SizeText) {
  EXPECT_EQ(timing_images_text(std::nullopt), "all");
  EXPECT_EQ(timing_images_text(50), "50");
}

}  // namespace
}  // namespace deltann
