// Golden tests of `deltann export` (export.h) and `deltann check` (check.h).
//
// The export tests write a hand-built Comparison (every number chosen by hand, so the expected
// text does not depend on how compare_variants computes it) together with the results of a
// hand-built database, and compare the output with the exact JSON and CSV below.
#include "deltann/export.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/check.h"
#include "deltann/compare.h"
#include "deltann/store.h"
#include "deltann/version.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kMs = 1'000'000;  // nanoseconds

const std::string kOrt = "ort:opt=all,device=cpu,threads=1";
const std::string kOpenCV = "opencv:opt=on,device=cpu,threads=1";
// A file name with a comma, a quote and a newline: everything CSV must quote.
const std::string kOddKey = "a,\"b\"\nc.jpg";

StoredImage image(const std::string& key, std::optional<int> label) {
  StoredImage i;
  i.key = key;
  i.path = "/data/" + key;
  i.sha256 = "sha";
  i.label = label;
  return i;
}

StoredResult result(int64_t variant, int64_t image, std::vector<int> ids, std::vector<float> scores,
                    std::vector<int64_t> samples_ns) {
  StoredResult r;
  r.variant_id = variant;
  r.image_id = image;
  r.top_ids = std::move(ids);
  r.top_scores = std::move(scores);
  r.samples_ns = std::move(samples_ns);
  return r;
}

// Images: the odd key (label 7), plain.jpg (label 3), unlabelled.jpg, and broken.jpg (unusable,
// no results). ort has a result for the first three, opencv for the first two.
void fill_store(Store& store) {
  store.set_meta("created_at", "1700000000");
  const int64_t model = store.ensure_model({0, "/models/m.onnx", "abc123", "{}"});
  const int64_t odd = store.ensure_image(image(kOddKey, 7));
  const int64_t plain = store.ensure_image(image("plain.jpg", 3));
  const int64_t unlabelled = store.ensure_image(image("unlabelled.jpg", std::nullopt));
  StoredImage broken = image("broken.jpg", 1);
  broken.status = ImageStatus::error;
  broken.message = "not an image";
  store.ensure_image(broken);
  const int64_t ort = store.ensure_variant(model, kOrt, "ort");
  const int64_t cv = store.ensure_variant(model, kOpenCV, "opencv");
  store.add_result(
      result(ort, odd, {7, 1, 2, 3, 4}, {0.5f, 0.25f, 0.125f, 0.1f, 1e-8f}, {1 * kMs, 3 * kMs}));
  store.add_result(result(ort, plain, {1, 3}, {0.75f, 0.25f}, {1'234'567}));
  store.add_result(result(ort, unlabelled, {0, 1, 2, 3, 4}, {kNaN, kInf, -kInf, 0.0f, -0.5f}, {}));
  store.add_result(result(cv, odd, {1, 7, 2, 3, 4}, {0.375f, 0.375f, 0.125f, 0.0625f, 0.0625f},
                          {2 * kMs, 2 * kMs, 2 * kMs, 2 * kMs, 2 * kMs}));
  store.add_result(result(cv, plain, {3, 1, 0, 2, 4}, {1, 0, 0, 0, 0}, {5 * kMs}));
  store.set_variant_status(ort, VariantStatus::done);
  store.set_variant_status(cv, VariantStatus::failed);
  store.flush();
}

Comparison hand_comparison() {
  Comparison c;
  c.labelled_images = 2;
  c.meta = {{"schema_version", "2"},
            {"created_at", "1700000000"},
            {"deltann_version", "0.1.0"},
            {"host", "test-host, 2 cores"},
            {"dataset", "/data/images.txt (list)"},
            {"preprocessing", "resize 256, crop 224"},
            {"timing", "warmup=1, repeat=5"}};

  VariantSummary a;
  a.env = kOrt;
  a.framework = "ort";
  a.knobs = {{"opt", "all"}, {"device", "cpu"}, {"threads", "1"}};
  a.status = VariantStatus::done;
  a.engine_version = "1.17.3";
  a.images = 3;
  a.labelled_images = 2;
  a.top1_accuracy = 0.5;
  a.top1_accuracy_ci = stats::Interval{0.125, 0.875};  // written as they are, not computed here
  a.top5_accuracy = 1.0;
  a.top5_accuracy_ci = stats::Interval{0.25, 1};
  a.load_ms = 2.5;
  a.first_ms = 0.75;
  a.median_ms = 2;
  a.p90_ms = 2.8;
  a.p99_ms = 2.98;
  a.cv = 0.5;
  a.median_ci_ms = stats::Interval{1, 3};
  a.samples = 3;
  a.timed_images = 2;
  a.nonfinite_images = 1;

  VariantSummary b;
  b.env = kOpenCV;
  b.framework = "opencv";
  b.knobs = {{"opt", "on"}, {"device", "cpu"}, {"threads", "1"}};
  b.status = VariantStatus::failed;
  b.images = 2;
  b.failures = 1;
  b.top1_accuracy = 0.5;
  b.top5_accuracy = 1.0;
  b.median_ms = 2;
  b.p90_ms = 5;
  b.p99_ms = 5;
  b.samples = 6;
  b.timed_images = 2;
  b.nondeterministic_images = 1;
  b.max_repeat_diff = 0.001;
  c.variants = {a, b};

  PairSummary p;
  p.a = kOrt;
  p.b = kOpenCV;
  p.axis = "framework";
  p.images = 2;
  p.top1_differences = 1;
  p.differing_images = {kOddKey};
  p.near_tie_flips = 1;
  p.top1_difference_ci = stats::Interval{0.0625, 0.9375};
  p.top5_differences = 1;
  p.top5_difference_ci = stats::Interval{0.0625, 0.9375};
  p.top5_overlap = 0.9;
  p.top5_jaccard = 0.75;
  p.rank_correlation = 0.5;
  p.max_abs_diff = std::numeric_limits<double>::infinity();
  p.relative_l2 = 0.125;
  p.cosine = 0.96875;
  p.min_atol = 0.25;
  p.min_rtol = 2;
  p.failing_elements = 3;
  p.speed_ratio = 1.25;
  p.speed_ratio_ci = stats::Interval{1.125, 1.5};
  p.p_value = 0.03125;
  p.p_adjusted = 0.0625;
  p.significant = false;
  c.pairs = {p};

  Finding failure;
  failure.kind = FindingKind::failure;
  failure.severity = 2;
  failure.title = kOpenCV + " failed";
  failure.evidence = "load error: \"conv2\" unsupported";
  failure.variants = {kOpenCV};
  failure.reproduce = "deltann run --env '" + kOpenCV + "'";
  Finding flip;
  flip.kind = FindingKind::label_difference;
  flip.severity = 0.5;
  flip.title = "top-1 differs on 1 of 2 images";
  flip.evidence = "near-tie: gap 0\nsecond line";
  flip.variants = {kOrt, kOpenCV};
  flip.images = {kOddKey};
  flip.reproduce = "deltann compare --db results.db";
  c.findings = {failure, flip};
  c.unusable_images = {{"broken.jpg", "/data/broken.jpg", "not an image"}};
  return c;
}

class ExportFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.emplace(dir_ / "results.db");
    fill_store(*store_);
    comparison_ = hand_comparison();
  }

  std::string csv(ExportTable table) {
    std::ostringstream out;
    export_csv(*store_, comparison_, table, out);
    return out.str();
  }

  test::TempDir dir_;
  std::optional<Store> store_;
  Comparison comparison_;
};

TEST_F(ExportFixture, JsonDocument) {
  std::ostringstream out;
  export_json(*store_, comparison_, out);
  const std::string text = out.str();
  nlohmann::json actual;
  ASSERT_NO_THROW(actual = nlohmann::json::parse(text)) << text;

  nlohmann::json expected = nlohmann::json::parse(R"json({
  "schema": "deltann.export",
  "schema_version": 1,
  "context": {
    "exported_by": "set below",
    "meta": {"schema_version": "2", "created_at": "1700000000", "deltann_version": "0.1.0",
             "host": "test-host, 2 cores", "dataset": "/data/images.txt (list)",
             "preprocessing": "resize 256, crop 224", "timing": "warmup=1, repeat=5"},
    "models": [{"model": 1, "path": "/models/m.onnx", "sha256": "abc123", "spec_source": "", "flops": null}],
    "warnings": [],
    "images": 4, "usable_images": 3, "labelled_images": 2,
    "analysis": {"near_tie_gap": 0.1, "atol": 0.0001, "rtol": 0.001, "confidence": 0.95,
                 "alpha": 0.05, "max_cv": 0.1, "min_slowdown": 0.02}
  },
  "variants": [
    {"env": "ort:opt=all,device=cpu,threads=1", "model": 1, "framework": "ort",
     "knobs": {"opt": "all", "device": "cpu", "threads": "1"}, "status": "done",
     "engine_version": "1.17.3", "images": 3, "failures": 0, "labelled_images": 2,
     "top1_accuracy": 0.5, "top1_accuracy_ci_low": 0.125, "top1_accuracy_ci_high": 0.875,
     "top5_accuracy": 1, "top5_accuracy_ci_low": 0.25, "top5_accuracy_ci_high": 1, "compile_ms": null, "load_ms": 2.5, "first_inference_ms": 0.75,
     "median_ms": 2, "p90_ms": 2.8, "p99_ms": 2.98, "cv": 0.5, "median_ci_low_ms": 1,
     "median_ci_high_ms": 3, "median_bootstrap_ci_low_ms": null,
     "median_bootstrap_ci_high_ms": null, "samples": 3, "timed_images": 2, "nonfinite_images": 1, "nondeterministic_images": 0, "max_repeat_diff": 0,
     "flops": null, "gflops": null, "peak_gflops": null, "peak_share": null,
     "device_identity": "machine not recorded, isa native, device cpu", "isa": "native",
     "accelerator": "", "host": null, "cpu_model": null, "cpu_isa_flags": null,
     "cpu_cores": null, "cpu_mhz_measured": null, "cpu_mhz_reported": null, "gpus": null,
     "other_machines": [], "engine_hardware": {}},
    {"env": "opencv:opt=on,device=cpu,threads=1", "model": 1, "framework": "opencv",
     "knobs": {"opt": "on", "device": "cpu", "threads": "1"}, "status": "failed",
     "engine_version": "", "images": 2, "failures": 1, "labelled_images": 0,
     "top1_accuracy": 0.5, "top1_accuracy_ci_low": null, "top1_accuracy_ci_high": null,
     "top5_accuracy": 1, "top5_accuracy_ci_low": null, "top5_accuracy_ci_high": null, "compile_ms": null, "load_ms": null, "first_inference_ms": null,
     "median_ms": 2, "p90_ms": 5, "p99_ms": 5, "cv": null, "median_ci_low_ms": null,
     "median_ci_high_ms": null, "median_bootstrap_ci_low_ms": null,
     "median_bootstrap_ci_high_ms": null, "samples": 6, "timed_images": 2, "nonfinite_images": 0, "nondeterministic_images": 1, "max_repeat_diff": 0.001,
     "flops": null, "gflops": null, "peak_gflops": null, "peak_share": null,
     "device_identity": "machine not recorded, isa native, device cpu", "isa": "native",
     "accelerator": "", "host": null, "cpu_model": null, "cpu_isa_flags": null,
     "cpu_cores": null, "cpu_mhz_measured": null, "cpu_mhz_reported": null, "gpus": null,
     "other_machines": [], "engine_hardware": {}}
  ],
  "pairs": [
    {"a": "ort:opt=all,device=cpu,threads=1", "b": "opencv:opt=on,device=cpu,threads=1",
     "axis": "framework", "images": 2, "top1_differences": 1, "top1_difference_rate": 0.5,
     "top1_difference_rate_ci_low": 0.0625, "top1_difference_rate_ci_high": 0.9375,
     "near_tie_flips": 1, "confident_flips": 0, "top5_differences": 1,
     "top5_difference_rate": 0.5, "top5_difference_rate_ci_low": 0.0625,
     "top5_difference_rate_ci_high": 0.9375, "top5_overlap": 0.9, "top5_jaccard": 0.75,
     "rank_correlation": 0.5, "max_abs_diff": "Infinity", "mean_abs_diff": null,
     "relative_l2": 0.125, "cosine": 0.96875, "min_atol": 0.25, "min_rtol": 2,
     "failing_elements": 3, "speed_ratio": 1.25, "speed_ratio_ci_low": 1.125,
     "speed_ratio_ci_high": 1.5, "p_value": 0.03125, "p_adjusted": 0.0625, "significant": false,
     "differing_images": ["a,\"b\"\nc.jpg"],
     "device_differences": []}
  ],
  "shifts": [],
  "findings": [
    {"rank": 1, "kind": "failure", "severity": 2,
     "title": "opencv:opt=on,device=cpu,threads=1 failed",
     "evidence": "load error: \"conv2\" unsupported",
     "variants": ["opencv:opt=on,device=cpu,threads=1"], "images": [],
     "reproduce": "deltann run --env 'opencv:opt=on,device=cpu,threads=1'"},
    {"rank": 2, "kind": "label_difference", "severity": 0.5,
     "title": "top-1 differs on 1 of 2 images", "evidence": "near-tie: gap 0\nsecond line",
     "variants": ["ort:opt=all,device=cpu,threads=1", "opencv:opt=on,device=cpu,threads=1"],
     "images": ["a,\"b\"\nc.jpg"], "reproduce": "deltann compare --db results.db"}
  ],
  "unusable_images": [
    {"key": "broken.jpg", "path": "/data/broken.jpg", "reason": "not an image"}
  ],
  "study_labels": [],
  "study_timing": [],
  "results": [
    {"variant": "ort:opt=all,device=cpu,threads=1", "image": "a,\"b\"\nc.jpg", "label": 7,
     "top_ids": [7, 1, 2, 3, 4], "top_scores": [0.5, 0.25, 0.125, 0.1, 1e-08],
     "median_ms": 2, "samples": 2, "correct_top1": true, "correct_top5": true},
    {"variant": "ort:opt=all,device=cpu,threads=1", "image": "plain.jpg", "label": 3,
     "top_ids": [1, 3], "top_scores": [0.75, 0.25],
     "median_ms": 1.234567, "samples": 1, "correct_top1": false, "correct_top5": true},
    {"variant": "ort:opt=all,device=cpu,threads=1", "image": "unlabelled.jpg", "label": null,
     "top_ids": [0, 1, 2, 3, 4], "top_scores": ["NaN", "Infinity", "-Infinity", 0, -0.5],
     "median_ms": null, "samples": 0, "correct_top1": null, "correct_top5": null},
    {"variant": "opencv:opt=on,device=cpu,threads=1", "image": "a,\"b\"\nc.jpg", "label": 7,
     "top_ids": [1, 7, 2, 3, 4], "top_scores": [0.375, 0.375, 0.125, 0.0625, 0.0625],
     "median_ms": 2, "samples": 5, "correct_top1": false, "correct_top5": true},
    {"variant": "opencv:opt=on,device=cpu,threads=1", "image": "plain.jpg", "label": 3,
     "top_ids": [3, 1, 0, 2, 4], "top_scores": [1, 0, 0, 0, 0],
     "median_ms": 5, "samples": 1, "correct_top1": true, "correct_top5": true}
  ]
})json");
  expected["context"]["exported_by"] = std::string("deltann ") + kVersion;
  EXPECT_EQ(actual, expected) << "actual:\n" << actual.dump(2);

  // The context comes first, the results last; each record on a line of its own.
  EXPECT_LT(text.find("\"context\""), text.find("\"variants\""));
  EXPECT_LT(text.find("\"findings\""), text.find("\"unusable_images\""));
  EXPECT_LT(text.find("\"unusable_images\""), text.find("\"results\""));
  EXPECT_TRUE(Contains(text,
                       "\n{\"variant\":\"opencv:opt=on,device=cpu,threads=1\","
                       "\"image\":\"plain.jpg\",\"label\":3,\"top_ids\":[3,1,0,2,4],"
                       "\"top_scores\":[1,0,0,0,0],\"median_ms\":5,\"samples\":1,"
                       "\"correct_top1\":true,\"correct_top5\":true}\n]\n}\n"));
  // Float scores are written with as few digits as read back to the same float.
  EXPECT_TRUE(Contains(text, "[0.5,0.25,0.125,0.1,1e-08]"));
}

