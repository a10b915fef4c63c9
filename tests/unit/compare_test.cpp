// Pairwise comparison of stored variants (compare.h), on a hand-built database whose every
// expected number is worked out in the comments.
#include "deltann/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/stats.h"
#include "deltann/store.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(PercentileSorted, InterpolatesBetweenClosestRanks) {
  const std::vector<double> v{1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 50), 2.5);  // rank 1.5
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 90), 3.7);  // rank 2.7: 3 + 0.7 * (4 - 3)
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 25), 1.75);  // rank 0.75
  EXPECT_DOUBLE_EQ(percentile_sorted({7.0}, 90), 7.0);
  EXPECT_TRUE(std::isnan(percentile_sorted({}, 50)));
}

StoredResult result(int64_t variant, int64_t image, std::vector<int> top, std::vector<float> output,
                    std::vector<int64_t> samples_ns) {
  StoredResult r;
  r.variant_id = variant;
  r.image_id = image;
  r.top_ids = std::move(top);
  r.top_scores = std::vector<float>(r.top_ids.size(), 1.0f);
  r.output = std::move(output);
  r.samples_ns = std::move(samples_ns);
  return r;
}

StoredImage image(const std::string& key, std::optional<int> label) {
  StoredImage i;
  i.key = key;
  i.path = "/data/" + key;
  i.sha256 = "sha-" + key;
  i.label = label;
  return i;
}

constexpr int64_t kMs = 1'000'000;  // nanoseconds

// Three variants A, B, C over images a, b, c (labels 1, 2, 3) and d (no label). C has no result
// for d (it crashed there).
//
//        A                          B                          C
//   a    [1,2,3,4,5]   (1,2,3)      [1,2,3,4,6]   (1.5,2,2)    [2,1,3,4,5]  (1,2,NaN)
//   b    [2,1,3,4,5]   (0,0,0)      [3,2,1,4,5]   (.25,0,0)    [2,1,3,4,5]  (0,0,0)
//   c    [7,3,9,10,11] (1,1,1)      [12,...,16]   (1,1,1)      [7,3,9,10,11] (1,1,1)
//   d    [0,1,2,3,4]   (5,5,5)      [0,1,2,3,4]   (5,5,5)      -
//   ms   1, 2, 3, 4                 5, 5, 5, 5                 10+30, 20, 40
class CompareFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(dir_ / "results.db", StoreMode::ReadWrite, 3);
    const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
    const int64_t a = store.ensure_image(image("a.jpg", 1));
    const int64_t b = store.ensure_image(image("b.jpg", 2));
    const int64_t c = store.ensure_image(image("c.jpg", 3));
    const int64_t d = store.ensure_image(image("d.jpg", std::nullopt));
    const int64_t va = store.ensure_variant(model, "ort:opt=all", "ort");
    const int64_t vb = store.ensure_variant(model, "ort:opt=off", "ort");
    const int64_t vc = store.ensure_variant(model, "opencv:opt=on", "opencv");

    store.add_result(result(va, a, {1, 2, 3, 4, 5}, {1, 2, 3}, {1 * kMs}));
    store.add_result(result(va, b, {2, 1, 3, 4, 5}, {0, 0, 0}, {2 * kMs}));
    store.add_result(result(va, c, {7, 3, 9, 10, 11}, {1, 1, 1}, {3 * kMs}));
    store.add_result(result(va, d, {0, 1, 2, 3, 4}, {5, 5, 5}, {4 * kMs}));

    store.add_result(result(vb, a, {1, 2, 3, 4, 6}, {1.5f, 2, 2}, {5 * kMs}));
    store.add_result(result(vb, b, {3, 2, 1, 4, 5}, {0.25f, 0, 0}, {5 * kMs}));
    store.add_result(result(vb, c, {12, 13, 14, 15, 16}, {1, 1, 1}, {5 * kMs}));
    store.add_result(result(vb, d, {0, 1, 2, 3, 4}, {5, 5, 5}, {5 * kMs}));

    store.add_result(result(vc, a, {2, 1, 3, 4, 5}, {1, 2, kNaN}, {10 * kMs, 30 * kMs}));
    store.add_result(result(vc, b, {2, 1, 3, 4, 5}, {0, 0, 0}, {20 * kMs}));
    store.add_result(result(vc, c, {7, 3, 9, 10, 11}, {1, 1, 1}, {40 * kMs}));
    store.record_failure({vc, d, FailureStage::run, FailureSymptom::crash, "segmentation fault"});
    store.record_failure(
        {vb, std::nullopt, FailureStage::plan, FailureSymptom::error, "not counted as a failure"});

    store.record_load(va, "1.17.3", "artifact", 2'500'000, "{}");
    store.record_first_inference(va, 750'000);
    store.set_variant_status(va, VariantStatus::done);
    store.set_variant_status(vb, VariantStatus::done);
    store.set_variant_status(vc, VariantStatus::failed);
    store.flush();
    comparison_ = compare_variants(store);
  }

  const PairSummary& pair(const std::string& a, const std::string& b) const {
    for (const auto& p : comparison_.pairs)
      if (p.a == a && p.b == b) return p;
    throw std::runtime_error("no pair " + a + " / " + b);
  }

  test::TempDir dir_;
  Comparison comparison_;
};

