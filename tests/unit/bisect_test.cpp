#include "deltann/bisect.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace deltann {
namespace {

std::vector<std::string> passes(size_t n) {
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back("P" + std::to_string(i));
  return names;
}

// A fake compiler: the difference vanishes once every pass of `needed` is disabled. Counts calls
// and checks that no set is asked about twice and that every set is a subset of the list.
struct Fake {
  std::set<std::string> needed;
  std::vector<std::string> all;
  std::set<std::vector<std::string>> asked;
  bool operator()(const std::vector<std::string>& set) {
    EXPECT_TRUE(asked.insert(set).second) << "asked twice";
    for (const auto& p : set) EXPECT_NE(std::find(all.begin(), all.end(), p), all.end());
    return std::all_of(needed.begin(), needed.end(), [&](const std::string& p) {
      return std::find(set.begin(), set.end(), p) != set.end();
    });
  }
};

BisectResult run(Fake& fake) {
  return bisect_passes(fake.all, [&](const std::vector<std::string>& s) { return fake(s); });
}

TEST(Bisect, FindsASingleCulpritAtEveryPosition) {
  for (size_t n : {1u, 2u, 3u, 7u, 9u, 16u}) {
    for (size_t at = 0; at < n; ++at) {
      Fake fake{{"P" + std::to_string(at)}, passes(n), {}};
      const BisectResult r = run(fake);
      EXPECT_EQ(r.outcome, BisectOutcome::kSinglePass) << n << " " << at;
      EXPECT_EQ(r.culprits, std::vector<std::string>{"P" + std::to_string(at)});
      // All disabled, then at most two halves per level.
      size_t levels = 0;
      for (size_t m = n; m > 1; m = (m + 1) / 2) ++levels;
      EXPECT_LE(r.probes.size(), 1 + 2 * levels) << n << " " << at;
      EXPECT_EQ(r.probes.front().disabled, fake.all);
      EXPECT_TRUE(r.probes.front().vanished);
    }
  }
}

TEST(Bisect, FindsTwoCulpritsNeededTogether) {
  const auto all = passes(9);
  for (size_t i = 0; i < all.size(); ++i)
    for (size_t j = i + 1; j < all.size(); ++j) {
      Fake fake{{all[i], all[j]}, all, {}};
      const BisectResult r = run(fake);
      EXPECT_EQ(r.outcome, BisectOutcome::kPassSet) << i << " " << j;
      EXPECT_EQ(r.culprits, (std::vector<std::string>{all[i], all[j]})) << i << " " << j;
    }
}

TEST(Bisect, NoPassesMeansNothingToSearch) {
  Fake fake{{}, {}, {}};
  const BisectResult r = run(fake);
  EXPECT_EQ(r.outcome, BisectOutcome::kNoPasses);
  EXPECT_TRUE(r.probes.empty());
  EXPECT_TRUE(r.culprits.empty());
}

TEST(Bisect, AllDisabledNotVanishingIsNotAPass) {
  const auto all = passes(5);
  const BisectResult r = bisect_passes(all, [](const std::vector<std::string>&) { return false; });
  EXPECT_EQ(r.outcome, BisectOutcome::kNotPasses);
  ASSERT_EQ(r.probes.size(), 1u);
  EXPECT_EQ(r.probes[0].disabled, all);
  EXPECT_FALSE(r.probes[0].vanished);
  EXPECT_TRUE(r.culprits.empty());
  EXPECT_STREQ(to_string(r.outcome), "not_passes");
}

TEST(Bisect, AlternativeCulpritsGiveTheFirstThatSufficesAlone) {
  // Either of two passes alone restores the output (each undoes the same rewrite).
  const auto all = passes(8);
  const BisectResult r = bisect_passes(all, [](const std::vector<std::string>& s) {
    return std::find(s.begin(), s.end(), "P1") != s.end() ||
           std::find(s.begin(), s.end(), "P6") != s.end();
  });
  EXPECT_EQ(r.outcome, BisectOutcome::kSinglePass);
  EXPECT_EQ(r.culprits, std::vector<std::string>{"P1"});
}

}  // namespace
}  // namespace deltann