TEST_F(ExportFixture, ResultsCsv) {
  EXPECT_EQ(
      csv(ExportTable::results),
      R"csv(variant,image,label,top1,top2,top3,top4,top5,score1,score2,score3,score4,score5,median_ms,samples,correct_top1,correct_top5
"ort:opt=all,device=cpu,threads=1","a,""b""
c.jpg",7,7,1,2,3,4,0.5,0.25,0.125,0.1,1e-08,2,2,1,1
"ort:opt=all,device=cpu,threads=1",plain.jpg,3,1,3,,,,0.75,0.25,,,,1.234567,1,0,1
"ort:opt=all,device=cpu,threads=1",unlabelled.jpg,,0,1,2,3,4,NaN,Infinity,-Infinity,0,-0.5,,0,,
"opencv:opt=on,device=cpu,threads=1","a,""b""
c.jpg",7,1,7,2,3,4,0.375,0.375,0.125,0.0625,0.0625,2,5,0,1
"opencv:opt=on,device=cpu,threads=1",plain.jpg,3,3,1,0,2,4,1,0,0,0,0,5,1,1,1
)csv");
}

TEST_F(ExportFixture, VariantsCsv) {
  EXPECT_EQ(
      csv(ExportTable::variants),
      R"csv(env,model,framework,knobs,status,engine_version,images,failures,labelled_images,top1_accuracy,top1_accuracy_ci_low,top1_accuracy_ci_high,top5_accuracy,top5_accuracy_ci_low,top5_accuracy_ci_high,compile_ms,load_ms,first_inference_ms,median_ms,p90_ms,p99_ms,cv,median_ci_low_ms,median_ci_high_ms,median_bootstrap_ci_low_ms,median_bootstrap_ci_high_ms,samples,timed_images,nonfinite_images,nondeterministic_images,max_repeat_diff,flops,gflops,peak_gflops,peak_share,device_identity,isa,accelerator,host,cpu_model,cpu_isa_flags,cpu_cores,cpu_mhz_measured,cpu_mhz_reported,gpus,other_machines,engine_hardware
"ort:opt=all,device=cpu,threads=1",1,ort,"opt=all,device=cpu,threads=1",done,1.17.3,3,0,2,0.5,0.125,0.875,1,0.25,1,,2.5,0.75,2,2.8,2.98,0.5,1,3,,,3,2,1,0,0,,,,,"machine not recorded, isa native, device cpu",native,,,,,,,,,[],{}
"opencv:opt=on,device=cpu,threads=1",1,opencv,"opt=on,device=cpu,threads=1",failed,,2,1,0,0.5,,,1,,,,,,2,5,5,,,,,,6,2,0,1,0.001,,,,,"machine not recorded, isa native, device cpu",native,,,,,,,,,[],{}
)csv");
}