TEST_F(CompareFixture, VariantSummaries) {
  ASSERT_EQ(comparison_.variants.size(), 3u);
  EXPECT_EQ(comparison_.labelled_images, 3);
  const VariantSummary& a = comparison_.variants[0];
  const VariantSummary& b = comparison_.variants[1];
  const VariantSummary& c = comparison_.variants[2];
  EXPECT_EQ(a.env, "ort:opt=all");
  EXPECT_EQ(b.env, "ort:opt=off");
  EXPECT_EQ(c.env, "opencv:opt=on");
  EXPECT_EQ(a.status, VariantStatus::done);
  EXPECT_EQ(c.status, VariantStatus::failed);
  EXPECT_EQ(a.engine_version, "1.17.3");
  EXPECT_EQ(a.images, 4);
  EXPECT_EQ(b.images, 4);
  EXPECT_EQ(c.images, 3);
  EXPECT_EQ(a.failures, 0);
  EXPECT_EQ(b.failures, 0);  // a plan-stage failure is not a run failure
  EXPECT_EQ(c.failures, 1);
  ASSERT_TRUE(a.load_ms && a.first_ms);
  EXPECT_DOUBLE_EQ(*a.load_ms, 2.5);
  EXPECT_DOUBLE_EQ(*a.first_ms, 0.75);
  EXPECT_FALSE(b.load_ms.has_value());
  EXPECT_FALSE(b.first_ms.has_value());
}

