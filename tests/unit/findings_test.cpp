// Axes of pairs and the ranked findings (compare.h), on hand-built databases.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/compare.h"
#include "deltann/store.h"
#include "test_util.h"

namespace deltann {
namespace {

// ONNX Runtime's description as a campaign saves it (meta `engine:ort`), with these opt values,
// lowest first.
std::string ort_description(const std::vector<std::string>& opt_values) {
  BackendInfo info;
  info.name = "ort";
  info.version = "1.17.3";
  info.devices = {"cpu"};
  info.knobs = {{"opt", opt_values, opt_values.back(), "graph optimisation level"}};
  return to_json(info).dump();
}

using test::Contains;

TEST(Axis, OneKnobChangedNamesThatKnob) {
  EXPECT_EQ(axis_between("ort:opt=all,threads=1", "ort:opt=basic,threads=1"), "opt");
  EXPECT_EQ(axis_between("ort:opt=all,threads=1", "ort:opt=all,threads=2"), "threads");
  EXPECT_EQ(axis_between("tvm:opt=3,device=cpu", "tvm:opt=3,device=cuda"), "device");
}

TEST(Axis, EnginesWithEqualSharedSettingsAreTheFrameworkAxis) {
  // opt values are engine-specific, so they do not make the pair mixed.
  EXPECT_EQ(axis_between("ort:opt=all,threads=2", "opencv:opt=on,threads=2"), "framework");
  EXPECT_EQ(axis_between("ort:opt=all,threads=1", "opencv:opt=on,threads=2"), "mixed");
}

TEST(Axis, SeveralChangesOrNoneOrVersionsAndChains) {
  EXPECT_EQ(axis_between("ort:opt=all,threads=1", "ort:opt=basic,threads=2"), "mixed");
  EXPECT_EQ(axis_between("ort:opt=all", "ort:opt=all"), "none");
  EXPECT_EQ(axis_between("tvm@0.19:opt=3", "tvm@0.20:opt=3"), "version");
  EXPECT_EQ(axis_between("tflite@onnx>tflite", "tflite@pytorch>tflite"), "conversion");
  EXPECT_EQ(axis_between("not a valid env", "ort"), "mixed");
}

StoredImage image(const std::string& key, int label) {
  StoredImage i;
  i.key = key;
  i.path = "/data/" + key;
  i.sha256 = "sha-" + key;
  i.label = label;
  return i;
}

// Two ORT levels of one model over 20 images: `all` is ~30 % slower than `basic` (a clear,
// significant slow-down under the higher level), and flips the label of one image confidently.
class FindingsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(dir_ / "f.db");
    store.set_meta("images", "/data/list.txt");
    // The engine's opt values, lowest first, as a campaign saves them.
    store.set_meta("engine:ort", ort_description({"disable", "basic", "extended", "all"}));
    const int64_t model = store.ensure_model({0, "/m/model.onnx", "sha", "{}"});
    const int64_t basic = store.ensure_variant(model, "ort:opt=basic,threads=1", "ort");
    const int64_t all = store.ensure_variant(model, "ort:opt=all,threads=1", "ort");
    std::mt19937 random(7);
    std::uniform_int_distribution<int64_t> jitter(0, 200'000);  // 0-0.2 ms
    for (int i = 0; i < 20; ++i) {
      const int64_t id = store.ensure_image(image("img" + std::to_string(i) + ".png", 1));
      StoredResult a, b;
      a.variant_id = basic;
      b.variant_id = all;
      a.image_id = b.image_id = id;
      a.top_ids = {1, 2, 3, 4, 5};
      // Logits 5 vs 1: relative top-2 gap 1 - e^-4, a confident decision.
      a.top_scores = {5, 1, 0, -1, -2};
      b.top_ids = i == 3 ? std::vector<int>{2, 1, 3, 4, 5} : a.top_ids;
      b.top_scores = a.top_scores;
      for (int k = 0; k < 5; ++k) {
        a.samples_ns.push_back(10'000'000 + jitter(random));
        b.samples_ns.push_back(13'000'000 + jitter(random));
      }
      b.repeat_max_abs_diff = i == 5 ? 0.5 : 0.0;
      store.add_result(a);
      store.add_result(b);
    }
    store.record_failure(
        {all, std::nullopt, FailureStage::plan, FailureSymptom::unsupported, "device absent"});
    store.flush();
    comparison_ = compare_variants(store);
  }