TEST_F(ExportFixture, PairsCsv) {
  EXPECT_EQ(
      csv(ExportTable::pairs),
      R"csv(a,b,axis,images,top1_differences,top1_difference_rate,top1_difference_rate_ci_low,top1_difference_rate_ci_high,near_tie_flips,confident_flips,top5_differences,top5_difference_rate,top5_difference_rate_ci_low,top5_difference_rate_ci_high,top5_overlap,top5_jaccard,rank_correlation,max_abs_diff,mean_abs_diff,relative_l2,cosine,min_atol,min_rtol,failing_elements,speed_ratio,speed_ratio_ci_low,speed_ratio_ci_high,p_value,p_adjusted,significant,differing_images,device_differences
"ort:opt=all,device=cpu,threads=1","opencv:opt=on,device=cpu,threads=1",framework,2,1,0.5,0.0625,0.9375,1,0,1,0.5,0.0625,0.9375,0.9,0.75,0.5,Infinity,,0.125,0.96875,0.25,2,3,1.25,1.125,1.5,0.03125,0.0625,0,"[""a,\""b\""\nc.jpg""]",[]
)csv");
}

// The shifts table: every rate with its interval's ends as columns of their own.
TEST_F(ExportFixture, ShiftsCsv) {
  comparison_.shifts = {{"ort", "opencv", "severity", "3", 4, 1, stats::Interval{0.0063, 0.806}}};
  EXPECT_EQ(csv(ExportTable::shifts),
            "a,b,by,shift,images,top1_differences,top1_difference_rate,top1_difference_rate_ci_"
            "low,top1_difference_rate_ci_high\nort,opencv,severity,3,4,1,0.25,0.0063,0.806\n");
}

TEST_F(ExportFixture, FindingsCsv) {
  EXPECT_EQ(csv(ExportTable::findings),
            R"csv(rank,kind,severity,title,evidence,variants,images,reproduce
1,failure,2,"opencv:opt=on,device=cpu,threads=1 failed","load error: ""conv2"" unsupported","[""opencv:opt=on,device=cpu,threads=1""]",[],"deltann run --env 'opencv:opt=on,device=cpu,threads=1'"
2,label_difference,0.5,top-1 differs on 1 of 2 images,"near-tie: gap 0
second line","[""ort:opt=all,device=cpu,threads=1"",""opencv:opt=on,device=cpu,threads=1""]","[""a,\""b\""\nc.jpg""]",deltann compare --db results.db
)csv");
}

TEST_F(ExportFixture, EmptyTablesHaveAHeaderOnly) {
  comparison_.findings.clear();
  EXPECT_EQ(csv(ExportTable::findings),
            "rank,kind,severity,title,evidence,variants,images,reproduce\n");
  test::TempDir empty_dir;
  Store empty(empty_dir / "empty.db");
  std::ostringstream out;
  export_json(empty, Comparison{}, out);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j.at("results"), nlohmann::json::array());
  EXPECT_EQ(j.at("variants"), nlohmann::json::array());
  EXPECT_EQ(j.at("context").at("images"), 0);
}

// The whole path: the database analysed by compare_variants, then exported. Only what does not
// depend on the analysis' own arithmetic is checked exactly.
TEST_F(ExportFixture, ExportsAnAnalysedDatabase) {
  const Comparison analysed = compare_variants(*store_);
  std::ostringstream out;
  export_json(*store_, analysed, out);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  ASSERT_EQ(j.at("variants").size(), 2u);
  EXPECT_EQ(j["variants"][0]["env"], kOrt);
  EXPECT_EQ(j["variants"][1]["status"], "failed");
  ASSERT_EQ(j.at("pairs").size(), 1u);
  EXPECT_EQ(j["pairs"][0]["top1_differences"], 2);  // the odd key (7 vs 1) and plain (1 vs 3)
  EXPECT_EQ(j.at("results").size(), 5u);
  EXPECT_EQ(j["context"]["meta"]["created_at"], "1700000000");
  EXPECT_EQ(
      j.at("unusable_images"),
      nlohmann::json::parse(
          R"([{"key": "broken.jpg", "path": "/data/broken.jpg", "reason": "not an image"}])"));
  for (ExportTable t : {ExportTable::variants, ExportTable::pairs, ExportTable::findings,
                        ExportTable::unusable_images}) {
    std::ostringstream table;
    export_csv(*store_, analysed, t, table);
    EXPECT_FALSE(table.str().empty()) << export_table_name(t);
  }
}

