// load_campaign (campaign_data.h): the typed campaign every analysing verb reads once.
#include "deltann/campaign_data.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "deltann/compare.h"
#include "test_util.h"

namespace deltann {
namespace {

constexpr int64_t kMs = 1'000'000;  // nanoseconds

StoredResult result(int64_t variant, int64_t image, std::vector<int64_t> samples_ns) {
  StoredResult r;
  r.variant_id = variant;
  r.image_id = image;
  r.top_ids = {1, 2};
  r.top_scores = {0.75f, 0.25f};
  r.output = {0.75f, 0.25f};
  r.samples_ns = std::move(samples_ns);
  return r;
}

StoredImage image(const std::string& key) {
  StoredImage i;
  i.key = key;
  i.path = "/data/" + key;
  i.sha256 = "sha-" + key;
  return i;
}

class CampaignDataFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(path_);
    BackendInfo ort;
    ort.name = "ort";
    ort.version = "1.17.3";
    ort.devices = {"cpu"};
    ort.knobs = {{"opt", {"disable", "all"}, "all", "graph optimisation"}};
    store.set_meta("engine:ort", to_json(ort).dump());
    store.set_meta("engine:broken", "{\"name\": \"broken\"}");
    const std::string spec = R"({"name": "tiny", "output": {"kind": "probabilities"}})";
    const int64_t m1 = store.ensure_model({0, "/models/a.onnx", "sha-a", spec});
    const int64_t m2 = store.ensure_model({0, "/models/b.onnx", "sha-b", "not json"});
    const int64_t x = store.ensure_image(image("x.jpg"));
    const int64_t y = store.ensure_image(image("y.jpg"));
    const int64_t v1 = store.ensure_variant(m1, "ort:opt=all", "ort");
    const int64_t v2 = store.ensure_variant(m2, "ort:opt=all", "ort");
    store.add_result(result(v1, y, {3 * kMs, 1 * kMs}));
    store.add_result(result(v1, x, {4 * kMs, 2 * kMs, 6 * kMs}));
    store.add_result(result(v2, x, {}));
    store.record_failure({v2, y, FailureStage::run, FailureSymptom::crash, "segmentation fault"});
  }

  test::TempDir dir_;
  std::filesystem::path path_ = dir_ / "c.db";
};

TEST_F(CampaignDataFixture, ReadsTheTypedCampaignFromAReadOnlyStore) {
  const Store store(path_, StoreMode::ReadOnly);
  const CampaignData c = load_campaign(store);
  EXPECT_EQ(c.db_path, path_);
  ASSERT_EQ(c.models.size(), 2u);
  ASSERT_TRUE(c.models[0].spec.has_value());
  EXPECT_EQ(c.models[0].spec->name, "tiny");
  EXPECT_EQ(c.models[0].output_kind, OutputKind::Probabilities);
  EXPECT_FALSE(c.models[1].spec.has_value());  // not JSON: logits, and the reason
  EXPECT_EQ(c.models[1].output_kind, OutputKind::Logits);
  EXPECT_FALSE(c.models[1].spec_error.empty());

  ASSERT_EQ(c.variants.size(), 2u);
  const CampaignVariant& v1 = c.variants[0];
  // Two models: each variant's name says which.
  EXPECT_EQ(v1.name, "ort:opt=all [model 1]");
  EXPECT_EQ(c.variants[1].name, "ort:opt=all [model 2]");
  EXPECT_EQ(c.variants[1].model, 2);
  // Results by image id, each with its own median; the variant's samples pooled, in ms, sorted.
  ASSERT_EQ(v1.results.size(), 2u);
  EXPECT_LT(v1.results[0].image_id, v1.results[1].image_id);
  EXPECT_EQ(v1.results[0].samples, 3);
  EXPECT_DOUBLE_EQ(*v1.results[0].median_ms, 4.0);
  EXPECT_DOUBLE_EQ(*v1.results[1].median_ms, 2.0);
  EXPECT_EQ(v1.samples_ms, (std::vector<double>{1, 2, 3, 4, 6}));
  EXPECT_EQ(v1.results[0].output.size(), 2u);
  EXPECT_FALSE(c.variants[1].results[0].median_ms.has_value());

  ASSERT_EQ(c.images.size(), 2u);
  ASSERT_NE(c.image(c.images[1].id), nullptr);
  EXPECT_EQ(c.image(c.images[1].id)->key, "y.jpg");
  EXPECT_EQ(c.image(12345), nullptr);
  ASSERT_EQ(c.failures.size(), 1u);
  EXPECT_EQ(c.variant(c.failures[0].variant_id), &c.variants[1]);

  // Engine descriptions are parsed; an unreadable one is named, and the analysis warns of it.
  ASSERT_EQ(c.engines.count("ort"), 1u);
  EXPECT_EQ(c.engines.at("ort").knobs.at(0).values, (std::vector<std::string>{"disable", "all"}));
  EXPECT_EQ(c.engines.count("broken"), 0u);
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_TRUE(test::Contains(c.problems[0], "engine:broken"));
  const Comparison comparison = compare_variants(c);
  EXPECT_TRUE(test::Contains(comparison.warnings.back(), "engine:broken"));
}

TEST_F(CampaignDataFixture, OutputsAreLoadedOnlyWhenAsked) {
  const CampaignData c = load_campaign(Store(path_, StoreMode::ReadOnly), {.outputs = false});
  EXPECT_TRUE(c.variants[0].results[0].output.empty());
  EXPECT_EQ(c.variants[0].results[0].top_ids, (std::vector<int>{1, 2}));
}

// The readers are const and see results still in the write buffer.
TEST_F(CampaignDataFixture, ConstReadersSeeBufferedResults) {
  Store store(path_, StoreMode::ReadWrite, 100);
  const int64_t y = store.images()[1].id;
  const int64_t v2 = store.variants()[1].id;
  store.add_result(result(v2, y, {5 * kMs}));
  const Store& reader = store;
  EXPECT_EQ(reader.results(v2, false).size(), 2u);
  EXPECT_EQ(load_campaign(reader).variants[1].samples_ms, (std::vector<double>{5}));
}

}  // namespace
}  // namespace deltann