  const Finding* find(const std::string& kind) const {
    for (const auto& f : comparison_.findings)
      if (to_string(f.kind) == kind) return &f;
    return nullptr;
  }

  test::TempDir dir_;
  Comparison comparison_;
};

TEST_F(FindingsFixture, PairTimingIsSignificant) {
  ASSERT_EQ(comparison_.pairs.size(), 1u);
  const PairSummary& p = comparison_.pairs[0];
  EXPECT_EQ(p.axis, "opt");
  ASSERT_TRUE(p.speed_ratio.has_value());
  EXPECT_NEAR(*p.speed_ratio, 1.3, 0.02);  // medians ~10.1 and ~13.1 ms
  EXPECT_GT(p.speed_ratio_ci->low, 1.2);
  EXPECT_LT(*p.p_value, 1e-6);
  EXPECT_TRUE(p.significant);
  EXPECT_EQ(p.top1_differences, 1);
  EXPECT_EQ(p.confident_flips, 1);
  EXPECT_EQ(p.near_tie_flips, 0);
}

TEST_F(FindingsFixture, HigherLevelSlowerIsAnUnexpectedDegradation) {
  const Finding* f = find("slowdown");
  ASSERT_NE(f, nullptr);
  // Oriented from the lower level (basic) to the higher (all).
  ASSERT_EQ(f->variants.size(), 2u);
  EXPECT_EQ(f->variants[0], "ort:opt=basic,threads=1");
  EXPECT_EQ(f->variants[1], "ort:opt=all,threads=1");
  EXPECT_TRUE(Contains(f->title, "higher optimisation is slower"));
  EXPECT_TRUE(Contains(f->evidence, "Mann-Whitney"));
  EXPECT_TRUE(Contains(f->reproduce, "--model /m/model.onnx"));
  EXPECT_TRUE(Contains(f->reproduce, "--env ort:opt=basic,threads=1"));
}

TEST_F(FindingsFixture, LabelDifferenceNondeterminismAndPlanSkipAreFindingsInSeverityOrder) {
  const Finding* label = find("label_difference");
  ASSERT_NE(label, nullptr);
  ASSERT_EQ(label->images.size(), 1u);
  EXPECT_EQ(label->images[0], "img3.png");
  const Finding* nondeterminism = find("nondeterminism");
  ASSERT_NE(nondeterminism, nullptr);
  EXPECT_TRUE(Contains(nondeterminism->title, "1 image"));
  const Finding* skipped = find("failure");
  ASSERT_NE(skipped, nullptr);
  EXPECT_TRUE(Contains(skipped->title, "device absent"));
  EXPECT_TRUE(
      std::is_sorted(comparison_.findings.begin(), comparison_.findings.end(),
                     [](const Finding& x, const Finding& y) { return x.severity > y.severity; }));
  // slowdown (60 + 30) ranks above the label difference (50 + 40 x the low end of its interval)
  // and nondeterminism (40); the skipped variant (5) is last.
  EXPECT_EQ(comparison_.findings.front().kind, FindingKind::slowdown);
  EXPECT_EQ(comparison_.findings.back().kind, FindingKind::failure);
}

TEST(Findings, LowerLevelSlowerIsNotADegradation) {
  test::TempDir dir;
  Store store(dir / "g.db");
  store.set_meta("engine:ort", ort_description({"disable", "all"}));
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t slow = store.ensure_variant(model, "ort:opt=disable", "ort");
  const int64_t fast = store.ensure_variant(model, "ort:opt=all", "ort");
  for (int i = 0; i < 10; ++i) {
    const int64_t id = store.ensure_image(image("i" + std::to_string(i), 0));
    for (const auto& [variant, ms] : {std::pair{slow, 20}, std::pair{fast, 10}}) {
      StoredResult r;
      r.variant_id = variant;
      r.image_id = id;
      r.top_ids = {0, 1};
      r.top_scores = {2, 1};
      r.samples_ns = {ms * 1'000'000 + i, ms * 1'000'000 + 2 * i};
      store.add_result(r);
    }
  }
  store.flush();
  const Comparison c = compare_variants(store);
  ASSERT_EQ(c.pairs.size(), 1u);
  EXPECT_TRUE(c.pairs[0].significant);
  for (const auto& f : c.findings) EXPECT_NE(f.kind, FindingKind::slowdown) << f.title;
}

// Five variants agree; one (a quantised conversion) flips image 0's label against all of them.
// That is one finding about the odd one out, not five pair findings.
// 1 confident flip of 20 images: rate 5 %, 95 % Clopper-Pearson interval [0.00127, 0.249]
// (SciPy 1.10.1, binomtest(1, 20).proportion_ci(method='exact')). The finding gives the interval
// and ranks on its low end; the flipped image keeps the same five ids, so no top-5 difference.
TEST_F(FindingsFixture, LabelDifferenceStandsAndRanksOnTheInterval) {
  const PairSummary& p = comparison_.pairs.at(0);
  ASSERT_TRUE(p.top1_difference_ci.has_value());
  EXPECT_NEAR(p.top1_difference_ci->low, 0.0012650894979560337, 1e-12);
  EXPECT_NEAR(p.top1_difference_ci->high, 0.24873276277202772, 1e-12);
  EXPECT_EQ(p.top5_differences, 0);
  ASSERT_TRUE(p.top5_difference_ci.has_value());
  EXPECT_EQ(p.top5_difference_ci->low, 0.0);
  EXPECT_NEAR(p.top5_difference_ci->high, 0.16843347098308548, 1e-12);
  const Finding* label = find("label_difference");
  ASSERT_NE(label, nullptr);
  EXPECT_TRUE(Contains(label->title, "1 of 20 images (5.0%, 95% interval 0.1% to 24.9%)"))
      << label->title;
  EXPECT_NEAR(label->severity, 50 + 40 * p.top1_difference_ci->low, 1e-12);
}

TEST(Findings, OneVariantAgainstAnAgreeingMajorityIsOneFinding) {
  test::TempDir dir;
  Store store(dir / "d.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const std::vector<std::string> envs = {
      "ort:threads=1",      "opencv:threads=1",   "tvm:threads=1",
      "libtorch:threads=1", "openvino:threads=1", "tflite@onnx>tflite:quantize=dynamic"};
  std::vector<int64_t> ids;
  for (const auto& env : envs) ids.push_back(store.ensure_variant(model, env, env.substr(0, 3)));
  for (int i = 0; i < 6; ++i) {
    const int64_t image_id = store.ensure_image(image("p" + std::to_string(i), 1));
    for (size_t v = 0; v < envs.size(); ++v) {
      StoredResult r;
      r.variant_id = ids[v];
      r.image_id = image_id;
      const bool odd = v + 1 == envs.size() && i == 0;
      r.top_ids = odd ? std::vector<int>{2, 1} : std::vector<int>{1, 2};
      r.top_scores = {5, 1};
      r.samples_ns = {1'000'000, 1'000'001};
      store.add_result(r);
    }
  }
  store.flush();
  const Comparison c = compare_variants(store);
  std::vector<const Finding*> labels;
  for (const auto& f : c.findings)
    if (f.kind == FindingKind::label_difference) labels.push_back(&f);
  ASSERT_EQ(labels.size(), 1u);
  EXPECT_EQ(labels[0]->variants[0], envs.back());
  EXPECT_TRUE(
      Contains(labels[0]->title, "against 5 of the 5 variants that agree with most others"));
  ASSERT_EQ(labels[0]->images.size(), 1u);
  EXPECT_EQ(labels[0]->images[0], "p0");
}

// With no agreeing majority (three variants that all differ), every pair is reported as it is.
TEST(Findings, WithoutAMajorityEveryDifferingPairIsReported) {
  test::TempDir dir;
  Store store(dir / "e.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  std::vector<int64_t> ids;
  for (const char* env : {"a:threads=1", "b:threads=1", "c:threads=1", "d:threads=1"})
    ids.push_back(store.ensure_variant(model, env, std::string(env, 1)));
  const int64_t image_id = store.ensure_image(image("q", 0));
  for (size_t v = 0; v < ids.size(); ++v) {
    StoredResult r;
    r.variant_id = ids[v];
    r.image_id = image_id;
    r.top_ids = {static_cast<int>(v), 9};
    r.top_scores = {5, 1};
    r.samples_ns = {1'000'000};
    store.add_result(r);
  }
  store.flush();
  const Comparison c = compare_variants(store);
  const auto labels = std::count_if(c.findings.begin(), c.findings.end(), [](const Finding& f) {
    return f.kind == FindingKind::label_difference;
  });
  EXPECT_EQ(labels, 6);  // 4 choose 2
}

// A campaign whose ort opt=all variant is ~5 % slower than each of the other variants, which all
// time alike: 40 samples each, ten images of four. Against one of them alone the slow-down has a
// Mann-Whitney p of 0.039 (U = 585 of 1600 pairs against a mean of 800, z = -2.064) and
// the whole 95 % interval of the ratio, [1.033, 1.063], lies above 1.02: significant on its own.
// `others` lists the environments of the other variants.
Comparison slower_opt_all_against(const test::TempDir& dir,
                                  const std::vector<std::string>& others) {
  Store store(dir / "m.db");
  store.set_meta("engine:ort", ort_description({"disable", "basic", "extended", "all"}));
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  // Others: 35 samples from 10 ms and 5 from 30 ms, 10 us apart. opt=all: 11 from 5 ms and 29
  // from 10.6 ms. Its median is 4.8 % higher although a quarter of its samples are the fastest.
  std::vector<int64_t> same, slower;
  for (int i = 0; i < 40; ++i) {
    same.push_back((i < 35 ? 10'000'000 : 29'650'000) + 10'000 * i);
    slower.push_back((i < 11 ? 5'000'000 : 10'490'000) + 10'000 * i);
  }
  std::vector<std::pair<int64_t, const std::vector<int64_t>*>> variants;
  for (const auto& env : others)
    variants.emplace_back(store.ensure_variant(model, env, env.substr(0, env.find(':'))), &same);
  variants.emplace_back(store.ensure_variant(model, "ort:opt=all,threads=1", "ort"), &slower);
  for (int i = 0; i < 10; ++i) {
    const int64_t id = store.ensure_image(image("i" + std::to_string(i), 0));
    for (const auto& [variant, samples] : variants) {
      StoredResult r;
      r.variant_id = variant;
      r.image_id = id;
      r.top_ids = {0, 1};
      r.top_scores = {2, 1};
      r.samples_ns.assign(samples->begin() + 4 * i, samples->begin() + 4 * i + 4);
      store.add_result(r);
    }
  }
  store.flush();
  return compare_variants(store);
}

const PairSummary& pair_of(const Comparison& c, const std::string& a, const std::string& b) {
  for (const auto& p : c.pairs)
    if (p.a == a && p.b == b) return p;
  throw std::runtime_error("no pair " + a + " / " + b);
}

bool has_slowdown(const Comparison& c) {
  return std::any_of(c.findings.begin(), c.findings.end(),
                     [](const Finding& f) { return f.kind == FindingKind::slowdown; });
}

TEST(Findings, OneTimingTestAloneIsSignificantAtItsRawP) {
  test::TempDir dir;
  const Comparison c = slower_opt_all_against(dir, {"ort:opt=basic,threads=1"});
  const PairSummary& p = pair_of(c, "ort:opt=basic,threads=1", "ort:opt=all,threads=1");
  ASSERT_TRUE(p.p_value && p.p_adjusted && p.speed_ratio_ci);
  EXPECT_NEAR(*p.p_value, 0.0390, 1e-4);
  EXPECT_EQ(*p.p_adjusted, *p.p_value);  // a family of one
  EXPECT_NEAR(p.speed_ratio_ci->low, 1.033, 1e-3);
  EXPECT_TRUE(p.significant);
  EXPECT_TRUE(has_slowdown(c));
}

// The same pair among 15 timing tests (six variants): five tests have p = 0.039, so Holm's
// smallest adjusted p is 15 x 0.039 = 0.59. Tested at 0.05 each, as before the adjustment, the
// five would be called significant and two of them (against basic and extended) reported as
// slow-downs.
TEST(Findings, ManyPairsDoNotFlagARawPJustBelowAlpha) {
  test::TempDir dir;
  const Comparison c = slower_opt_all_against(
      dir, {"ort:opt=disable,threads=1", "ort:opt=basic,threads=1", "ort:opt=extended,threads=1",
            "opencv:opt=off,threads=1", "opencv:opt=on,threads=1"});
  ASSERT_EQ(c.pairs.size(), 15u);
  const PairSummary& p = pair_of(c, "ort:opt=basic,threads=1", "ort:opt=all,threads=1");
  ASSERT_TRUE(p.p_value && p.p_adjusted);
  EXPECT_LT(*p.p_value, c.options.alpha);
  EXPECT_NEAR(*p.p_adjusted, 15 * *p.p_value, 1e-12);
  for (const auto& q : c.pairs) {
    ASSERT_TRUE(q.p_adjusted.has_value());
    EXPECT_GE(*q.p_adjusted, c.options.alpha) << q.a << " / " << q.b;
    EXPECT_FALSE(q.significant) << q.a << " / " << q.b;
  }
  EXPECT_FALSE(has_slowdown(c));
}

// The reproduce command repeats what shaped the results: the campaign's recorded run options
// (spec, timing, cache...), the thresholds that are not at their default, and a fresh database.
TEST(Findings, ReproduceCarriesTheRunOptionsTheThresholdsAndAFreshDatabase) {
  test::TempDir dir;
  Store store(dir / "r.db");
  store.set_meta("images", "/data/my images/list.txt");
  store.set_meta("spec", "/specs/m.spec.json");
  store.set_meta("run_options",
                 nlohmann::json(std::vector<std::string>{"--spec", "/specs/m.spec.json", "--warmup",
                                                         "1", "--repeat", "7", "--cache", "/c"})
                     .dump());
  const int64_t model = store.ensure_model({0, "/m/model.onnx", "sha", "{}"});
  const int64_t a = store.ensure_variant(model, "ort:opt=basic,threads=1", "ort");
  const int64_t b = store.ensure_variant(model, "ort:opt=all,threads=1", "ort");
  const int64_t id = store.ensure_image(image("x.png", 1));
  for (const int64_t v : {a, b}) {
    StoredResult r;
    r.variant_id = v;
    r.image_id = id;
    r.top_ids = {v == a ? 1 : 2, 0};
    r.top_scores = {5, 1};
    store.add_result(r);
  }
  store.flush();
  AnalysisOptions options;
  options.atol = 0.25;
  const Comparison c = compare_variants(store, options);
  ASSERT_FALSE(c.findings.empty());
  EXPECT_EQ(c.findings[0].reproduce,
            "deltann run --model /m/model.onnx --images '/data/my images/list.txt' --spec "
            "/specs/m.spec.json --warmup 1 --repeat 7 --cache /c --atol 0.25 --env "
            "ort:opt=basic,threads=1 --env ort:opt=all,threads=1 --db \"$(mktemp -d)/repro.db\"");
}

// A database written before run_options was recorded still gives its spec file.
TEST(Findings, ReproduceOfAnOlderDatabaseCarriesItsSpec) {
  test::TempDir dir;
  Store store(dir / "o.db");
  store.set_meta("images", "/data");
  store.set_meta("spec", "/specs/m.spec.json");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t v = store.ensure_variant(model, "ort", "ort");
  store.record_failure({v, std::nullopt, FailureStage::load, FailureSymptom::crash, "boom"});
  store.flush();
  const Comparison c = compare_variants(store);
  ASSERT_EQ(c.findings.size(), 1u);
  EXPECT_TRUE(Contains(c.findings[0].reproduce, " --spec /specs/m.spec.json --env ort "));
}

}  // namespace
}  // namespace deltann