TEST(ExportFormat, CsvQuoting) {
  using export_format::csv_field;
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field("cr\r"), "\"cr\r\"");
}

TEST_F(ExportFixture, UnusableImagesCsv) {
  EXPECT_EQ(csv(ExportTable::unusable_images),
            "key,path,reason\nbroken.jpg,/data/broken.jpg,not an image\n");
}

// Text from files that a spreadsheet would run as a formula gets a leading quote (OWASP); numbers
// stay numbers, negative ones included.
TEST_F(ExportFixture, CsvTextCellsCannotBeFormulas) {
  comparison_.unusable_images = {
      {"=HYPERLINK(\"http://x\",\"y\").jpg", "/data/@SUM(A1).jpg", "-2+3 is not an image"}};
  EXPECT_EQ(csv(ExportTable::unusable_images),
            "key,path,reason\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\").jpg\","
            "/data/@SUM(A1).jpg,'-2+3 is not an image\n");
  comparison_.findings.resize(1);
  comparison_.findings[0].title = "+cmd|' /C calc'!A0";
  comparison_.findings[0].evidence = "\tindented";
  EXPECT_TRUE(
      Contains(csv(ExportTable::findings), "\n1,failure,2,'+cmd|' /C calc'!A0,'\tindented,"));
  comparison_.pairs[0].rank_correlation = -0.5;
  EXPECT_TRUE(Contains(csv(ExportTable::pairs), ",0.9,0.75,-0.5,Infinity,"));
  // The results table: an image key like a formula is quoted, a negative score is a number.
  test::TempDir dir;
  Store store(dir / "f.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t img = store.ensure_image(image("-1+2.jpg", std::nullopt));
  const int64_t v = store.ensure_variant(model, "ort", "ort");
  store.add_result(result(v, img, {3}, {-0.5f}, {}));
  store.flush();
  std::ostringstream out;
  export_csv(store, Comparison{}, ExportTable::results, out);
  EXPECT_TRUE(Contains(out.str(), "\nort,'-1+2.jpg,,3,,,,,-0.5,,,,,,0,,\n")) << out.str();
}

TEST(ExportFormat, CsvTextField) {
  using export_format::csv_text_field;
  EXPECT_EQ(csv_text_field("plain.jpg"), "plain.jpg");
  EXPECT_EQ(csv_text_field(""), "");
  for (const char* lead : {"=", "+", "-", "@", "\t", "\r"}) {
    const std::string cell = std::string(lead) + "1+1";
    const std::string safe = csv_text_field(cell);
    EXPECT_TRUE(safe == "'" + cell || safe == "\"'" + cell + "\"") << safe;
  }
  EXPECT_EQ(csv_text_field("=a,b"), "\"'=a,b\"");
  EXPECT_EQ(csv_text_field("a=1"), "a=1");  // only the first character matters
}

TEST(ExportFormat, NumbersRoundTrip) {
  using export_format::number;
  EXPECT_EQ(number(0.1f), "0.1");
  EXPECT_EQ(number(0.1), "0.1");
  EXPECT_EQ(number(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(number(std::nan("")), "NaN");
  EXPECT_EQ(number(-kInf), "-Infinity");
  for (float f : {1.0f / 3, 16777217.0f, 1e-30f, 3.4028235e38f, -2.5e-7f})
    EXPECT_EQ(std::stof(number(f)), f) << number(f);
  for (double d : {1.0 / 3, 2.0 / 3, 1e-300, 6.02214076e23, 0.1 + 0.2})
    EXPECT_EQ(std::stod(number(d)), d) << number(d);
}

TEST(ExportTables, Names) {
  for (ExportTable t : {ExportTable::variants, ExportTable::pairs, ExportTable::shifts,
                        ExportTable::findings, ExportTable::results, ExportTable::unusable_images})
    EXPECT_EQ(parse_export_table(export_table_name(t)), t);
  EXPECT_FALSE(parse_export_table("images").has_value());
}

// Store::results reads the top_ids column with a small hand parser; lists of any other shape go
// to the JSON library. Rows are written by hand here to reach every branch.
TEST(StoreTopIds, ReadsEveryJsonListShape) {
  test::TempDir dir;
  Store store(dir / "r.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t variant = store.ensure_variant(model, "ort", "ort");
  const std::vector<std::pair<std::string, std::vector<int>>> cases = {
      {"[]", {}},
      {"[7]", {7}},
      {"[1,2,3,4,5]", {1, 2, 3, 4, 5}},
      {" [ 3 , -1,\n2 ] ", {3, -1, 2}},
      {"[2147483647,-2147483648]", {2147483647, -2147483647 - 1}},
      {"[1.0, 2e0]", {1, 2}},  // not integers as written: the JSON library reads them
  };
  {
    SQLite::Database db((dir / "r.db").string(), SQLite::OPEN_READWRITE);
    for (size_t i = 0; i < cases.size() + 1; ++i) {
      const int64_t img = store.ensure_image(image("i" + std::to_string(i) + ".jpg", 1));
      SQLite::Statement q(db,
                          "INSERT INTO results(variant_id, image_id, top_ids, top_scores, "
                          "samples_ns) VALUES(?, ?, ?, x'', x'')");
      q.bind(1, variant);
      q.bind(2, img);
      q.bind(3, i < cases.size() ? cases[i].first : std::string("[1,,2]"));
      q.exec();
    }
  }
  EXPECT_ANY_THROW(store.results(variant, false));  // the last row is not JSON
  {
    SQLite::Database db((dir / "r.db").string(), SQLite::OPEN_READWRITE);
    db.exec("DELETE FROM results WHERE top_ids = '[1,,2]'");
  }
  const auto results = store.results(variant, false);
  ASSERT_EQ(results.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(results[i].top_ids, cases[i].second) << cases[i].first;
}

// ---- check ----

const std::string kBase = "ort:opt=all,device=cpu,threads=1";
const std::string kBasic = "ort:opt=basic,device=cpu,threads=1";
const std::string kSlow = "opencv:opt=on,device=cpu,threads=1";
const std::string kBroken = "opencv:opt=off,device=cpu,threads=1";
const std::string kSkipped = "ort:opt=extended,device=cuda,threads=1";

VariantSummary variant(const std::string& env, VariantStatus status, int images = 200) {
  VariantSummary v;
  v.env = env;
  v.status = status;
  v.images = images;
  return v;
}

PairSummary pair(const std::string& a, const std::string& b, int differences, double ratio,
                 stats::Interval ci, bool significant) {
  PairSummary p;
  p.a = a;
  p.b = b;
  p.images = 200;
  p.top1_differences = differences;
  p.top1_difference_ci = stats::rate_interval(differences, p.images, 0.95);
  p.speed_ratio = ratio;
  p.speed_ratio_ci = ci;
  p.p_value = significant ? 0.001 : 0.5;
  p.p_adjusted = significant ? 0.004 : 1;
  p.significant = significant;
  return p;
}

// kSlow is listed before the baseline, so its pair holds median(baseline) / median(slow) = 0.8:
// oriented baseline → variant that is x1.25, interval [1/0.85, 1/0.75] = [1.176, 1.333].
Comparison check_comparison_fixture() {
  Comparison c;
  c.variants = {variant(kSlow, VariantStatus::done), variant(kBase, VariantStatus::done),
                variant(kBasic, VariantStatus::done), variant(kBroken, VariantStatus::failed, 0),
                variant(kSkipped, VariantStatus::skipped, 0)};
  c.pairs = {pair(kSlow, kBase, 0, 0.8, {0.75, 0.85}, true),
             pair(kBase, kBasic, 1, 1.05, {1.01, 1.09}, true)};
  return c;
}

CheckOptions check_options(double max_label_diff, std::optional<double> max_slowdown) {
  CheckOptions o;
  o.baseline = "ort:opt=all";
  o.max_label_diff = max_label_diff;
  o.max_slowdown = max_slowdown;
  return o;
}

TEST(Check, FindsTheBaseline) {
  const auto c = check_comparison_fixture();
  EXPECT_EQ(find_baseline(c.variants, kBase).env, kBase);
  EXPECT_EQ(find_baseline(c.variants, "ort:opt=all").env, kBase);
  EXPECT_EQ(find_baseline(c.variants, "ort:threads=1,opt=basic").env, kBasic);
  EXPECT_EQ(find_baseline(c.variants, "opencv:opt=off").env, kBroken);
  EXPECT_EQ(find_baseline(c.variants, "ort:device=cuda").env, kSkipped);
}

TEST(Check, BaselineNotFoundListsTheVariants) {
  const auto c = check_comparison_fixture();
  const std::string message =
      test::message_of<BaselineError>([&] { find_baseline(c.variants, "tvm:opt=3"); });
  EXPECT_TRUE(Contains(message, "baseline 'tvm:opt=3' matches no variant"));
  for (const auto& v : c.variants)
    EXPECT_TRUE(Contains(message, "\n  " + v.env + " (" + std::string(to_string(v.status))));
  // A knob value no variant has.
  EXPECT_TRUE(Contains(
      test::message_of<BaselineError>([&] { find_baseline(c.variants, "ort:opt=all,threads=2"); }),
      "matches no variant"));
  // Text the grammar refuses.
  EXPECT_TRUE(Contains(test::message_of<BaselineError>([&] { find_baseline(c.variants, "ORT!"); }),
                       "ORT!"));
}

TEST(Check, AmbiguousBaselineListsTheCandidates) {
  const auto c = check_comparison_fixture();
  const std::string message =
      test::message_of<BaselineError>([&] { find_baseline(c.variants, "ort:device=cpu"); });
  EXPECT_TRUE(Contains(message, "is ambiguous: it matches 2 variants"));
  EXPECT_TRUE(Contains(message, "\n  " + kBase + " (done)"));
  EXPECT_TRUE(Contains(message, "\n  " + kBasic + " (done)"));
  EXPECT_FALSE(Contains(message, kSlow));
}

TEST(Check, ParsesFractions) {
  EXPECT_DOUBLE_EQ(parse_fraction("0.5%"), 0.005);
  EXPECT_DOUBLE_EQ(parse_fraction("0.005"), 0.005);
  EXPECT_DOUBLE_EQ(parse_fraction("50%"), 0.5);
  EXPECT_DOUBLE_EQ(parse_fraction("100%"), 1.0);
  EXPECT_DOUBLE_EQ(parse_fraction("1"), 1.0);
  EXPECT_DOUBLE_EQ(parse_fraction("0"), 0.0);
  EXPECT_TRUE(Contains(test::message_of<Error>([] { parse_fraction("10"); }), "write 10%"));
  for (const char* bad : {"", "%", "-1%", "abc", "0.5 %", "nan", "inf%", "5%%"})
    EXPECT_THROW(parse_fraction(bad), Error) << bad;
}

TEST(Check, PassesWithinTheLimits) {
  // Label differences: kSlow 0/200, kBasic 1/200 = 0.5%, exactly at the limit.
  const CheckVerdict v = check_comparison(check_comparison_fixture(), check_options(0.005, {}),
                                          {{kBroken, "load error: no such layer"}});
  EXPECT_EQ(v.baseline, kBase);
  ASSERT_EQ(v.variants.size(), 4u);
  EXPECT_EQ(v.variants[0].env, kSlow);
  EXPECT_EQ(v.variants[0].outcome, CheckOutcome::pass);
  EXPECT_EQ(v.variants[1].env, kBasic);
  EXPECT_EQ(v.variants[1].outcome, CheckOutcome::pass);
  EXPECT_DOUBLE_EQ(*v.variants[1].label_diff_rate, 0.005);
  // A failed variant fails the check, whatever the limits; a skipped one does not.
  EXPECT_EQ(v.variants[2].outcome, CheckOutcome::fail);
  EXPECT_TRUE(Contains(v.variants[2].reasons.at(0),
                       "the variant failed (abandoned): load error: no such layer"));
  EXPECT_EQ(v.variants[3].outcome, CheckOutcome::skip);
  EXPECT_FALSE(v.passed());
  EXPECT_EQ(v.exit_code(), 1);
  EXPECT_EQ(v.failed_count(), 1);

  // Without the failed variant, everything passes: exit code 0.
  Comparison c = check_comparison_fixture();
  c.variants.erase(c.variants.begin() + 3);
  const CheckVerdict ok = check_comparison(c, check_options(0.005, 0.5));
  EXPECT_TRUE(ok.passed());
  EXPECT_EQ(ok.exit_code(), 0);
  std::ostringstream text;
  print_verdict(ok, text);
  EXPECT_EQ(text.str(),
            "baseline ort:opt=all,device=cpu,threads=1 (done, 200 images); limits: top-1 label "
            "differences <= 0.5%, significant slow-down <= +50%\n"
            "PASS opencv:opt=on,device=cpu,threads=1: 0/200 top-1 labels differ (0% [0%, 1.83%], "
            "limit 0.5%); time x1.250 [1.176, 1.333] p=0.001 (adjusted 0.004) significant, limit "
            "+50%\n"
            "PASS ort:opt=basic,device=cpu,threads=1: 1/200 top-1 labels differ (0.5% [0.01%, "
            "2.75%], limit 0.5%); time x1.050 [1.010, 1.090] p=0.001 (adjusted 0.004) significant, "
            "limit +50%\n"
            "SKIP ort:opt=extended,device=cuda,threads=1: not run: skipped when the campaign was "
            "planned\n"
            "check passed: 2 passed, 0 failed, 1 skipped\n");
}

TEST(Check, FailsAboveTheLimits) {
  Comparison c = check_comparison_fixture();
  c.variants.erase(c.variants.begin() + 3);
  // 0.4%: kBasic's 5 of 200 (2.5%) is above it with its whole interval, [0.82%, 5.74%] (SciPy
  // 1.10.1, binomtest(5, 200).proportion_ci(method='exact')). 10% slow-down: kSlow is x1.25,
  // interval from x1.176.
  c.pairs[1] = pair(kBase, kBasic, 5, 1.05, {1.01, 1.09}, true);
  const CheckVerdict v = check_comparison(c, check_options(0.004, 0.10));
  ASSERT_EQ(v.variants.size(), 3u);
  const VariantVerdict& slow = v.variants[0];
  EXPECT_EQ(slow.outcome, CheckOutcome::fail);
  EXPECT_DOUBLE_EQ(*slow.speed_ratio, 1.25);
  EXPECT_DOUBLE_EQ(slow.speed_ratio_ci->low, 1 / 0.85);
  EXPECT_DOUBLE_EQ(slow.speed_ratio_ci->high, 1 / 0.75);
  ASSERT_EQ(slow.reasons.size(), 1u);
  EXPECT_TRUE(Contains(slow.reasons[0], "significantly slower than the baseline: x1.250"));
  const VariantVerdict& basic = v.variants[1];
  EXPECT_EQ(basic.outcome, CheckOutcome::fail);
  ASSERT_EQ(basic.reasons.size(), 1u);  // x1.05 is within +10%
  EXPECT_TRUE(Contains(basic.reasons[0],
                       "top-1 labels differ on 2.5% of images, above the "
                       "limit of 0.4% (95% interval [0.82%, 5.74%])"));
  EXPECT_EQ(v.exit_code(), 1);
  EXPECT_EQ(v.failed_count(), 2);

  // A slow-down that is not significant, or whose interval reaches below the limit, passes.
  c.pairs[0].significant = false;
  c.pairs[1].speed_ratio_ci = stats::Interval{1.08, 1.2};  // x1.05 in [1.08, 1.2] vs +10%
  const CheckVerdict lenient = check_comparison(c, check_options(0.01, 0.10));
  EXPECT_TRUE(lenient.passed()) << lenient.variants[0].reasons.size();
}

// One differing image of 200 (0.5%) against a 0.4% limit: the rate is above the limit, but its
// interval [0.0127%, 2.754%] (SciPy 1.10.1, binomtest(1, 200).proportion_ci(method='exact'))
// reaches below it, so the variant passes and the verdict says the images are too few to tell.
TEST(Check, RateAboveTheLimitWithAnIntervalBelowItIsInconclusive) {
  Comparison c = check_comparison_fixture();
  c.variants.erase(c.variants.begin() + 3);
  const CheckVerdict v = check_comparison(c, check_options(0.004, {}));
  const VariantVerdict& basic = v.variants[1];
  EXPECT_EQ(basic.outcome, CheckOutcome::pass);
  EXPECT_TRUE(basic.reasons.empty());
  ASSERT_EQ(basic.notes.size(), 1u);
  EXPECT_EQ(basic.notes[0],
            "inconclusive: top-1 labels differ on 0.5% of images, above the limit of 0.4%, but "
            "the 95% interval [0.01%, 2.75%] reaches below it: 200 images are too few to tell");
  ASSERT_TRUE(basic.label_diff_ci.has_value());
  EXPECT_NEAR(basic.label_diff_ci->low, 0.0001265810280094039, 1e-12);
  EXPECT_NEAR(basic.label_diff_ci->high, 0.027541898457558385, 1e-12);
  EXPECT_TRUE(v.passed());
  // Just below the interval's low end the same pair fails.
  const CheckVerdict strict = check_comparison(c, check_options(0.0001, {}));
  EXPECT_EQ(strict.variants[1].outcome, CheckOutcome::fail);
  EXPECT_TRUE(strict.variants[1].notes.empty());
  // A limit of 0 fails on any difference: the low end is above 0 as soon as one image differs.
  EXPECT_EQ(check_comparison(c, check_options(0, {})).variants[1].outcome, CheckOutcome::fail);
}

TEST(Check, UnusableBaselineFailsTheCheck) {
  Comparison c = check_comparison_fixture();
  c.variants[1].status = VariantStatus::failed;
  CheckOptions o = check_options(1.0, {});
  const CheckVerdict v = check_comparison(c, o, {{kBase, "load crash: signal 11"}});
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_EQ(v.problems[0], "the baseline " + kBase + " is failed, not done: load crash: signal 11");
  EXPECT_EQ(v.exit_code(), 1);
  // A variant with no image in common with the baseline cannot pass.
  c = check_comparison_fixture();
  c.pairs.erase(c.pairs.begin());
  const CheckVerdict lonely = check_comparison(c, o);
  EXPECT_EQ(lonely.variants[0].outcome, CheckOutcome::fail);
  EXPECT_EQ(lonely.variants[0].reasons.at(0), "no image in common with the baseline");
}

TEST(Check, JUnitXmlIsEscaped) {
  Comparison c;
  c.variants = {variant(kBase, VariantStatus::done), variant(kBasic, VariantStatus::done),
                variant(kBroken, VariantStatus::failed), variant(kSkipped, VariantStatus::skipped)};
  c.pairs = {pair(kBase, kBasic, 0, 1.0, {0.9, 1.1}, false)};
  const CheckVerdict v =
      check_comparison(c, check_options(0.005, {}),
                       {{kBroken, "run crash: \"boom\" <signal 11> & 'more'\x01 \xff"},
                        {kSkipped, "plan unsupported: no CUDA"}});
  EXPECT_EQ(junit_xml(v), R"xml(<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="deltann.check" tests="3" failures="1" errors="0" skipped="1">
  <properties>
    <property name="baseline" value="ort:opt=all,device=cpu,threads=1"/>
    <property name="max_label_diff" value="0.005"/>
  </properties>
  <testcase classname="deltann.check" name="ort:opt=basic,device=cpu,threads=1">
    <system-out>0/200 top-1 labels differ (0% [0%, 1.83%], limit 0.5%)</system-out>
  </testcase>
  <testcase classname="deltann.check" name="opencv:opt=off,device=cpu,threads=1">
    <failure message="the variant failed (abandoned): run crash: &quot;boom&quot; &lt;signal 11&gt; &amp; &#39;more&#39;? ?; no image in common with the baseline">no image in common with the baseline</failure>
    <system-out>no image in common with the baseline</system-out>
  </testcase>
  <testcase classname="deltann.check" name="ort:opt=extended,device=cuda,threads=1">
    <skipped message="not run: skipped when the campaign was planned: plan unsupported: no CUDA"/>
  </testcase>
</testsuite>
)xml");
}

// run_check on a real database: two variants that disagree on one image of two.
TEST(Check, RunsOnAStore) {
  test::TempDir dir;
  Store store(dir / "r.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t x = store.ensure_image(image("x.jpg", 1));
  const int64_t y = store.ensure_image(image("y.jpg", 2));
  const int64_t a = store.ensure_variant(model, kBase, "ort");
  const int64_t b = store.ensure_variant(model, kBasic, "ort");
  store.add_result(result(a, x, {1, 0}, {0.9f, 0.1f}, {kMs}));
  store.add_result(result(a, y, {2, 0}, {0.9f, 0.1f}, {kMs}));
  store.add_result(result(b, x, {1, 0}, {0.9f, 0.1f}, {kMs}));
  store.add_result(result(b, y, {0, 2}, {0.6f, 0.4f}, {kMs}));
  store.set_variant_status(a, VariantStatus::done);
  store.set_variant_status(b, VariantStatus::done);
  CheckOptions o = check_options(0.5, {});
  const CheckVerdict pass = run_check(store, o);
  EXPECT_EQ(pass.exit_code(), 0);
  ASSERT_EQ(pass.variants.size(), 1u);
  EXPECT_EQ(pass.variants[0].top1_differences, 1);
  // 1 of 2 differ: the interval is [1.26%, 98.74%] (SciPy 1.10.1, binomtest(1, 2), exact). A 25%
  // limit is inconclusive (passes with a note), a 1% limit is certainly exceeded.
  o.max_label_diff = 0.25;
  const CheckVerdict unsure = run_check(store, o);
  EXPECT_EQ(unsure.exit_code(), 0);
  ASSERT_EQ(unsure.variants[0].notes.size(), 1u);
  EXPECT_TRUE(Contains(unsure.variants[0].notes[0], "inconclusive"));
  o.max_label_diff = 0.01;
  EXPECT_EQ(run_check(store, o).exit_code(), 1);
  o.baseline = "ort";
  EXPECT_THROW(run_check(store, o), BaselineError);
}

}  // namespace
}  // namespace deltann
