// The study tables (study_tables.h) on a small hand-built campaign: which rows appear, against
// which baseline, and how the timing ratio is oriented from the lowest opt level.
#include "deltann/study_tables.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "deltann/backend.h"
#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/store.h"
#include "test_util.h"

namespace deltann {
namespace {

constexpr int64_t kMs = 1'000'000;  // nanoseconds
// Stored first, so the default baseline; and the higher opt level, so the pair is stored as
// (all, disable) and the table must turn its ratio round.
const std::string kOrtAll = "ort:opt=all,device=cpu,threads=1";
const std::string kOrtDisable = "ort:opt=disable,device=cpu,threads=1";
const std::string kOpenCV = "opencv:opt=on,device=cpu,threads=1";

StoredResult result(int64_t variant, int64_t image, int top1, int64_t ms) {
  StoredResult r;
  r.variant_id = variant;
  r.image_id = image;
  r.top_ids = {top1, 100, 101, 102, 103};
  r.top_scores = {0.9f, 0.05f, 0.03f, 0.01f, 0.01f};
  // Ten repetitions a little apart, so that the medians have intervals.
  for (int k = 0; k < 10; ++k) r.samples_ns.push_back(ms * kMs + k * 1000);
  return r;
}

class StudyTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(dir_.path() / "c.db", StoreMode::ReadWrite);
    BackendInfo ort;
    ort.name = "ort";
    ort.knobs = {{"opt", {"disable", "basic", "extended", "all"}, "all", "level"}};
    store.set_meta("engine:ort", to_json(ort).dump());
    const int64_t model = store.ensure_model({0, "/models/m.onnx", "abc", "{}"});
    std::vector<int64_t> images;
    for (int i = 0; i < 4; ++i) {
      StoredImage image;
      image.key = "i" + std::to_string(i) + ".jpg";
      image.path = "/data/" + image.key;
      image.sha256 = "sha" + std::to_string(i);
      image.label = i;
      images.push_back(store.ensure_image(image));
    }
    const int64_t all = store.ensure_variant(model, kOrtAll, "ort");
    const int64_t disable = store.ensure_variant(model, kOrtDisable, "ort");
    const int64_t cv = store.ensure_variant(model, kOpenCV, "opencv");
    for (size_t i = 0; i < images.size(); ++i) {
      const int label = static_cast<int>(i);
      store.add_result(result(all, images[i], label, 20));
      store.add_result(result(disable, images[i], label, 10));
      // OpenCV disagrees on the last image.
      store.add_result(result(cv, images[i], i == 3 ? 7 : label, 15));
    }
    campaign_ = load_campaign(store);
    comparison_ = compare_variants(campaign_);
  }

  test::TempDir dir_;
  CampaignData campaign_;
  Comparison comparison_;
};

TEST_F(StudyTablesTest, LabelRowsCompareEveryVariantWithTheModelsFirstByDefault) {
  const StudyTables t = study_tables(campaign_, comparison_);
  ASSERT_EQ(t.labels.size(), 2u);
  EXPECT_EQ(t.labels[0].baseline, kOrtAll);
  EXPECT_EQ(t.labels[0].variant, kOrtDisable);
  EXPECT_EQ(t.labels[0].axis, "opt");
  EXPECT_EQ(t.labels[0].images, 4);
  EXPECT_EQ(t.labels[0].top1_differences, 0);
  EXPECT_EQ(t.labels[1].variant, kOpenCV);
  EXPECT_EQ(t.labels[1].axis, "framework");
  EXPECT_EQ(t.labels[1].top1_differences, 1);
  EXPECT_DOUBLE_EQ(t.labels[1].top1_difference_rate, 0.25);
  ASSERT_TRUE(t.labels[1].top1_difference_ci);
  // 1 of 4 at 95%: the interval holds the point and excludes neither 0.01 nor 0.8.
  EXPECT_LT(t.labels[1].top1_difference_ci->low, 0.25);
  EXPECT_GT(t.labels[1].top1_difference_ci->low, 0.0);
  EXPECT_GT(t.labels[1].top1_difference_ci->high, 0.8);
  EXPECT_EQ(t.labels[1].model_path, "/models/m.onnx");
}

TEST_F(StudyTablesTest, ABaselineNamedBrieflyPicksTheFirstVariantItNames) {
  const StudyTables t = study_tables(campaign_, comparison_, {.baselines = {"tvm", "opencv"}});
  ASSERT_EQ(t.labels.size(), 2u);
  for (const auto& row : t.labels) EXPECT_EQ(row.baseline, kOpenCV);
  EXPECT_EQ(t.labels[0].variant, kOrtAll);
  EXPECT_EQ(t.labels[0].top1_differences, 1);
}

TEST_F(StudyTablesTest, TimingRowsGoFromTheLowestLevelUpWithTheRatioOrientedToIt) {
  const StudyTables t = study_tables(campaign_, comparison_);
  // OpenCV's engine description is absent, so its opt order is unknown: no row for it.
  ASSERT_EQ(t.timing.size(), 2u);
  const StudyTimingRow& low = t.timing[0];
  const StudyTimingRow& high = t.timing[1];
  EXPECT_EQ(low.opt, "disable");
  EXPECT_EQ(low.level, 0);
  EXPECT_EQ(low.engine, "ort");
  EXPECT_EQ(low.setting, "device=cpu,threads=1");
  ASSERT_TRUE(low.ratio);
  EXPECT_DOUBLE_EQ(*low.ratio, 1.0);
  EXPECT_FALSE(low.ratio_ci);
  EXPECT_EQ(high.opt, "all");
  EXPECT_EQ(high.level, 3);
  EXPECT_EQ(high.lowest, kOrtDisable);
  ASSERT_TRUE(high.ratio && high.ratio_ci);
  // median(all) / median(disable) = 20 ms / 10 ms, although the pair is stored as (all, disable).
  EXPECT_NEAR(*high.ratio, 2.0, 1e-3);
  EXPECT_LT(high.ratio_ci->low, *high.ratio);
  EXPECT_GT(high.ratio_ci->high, *high.ratio);
  EXPECT_GT(high.ratio_ci->low, 1.9);
  EXPECT_TRUE(high.significant);
  ASSERT_TRUE(high.median_ms);
  EXPECT_NEAR(*high.median_ms, 20.0, 1e-2);
}

TEST_F(StudyTablesTest, FieldTablesNameEveryRateWithItsIntervalCompanions) {
  for (const char* rate : {"top1_difference_rate", "top5_difference_rate"}) {
    int found = 0;
    for (const auto& f : study_label_fields())
      for (const std::string suffix : {"", "_ci_low", "_ci_high"})
        if (std::string(rate) + suffix == f.name) ++found;
    EXPECT_EQ(found, 3) << rate;
  }
  int found = 0;
  for (const auto& f : study_timing_fields())
    for (const char* name : {"ratio", "ratio_ci_low", "ratio_ci_high"})
      if (std::string(name) == f.name) ++found;
  EXPECT_EQ(found, 3);
}

}  // namespace
}  // namespace deltann