TEST_F(CompareFixture, Accuracy) {
  // A: a, b right at top-1; c has its label 3 second.     top-1 2/3, top-5 3/3
  // B: a right; b has 2 second; c misses entirely.         top-1 1/3, top-5 2/3
  // C: a has 1 second; b right; c has 3 second.            top-1 1/3, top-5 3/3
  // d has no label and counts for none of them.
  const auto& v = comparison_.variants;
  ASSERT_EQ(v.size(), 3u);
  ASSERT_TRUE(v[0].top1_accuracy && v[0].top5_accuracy);
  EXPECT_DOUBLE_EQ(*v[0].top1_accuracy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(*v[0].top5_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(*v[1].top1_accuracy, 1.0 / 3);
  EXPECT_DOUBLE_EQ(*v[1].top5_accuracy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(*v[2].top1_accuracy, 1.0 / 3);
  EXPECT_DOUBLE_EQ(*v[2].top5_accuracy, 1.0);
}

TEST_F(CompareFixture, Latency) {
  // A: samples 1, 2, 3, 4 ms. B: 5 ms four times. C: 10, 20, 30, 40 ms across its images.
  const auto& v = comparison_.variants;
  ASSERT_TRUE(v[0].median_ms && v[0].p90_ms && v[1].median_ms && v[2].median_ms);
  EXPECT_DOUBLE_EQ(*v[0].median_ms, 2.5);
  EXPECT_DOUBLE_EQ(*v[0].p90_ms, 3.7);
  EXPECT_DOUBLE_EQ(*v[1].median_ms, 5.0);
  EXPECT_DOUBLE_EQ(*v[1].p90_ms, 5.0);
  EXPECT_DOUBLE_EQ(*v[2].median_ms, 25.0);
  EXPECT_DOUBLE_EQ(*v[2].p90_ms, 37.0);
}

TEST_F(CompareFixture, PairsInVariantOrder) {
  ASSERT_EQ(comparison_.pairs.size(), 3u);
  EXPECT_EQ(comparison_.pairs[0].a, "ort:opt=all");
  EXPECT_EQ(comparison_.pairs[0].b, "ort:opt=off");
  EXPECT_EQ(comparison_.pairs[1].a, "ort:opt=all");
  EXPECT_EQ(comparison_.pairs[1].b, "opencv:opt=on");
  EXPECT_EQ(comparison_.pairs[2].a, "ort:opt=off");
  EXPECT_EQ(comparison_.pairs[2].b, "opencv:opt=on");
}

TEST_F(CompareFixture, TopOneDifferences) {
  const PairSummary& ab = pair("ort:opt=all", "ort:opt=off");
  EXPECT_EQ(ab.images, 4);
  EXPECT_EQ(ab.top1_differences, 2);  // b: 2 vs 3, c: 7 vs 12
  EXPECT_EQ(ab.differing_images, (std::vector<std::string>{"b.jpg", "c.jpg"}));
  EXPECT_DOUBLE_EQ(ab.top1_difference_rate(), 0.5);

  const PairSummary& ac = pair("ort:opt=all", "opencv:opt=on");
  EXPECT_EQ(ac.images, 3);  // C has no result for d
  EXPECT_EQ(ac.top1_differences, 1);
  EXPECT_EQ(ac.differing_images, std::vector<std::string>{"a.jpg"});

  const PairSummary& bc = pair("ort:opt=off", "opencv:opt=on");
  EXPECT_EQ(bc.images, 3);
  EXPECT_EQ(bc.top1_differences, 3);
  EXPECT_EQ(bc.differing_images, (std::vector<std::string>{"a.jpg", "b.jpg", "c.jpg"}));
  EXPECT_DOUBLE_EQ(bc.top1_difference_rate(), 1.0);
}

TEST_F(CompareFixture, TopFiveOverlap) {
  // A-B: a shares 4 of 5, b 5, c none (disjoint lists), d 5:  (0.8 + 1 + 0 + 1) / 4 = 0.7
  // A-C: every image shares all 5:                            1
  // B-C: a 4, b 5, c none:                                    (0.8 + 1 + 0) / 3 = 0.6
  EXPECT_DOUBLE_EQ(pair("ort:opt=all", "ort:opt=off").top5_overlap, 0.7);
  EXPECT_DOUBLE_EQ(pair("ort:opt=all", "opencv:opt=on").top5_overlap, 1.0);
  EXPECT_DOUBLE_EQ(pair("ort:opt=off", "opencv:opt=on").top5_overlap, 0.6);
}

TEST_F(CompareFixture, OutputDifferences) {
  // A-B: |differences| 0.5, 0, 1 | 0.25, 0, 0 | 0, 0, 0 | 0, 0, 0: max 1, mean 1.75 / 12.
  const PairSummary& ab = pair("ort:opt=all", "ort:opt=off");
  ASSERT_TRUE(ab.max_abs_diff && ab.mean_abs_diff);
  EXPECT_DOUBLE_EQ(*ab.max_abs_diff, 1.0);
  EXPECT_DOUBLE_EQ(*ab.mean_abs_diff, 1.75 / 12);
  // A NaN on one side only is an infinite difference.
  for (const auto* p :
       {&pair("ort:opt=all", "opencv:opt=on"), &pair("ort:opt=off", "opencv:opt=on")}) {
    ASSERT_TRUE(p->max_abs_diff && p->mean_abs_diff);
    EXPECT_TRUE(std::isinf(*p->max_abs_diff));
    EXPECT_TRUE(std::isinf(*p->mean_abs_diff));
  }
}

TEST_F(CompareFixture, JsonAndTable) {
  const nlohmann::json j = to_json(comparison_);
  EXPECT_EQ(j.at("schema_version"), 3);
  EXPECT_EQ(j.at("schema"), "deltann.compare");
  EXPECT_EQ(j.at("labelled_images"), 3);
  ASSERT_EQ(j.at("variants").size(), 3u);
  ASSERT_EQ(j.at("pairs").size(), 3u);
  EXPECT_EQ(j["variants"][0]["env"], "ort:opt=all");
  EXPECT_DOUBLE_EQ(j["variants"][0]["median_ms"].get<double>(), 2.5);
  EXPECT_TRUE(j["variants"][1]["load_ms"].is_null());
  EXPECT_EQ(j["pairs"][0]["top1_differences"], 2);
  EXPECT_EQ(j["pairs"][0]["differing_images"], (std::vector<std::string>{"b.jpg", "c.jpg"}));
  EXPECT_NO_THROW((void)j.dump());
  // The streamed form is the same document, byte for byte.
  std::ostringstream streamed;
  write_json(comparison_, streamed);
  EXPECT_EQ(streamed.str(), j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));

  std::ostringstream table;
  print_comparison(comparison_, table);
  EXPECT_TRUE(Contains(table.str(), "ort:opt=all"));
  EXPECT_TRUE(Contains(table.str(), "opencv:opt=on"));
  EXPECT_TRUE(Contains(table.str(), "2/4"));  // A vs B: 2 differing of 4
  EXPECT_TRUE(Contains(table.str(), "3/3"));  // B vs C
  // Both p-values of each pair, the raw and the adjusted over the comparison's timing tests.
  EXPECT_EQ(comparison_.timing_tests(), 3);
  EXPECT_TRUE(j["pairs"][0].contains("p_value") && j["pairs"][0].contains("p_adjusted"));
  EXPECT_TRUE(Contains(table.str(), "p adj"));
  EXPECT_TRUE(Contains(table.str(), "adjusted by Holm's method over the 3 timing tests"));
}

// write_json streams what to_json(c).dump(2) prints: empty arrays, nested objects and arrays
// inside the streamed elements, and bytes that are not UTF-8 (replaced, not thrown on).
TEST(CompareJson, StreamedDocumentEqualsTheWholeOne) {
  const auto whole = [](const Comparison& c) {
    return to_json(c).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  const auto streamed = [](const Comparison& c) {
    std::ostringstream out;
    write_json(c, out);
    return out.str();
  };
  Comparison empty;
  EXPECT_EQ(streamed(empty), whole(empty));
  EXPECT_TRUE(Contains(streamed(empty), "\"pairs\": []"));

  Comparison c;
  c.meta = {{"host", "h\xff"}, {"images", "/data"}};
  c.warnings = {"model file /m\xfe.onnx no longer exists"};
  c.models.push_back({1, "/m.onnx", "sha", "defaults", std::nullopt, "missing"});
  c.variants.resize(2);
  c.variants[0].env = "ort:opt=all";
  c.variants[0].knobs = {{"opt", "all"}};
  c.variants[1].env = "bad\xc3";
  c.variants[1].median_ci_ms = stats::Interval{1.5, 2.5};
  PairSummary p;
  p.a = "ort:opt=all";
  p.b = "bad\xc3";
  p.images = 2;
  p.differing_images = {"a\"quoted\".jpg", "line\nbreak.jpg"};
  p.speed_ratio = 1.25;
  c.pairs.push_back(p);
  c.pairs.push_back(PairSummary{});
  c.findings.push_back({FindingKind::label_difference, 70, "t", "e", {"x", "y"}, {}, "deltann"});
  c.unusable_images.push_back({"k\xff", "/p", "reason"});
  c.labelled_images = 7;
  EXPECT_EQ(streamed(c), whole(c));
}

// A campaign over an expanded set: the photo s.jpg as it is (o), fogged at severities 1 and 3
// (f1, f3) and pixelated at 1 and 3 (p1, p3), and x.jpg without provenance. A's top-1 is 1
// everywhere; B's is 2 on f3, p1, p3 and x. By hand:
//   by transform: original 0 of 1, fog 1 of 2 (f3), pixelate 2 of 2
//   by severity:  original 0 of 1, 1: 1 of 2 (p1), 3: 2 of 2 (f3, p3)
// x differs too but has no provenance: it counts for the pair, in no shift.
TEST(CompareShifts, DifferencesByTransformAndSeverityCountedByHand) {
  test::TempDir dir;
  Store store(dir / "shifts.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t va = store.ensure_variant(model, "ort", "ort");
  const int64_t vb = store.ensure_variant(model, "ort:precision=int8", "ort");
  struct Entry {
    std::string key, transform;
    std::optional<int> severity;
    int top1_b;
  };
  const std::vector<Entry> entries = {{"o.jpg", "original", {}, 1}, {"f1.png", "fog", 1, 1},
                                      {"f3.png", "fog", 3, 2},      {"p1.png", "pixelate", 1, 2},
                                      {"p3.png", "pixelate", 3, 2}, {"x.jpg", "", {}, 2}};
  std::vector<StoredProvenance> provenance;
  for (const auto& e : entries) {
    const int64_t id = store.ensure_image(image(e.key, std::nullopt));
    store.add_result(result(va, id, {1, 5}, {}, {kMs}));
    store.add_result(result(vb, id, {e.top1_b, 5}, {}, {kMs}));
    if (!e.transform.empty())
      provenance.push_back({id, "s.jpg", "sha-s", e.transform,
                            e.transform == "original" ? "" : "weather", e.severity, 0, 1, "{}"});
  }
  store.set_provenance(provenance);
  store.flush();
  const Comparison c = compare_variants(store);
  ASSERT_EQ(c.pairs.size(), 1u);
  EXPECT_EQ(c.pairs[0].top1_differences, 4);

  using Row = std::tuple<std::string, std::string, int, int>;  // by, shift, images, differences
  std::vector<Row> rows;
  for (const auto& s : c.shifts) {
    EXPECT_EQ(s.a, "ort");
    EXPECT_EQ(s.b, "ort:precision=int8");
    rows.emplace_back(s.by, s.shift, s.images, s.top1_differences);
    // Each rate has the Clopper-Pearson interval of its counts.
    ASSERT_TRUE(s.top1_difference_ci.has_value());
    const auto expected = stats::rate_interval(s.top1_differences, s.images, 0.95);
    EXPECT_DOUBLE_EQ(s.top1_difference_ci->low, expected->low);
    EXPECT_DOUBLE_EQ(s.top1_difference_ci->high, expected->high);
  }
  EXPECT_EQ(rows, (std::vector<Row>{{"transform", "original", 1, 0},
                                    {"transform", "fog", 2, 1},
                                    {"transform", "pixelate", 2, 2},
                                    {"severity", "original", 1, 0},
                                    {"severity", "1", 2, 1},
                                    {"severity", "3", 2, 2}}));
  // 0 of 1: [0, 1 - 0.025] = [0, 0.975]; 2 of 2: [0.025^(1/2), 1] = [0.158, 1].
  EXPECT_NEAR(c.shifts[0].top1_difference_ci->high, 0.975, 1e-9);
  EXPECT_NEAR(c.shifts[2].top1_difference_ci->low, 0.158114, 1e-6);
  EXPECT_DOUBLE_EQ(c.shifts[2].top1_difference_rate(), 1.0);

  // --json carries every row, with its interval; the terminal only the rows with a difference.
  const nlohmann::json j = to_json(c);
  ASSERT_EQ(j["shifts"].size(), 6u);
  EXPECT_EQ(j["shifts"][1]["shift"], "fog");
  EXPECT_EQ(j["shifts"][1]["top1_difference_rate"], 0.5);
  EXPECT_TRUE(j["shifts"][1]["top1_difference_rate_ci_low"].is_number());
  std::ostringstream streamed;
  write_json(c, streamed);
  EXPECT_EQ(streamed.str(), j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
  std::ostringstream terminal;
  print_comparison(c, terminal, {});
  const std::string text = terminal.str();
  EXPECT_TRUE(Contains(text, "Top-1 differences by transform and severity"));
  EXPECT_TRUE(Contains(text, "pixelate"));
  EXPECT_TRUE(Contains(text, "100.0% [15.8"));
  EXPECT_TRUE(Contains(text, "(2 of 6 pair x shift rows without a difference not shown"));
}

// Two variants over images with the given outputs (a's, b's), one image per entry in order.
using OutputPair = std::pair<std::vector<float>, std::vector<float>>;
Comparison compare_images(const test::TempDir& dir, const std::vector<OutputPair>& outputs) {
  Store store(dir / "r.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t va = store.ensure_variant(model, "ort", "ort");
  const int64_t vb = store.ensure_variant(model, "opencv", "opencv");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const int64_t img = store.ensure_image(image("x" + std::to_string(i) + ".jpg", std::nullopt));
    store.add_result(result(va, img, {0}, outputs[i].first, {kMs}));
    store.add_result(result(vb, img, {0}, outputs[i].second, {kMs}));
  }
  return compare_variants(store);
}

TEST(CompareShifts, NoneWithoutProvenance) {
  test::TempDir dir;
  const Comparison c = compare_images(dir, {{{1, 2}, {2, 1}}});
  EXPECT_TRUE(c.shifts.empty());
  std::ostringstream terminal;
  print_comparison(c, terminal, {});
  EXPECT_FALSE(Contains(terminal.str(), "by transform"));
  EXPECT_EQ(to_json(c)["shifts"], nlohmann::json::array());
}

// Images no variant could use are listed with their reason in the comparison, its JSON and its
// terminal table, where names from files are made safe; the header says which spec applied.
TEST(CompareUnusable, ListedWithTheirReasonAndTheSpecInTheHeader) {
  test::TempDir dir;
  Store store(dir / "u.db");
  store.set_meta("spec_source", "ImageNet defaults (no m.spec.json beside the model)");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t ok = store.ensure_image(image("ok.jpg", 1));
  StoredImage broken = image("bro\x1b[2Jken.jpg", std::nullopt);
  broken.status = ImageStatus::error;
  broken.message = "cannot decode: not an image";
  store.ensure_image(broken);
  StoredImage missing = image("gone.jpg", 2);
  missing.status = ImageStatus::error;
  missing.message = "file does not exist";
  store.ensure_image(missing);
  const int64_t v = store.ensure_variant(model, "ort", "ort");
  store.add_result(result(v, ok, {1, 0}, {}, {kMs}));
  store.flush();
  const Comparison c = compare_variants(store);
  ASSERT_EQ(c.unusable_images.size(), 2u);
  EXPECT_EQ(c.unusable_images[0].key, "bro\x1b[2Jken.jpg");
  EXPECT_EQ(c.unusable_images[0].path, "/data/bro\x1b[2Jken.jpg");
  EXPECT_EQ(c.unusable_images[0].reason, "cannot decode: not an image");
  EXPECT_EQ(c.unusable_images[1].key, "gone.jpg");
  EXPECT_EQ(c.labelled_images, 1);  // the unusable labelled image does not count

  const nlohmann::json j = to_json(c);
  ASSERT_EQ(j.at("unusable_images").size(), 2u);
  EXPECT_EQ(j["unusable_images"][1], (nlohmann::json{{"key", "gone.jpg"},
                                                     {"path", "/data/gone.jpg"},
                                                     {"reason", "file does not exist"}}));

  std::ostringstream table;
  print_comparison(c, table);
  const std::string text = table.str();
  EXPECT_TRUE(Contains(text, "Model spec: ImageNet defaults (no m.spec.json beside the model)"));
  EXPECT_TRUE(Contains(text, "2 images unusable"));
  EXPECT_TRUE(Contains(text, "bro\\x1b[2Jken.jpg"));
  EXPECT_TRUE(Contains(text, "file does not exist"));
  EXPECT_FALSE(Contains(text, "\x1b")) << "an escape character reached the terminal";
}

// Two variants over one image with the given outputs.
Comparison compare_outputs(const test::TempDir& dir, std::vector<float> a, std::vector<float> b) {
  return compare_images(dir, {{std::move(a), std::move(b)}});
}

TEST(CompareOutputs, NaNOnBothSidesIsNoDifference) {
  test::TempDir dir;
  const Comparison c = compare_outputs(dir, {kNaN, 1.0f}, {kNaN, 1.5f});
  ASSERT_EQ(c.pairs.size(), 1u);
  ASSERT_TRUE(c.pairs[0].max_abs_diff && c.pairs[0].mean_abs_diff);
  EXPECT_DOUBLE_EQ(*c.pairs[0].max_abs_diff, 0.5);
  EXPECT_DOUBLE_EQ(*c.pairs[0].mean_abs_diff, 0.25);  // (0 + 0.5) / 2
  EXPECT_EQ(c.labelled_images, 0);
  EXPECT_FALSE(c.variants[0].top1_accuracy.has_value());  // nothing labelled
}

TEST(CompareOutputs, AllNaNOnBothSidesIsZero) {
  test::TempDir dir;
  const Comparison c = compare_outputs(dir, {kNaN, kNaN}, {kNaN, kNaN});
  ASSERT_EQ(c.pairs.size(), 1u);
  ASSERT_TRUE(c.pairs[0].max_abs_diff.has_value());
  EXPECT_EQ(*c.pairs[0].max_abs_diff, 0.0);
  EXPECT_EQ(*c.pairs[0].mean_abs_diff, 0.0);
}

// One image whose output holds a NaN or an infinity on one side makes the pair's worst cosine NaN
// (undefined), wherever that image comes among the others, and its other worst-image numbers
// infinite.
TEST(CompareOutputs, ANonFiniteOutputMakesThePairsWorstCosineNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const float bad : {kNaN, inf})
    for (const bool bad_first : {true, false}) {
      const OutputPair finite{{1, 2, 3}, {1, 2, 2.5f}};  // cosine 0.996 on its own
      const OutputPair broken{{1, bad, 3}, {1, 2, 3}};
      test::TempDir dir;
      const Comparison c = compare_images(dir, bad_first ? std::vector<OutputPair>{broken, finite}
                                                         : std::vector<OutputPair>{finite, broken});
      ASSERT_EQ(c.pairs.size(), 1u);
      const PairSummary& p = c.pairs[0];
      ASSERT_TRUE(p.cosine && p.relative_l2 && p.max_abs_diff && p.min_atol && p.min_rtol);
      EXPECT_TRUE(std::isnan(*p.cosine)) << bad << " first " << bad_first << ": " << *p.cosine;
      EXPECT_TRUE(std::isinf(*p.relative_l2));
      EXPECT_TRUE(std::isinf(*p.max_abs_diff));
      EXPECT_TRUE(std::isinf(*p.mean_abs_diff));
      EXPECT_TRUE(std::isinf(*p.min_atol));
      EXPECT_TRUE(std::isinf(*p.min_rtol));
      EXPECT_EQ(p.failing_elements, 2);  // the 0.5 of the finite image and the broken element
    }
  // Without the broken image the worst cosine is the finite one's.
  test::TempDir dir;
  const Comparison c = compare_outputs(dir, {1, 2, 3}, {1, 2, 2.5f});
  EXPECT_NEAR(*c.pairs[0].cosine, 12.5 / std::sqrt(14 * 11.25), 1e-12);  // 0.99602
}

TEST(CompareOutputs, MissingOrMismatchedOutputsGiveNoNumbers) {
  {
    test::TempDir dir;
    const Comparison c = compare_outputs(dir, {1.0f, 2.0f}, {});
    ASSERT_EQ(c.pairs.size(), 1u);
    EXPECT_FALSE(c.pairs[0].max_abs_diff.has_value());
    EXPECT_FALSE(c.pairs[0].mean_abs_diff.has_value());
    EXPECT_EQ(c.pairs[0].top1_differences, 0);
    EXPECT_DOUBLE_EQ(c.pairs[0].top5_overlap, 1.0);
  }
  {
    test::TempDir dir;
    const Comparison c = compare_outputs(dir, {1.0f, 2.0f}, {1.0f, 2.0f, 3.0f});
    ASSERT_EQ(c.pairs.size(), 1u);
    EXPECT_FALSE(c.pairs[0].max_abs_diff.has_value());
  }
}

TEST(PairSummary, DifferenceRateOfNoImagesIsZero) {
  PairSummary p;
  EXPECT_EQ(p.top1_difference_rate(), 0.0);
}

}  // namespace
}  // namespace deltann
