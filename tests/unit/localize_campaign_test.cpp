#include "deltann/localize_campaign.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltann {
namespace {

// `differing` images whose top-1 differs (0 against 1) and `agreeing` ones (0 and 0), keyed
// d0, d1, ... and g0, g1, ..., differing first.
std::vector<PairedImage> images(size_t differing, size_t agreeing) {
  std::vector<PairedImage> out;
  for (size_t i = 0; i < differing; ++i)
    out.push_back({"d" + std::to_string(i), "/d" + std::to_string(i) + ".png", 0, 1});
  for (size_t i = 0; i < agreeing; ++i)
    out.push_back({"g" + std::to_string(i), "/g" + std::to_string(i) + ".png", 0, 0});
  return out;
}

size_t count_differing(const CampaignSelection& s) {
  size_t n = 0;
  for (const auto& image : s.images) n += image.differs() ? 1 : 0;
  return n;
}

TEST(CampaignSelection, DisagreeingTakesEveryDifferingImageAndAsManyAgreeing) {
  const CampaignSelection s =
      select_campaign_images(images(5, 100), CampaignImages::disagreeing, 200, 1);
  EXPECT_EQ(s.images.size(), 10u);
  EXPECT_EQ(count_differing(s), 5u);
  EXPECT_EQ(s.differing_used, 5u);
  EXPECT_EQ(s.agreeing_used, 5u);
  EXPECT_EQ(s.differing_available, 5u);
  EXPECT_EQ(s.agreeing_available, 100u);
  EXPECT_NE(s.description.find("5 of 5 images whose top-1 differs and 5 of 100"), std::string::npos)
      << s.description;
  EXPECT_NE(s.description.find("seed 1"), std::string::npos) << s.description;
  // The same seed draws the same images; another seed (almost surely) others. Image order kept.
  const CampaignSelection again =
      select_campaign_images(images(5, 100), CampaignImages::disagreeing, 200, 1);
  const CampaignSelection other =
      select_campaign_images(images(5, 100), CampaignImages::disagreeing, 200, 2);
  std::vector<std::string> keys, keys_again, keys_other;
  for (const auto& i : s.images) keys.push_back(i.key);
  for (const auto& i : again.images) keys_again.push_back(i.key);
  for (const auto& i : other.images) keys_other.push_back(i.key);
  EXPECT_EQ(keys, keys_again);
  EXPECT_NE(keys, keys_other);
  EXPECT_EQ(keys.front(), "d0");
}

TEST(CampaignSelection, CapSplitsBetweenTheGroups) {
  // 300 differing, 2000 agreeing, cap 100: 50 and 50.
  const CampaignSelection s =
      select_campaign_images(images(300, 2000), CampaignImages::disagreeing, 100, 7);
  EXPECT_EQ(s.images.size(), 100u);
  EXPECT_EQ(count_differing(s), 50u);
  std::set<std::string> unique;
  for (const auto& i : s.images) unique.insert(i.key);
  EXPECT_EQ(unique.size(), 100u);  // drawn without replacement
  // Few agreeing images leave the rest of the cap to the differing ones under `all`.
  const CampaignSelection all =
      select_campaign_images(images(300, 10), CampaignImages::all, 100, 7);
  EXPECT_EQ(all.agreeing_used, 10u);
  EXPECT_EQ(all.differing_used, 90u);
  // Without a cap that bites, `all` is every image.
  EXPECT_EQ(select_campaign_images(images(3, 4), CampaignImages::all, 200, 1).images.size(), 7u);
  // No differing image: `disagreeing` has nothing to compare against, so nothing is chosen.
  EXPECT_TRUE(
      select_campaign_images(images(0, 50), CampaignImages::disagreeing, 200, 1).images.empty());
}

TEST(CampaignSelection, ParsesTheModes) {
  EXPECT_EQ(parse_campaign_images("all"), CampaignImages::all);
  EXPECT_EQ(parse_campaign_images("disagreeing"), CampaignImages::disagreeing);
  EXPECT_FALSE(parse_campaign_images("some"));
}

// A localisation of three layers in, fault, out with the given relative errors; the jump is the
// first layer above 1e-5.
Localization three_layers(double in, double fault, double out) {
  Localization l;
  l.env_a = "a-env";
  l.env_b = "b-env";
  const char* names[] = {"in", "fault", "out"};
  const double rel[] = {in, fault, out};
  for (size_t i = 0; i < 3; ++i) {
    LayerReport r;
    r.position = i;
    r.name = r.name_b = names[i];
    r.op_a = "Conv";
    r.diff.rel_l2 = rel[i];
    r.diff.max_abs = 10 * rel[i];
    r.above = rel[i] > 1e-5;
    if (r.above) ++l.above_count;
    if (r.above && !l.jump) l.jump = i;
    l.layers.push_back(r);
  }
  return l;
}

TEST(CampaignAccumulator, RanksTheLayerWhoseErrorSeparatesTheGroups) {
  CampaignAccumulator acc;
  // Eight differing images: the fault layer's error is large, and `out` inherits it. Eight
  // agreeing images: the fault layer is exact on four and slightly off on four; `out` carries
  // noise of its own on every image, so that it separates less well than the fault layer.
  for (int i = 0; i < 8; ++i)
    acc.add({"d" + std::to_string(i), "", 0, 1}, three_layers(0, 0.1 + 0.01 * i, 0.01 + 0.01 * i));
  for (int i = 0; i < 8; ++i)
    acc.add({"g" + std::to_string(i), "", 2, 2},
            three_layers(0, i < 4 ? 0 : 1e-3 * (i + 1), 0.005 + 0.01 * i));
  const CampaignLocalization c = acc.finish(0.95, 0.05);
  ASSERT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(c.differing, 8u);
  EXPECT_EQ(c.agreeing, 8u);
  // The fault layer separates completely: auc 1; p as for U = 64 of 8 x 8 with four ties in
  // the agreeing group (mann_whitney_sorted's tests cover the formula).
  const CampaignLayer& fault = c.layers[1];
  EXPECT_EQ(fault.name, "fault");
  EXPECT_EQ(fault.separation.auc, 1.0);
  EXPECT_EQ(fault.separation.rank_biserial, 1.0);
  EXPECT_LT(fault.p_holm, 0.05);
  // agreeing fault errors 0 0 0 0 5e-3 6e-3 7e-3 8e-3: median (0 + 5e-3) / 2.
  EXPECT_NEAR(fault.median_agreeing, 2.5e-3, 1e-12);
  // `in` agrees exactly everywhere: auc 0.5, p 1.
  EXPECT_EQ(c.layers[0].separation.auc, 0.5);
  EXPECT_EQ(c.layers[0].p_holm, 1.0);
  // `out` separates less well: the agreeing images' noise overlaps the differing ones'.
  EXPECT_LT(c.layers[2].separation.auc, 1.0);
  ASSERT_EQ(c.ranking.size(), 3u);
  EXPECT_EQ(c.ranking[0], 1u);
  EXPECT_EQ(c.ranking[1], 2u);
  EXPECT_EQ(c.ranking[2], 0u);
  ASSERT_TRUE(c.first_separating);
  EXPECT_EQ(*c.first_separating, 1u);
  // First jumps: every differing image jumps at `fault`; the agreeing ones at `fault` (four, where
  // it is 4e-3 and more) or at `out` (four).
  ASSERT_FALSE(c.first_jumps.empty());
  EXPECT_EQ(c.first_jumps[0].layer, "fault");
  EXPECT_EQ(c.first_jumps[0].differing, 8u);
  EXPECT_EQ(c.first_jumps[0].agreeing, 4u);
  // The JSON: its own kind, the ranked layers, and no "layers" array (that is the one-image shape).
  const nlohmann::json j = to_json(c, LocalizeOptions{});
  EXPECT_EQ(j["kind"], "campaign");
  EXPECT_FALSE(j.contains("layers"));
  EXPECT_EQ(j["ranked_layers"][0]["name"], "fault");
  EXPECT_EQ(j["first_separating"]["name"], "fault");
  EXPECT_EQ(j["per_image"].size(), 16u);
  EXPECT_EQ(j["groups"]["differing"], 8);
  const std::string text = campaign_localization_text(c);
  EXPECT_NE(text.find("separation starts at layer 1 'fault'"), std::string::npos) << text;
}

TEST(CampaignAccumulator, EqualSeparationRanksTheEarliestLayerFirst) {
  // A fault whose error passes unchanged to every later layer: all separate completely, and the
  // earliest is where it starts.
  CampaignAccumulator acc;
  for (int i = 0; i < 6; ++i) acc.add({"d", "", 0, 1}, three_layers(0, 0.5 + i, 0.5 + i));
  for (int i = 0; i < 6; ++i) acc.add({"g", "", 0, 0}, three_layers(0, 0, 0));
  const CampaignLocalization c = acc.finish(0.95, 0.05);
  EXPECT_EQ(c.layers[c.ranking[0]].name, "fault");
  EXPECT_EQ(c.layers[c.ranking[1]].name, "out");
}

TEST(CampaignAccumulator, OneGroupEmptyTestsNothing) {
  CampaignAccumulator acc;
  for (int i = 0; i < 4; ++i) acc.add({"d", "", 0, 1}, three_layers(0, 0.5, 0.5));
  const CampaignLocalization c = acc.finish(0.95, 0.05);
  EXPECT_FALSE(c.first_separating);
  EXPECT_TRUE(std::isnan(c.layers[1].separation.auc));
  EXPECT_NE(campaign_localization_text(c).find("one group is empty"), std::string::npos);
  // A layer missing from a later image counts as NaN there, not as agreement.
  CampaignAccumulator partial;
  Localization shorter = three_layers(0, 0.5, 0.5);
  shorter.layers.pop_back();
  shorter.jump = 1;
  partial.add({"d", "", 0, 1}, three_layers(0, 0.5, 0.5));
  partial.add({"g", "", 0, 0}, shorter);
  const CampaignLocalization p = partial.finish(0.95, 0.05);
  EXPECT_EQ(p.layers[2].images, 1u);
}

}  // namespace
}  // namespace deltann
