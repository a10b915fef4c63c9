// The roofline of a variant (src/analysis/roofline.h), the CPU peak record and its benchmark
// (deltann/cpu_peak.h, src/run/peak_benchmark.h), the stored FLOP count, and the fields that show
// them in every output.
#include "analysis/roofline.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <nlohmann/json.hpp>

#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/cpu_peak.h"
#include "deltann/store.h"
#include "deltann/summary_fields.h"
#include "run/peak_benchmark.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;

CpuPeak peak_of(double per_core, int cores) {
  CpuPeak peak;
  peak.cpu = "Test CPU";
  peak.isa = "avx512";
  peak.gflops_per_core = per_core;
  peak.cores = cores;
  peak.source = "measured";
  return peak;
}

TEST(Roofline, AchievedRateAndShareOfThePeakAtTheThreadCount) {
  const std::map<std::string, std::string> two = {{"device", "cpu"}, {"threads", "2"}};
  // 800 MFLOP in 10 ms = 80 GFLOP/s; the peak at 2 threads is 2 x 100.
  const Roofline r = roofline(800'000'000, 10.0, two, peak_of(100, 4));
  ASSERT_TRUE(r.gflops && r.peak_gflops && r.peak_share);
  EXPECT_DOUBLE_EQ(*r.gflops, 80.0);
  EXPECT_DOUBLE_EQ(*r.peak_gflops, 200.0);
  EXPECT_DOUBLE_EQ(*r.peak_share, 0.4);
  // Without a threads knob, one thread.
  EXPECT_DOUBLE_EQ(*roofline(800'000'000, 10.0, {}, peak_of(100, 4)).peak_share, 0.8);
}

TEST(Roofline, WhatIsMissingLeavesWhatDependsOnItEmpty) {
  const Roofline no_flops = roofline(std::nullopt, 10.0, {}, peak_of(100, 1));
  EXPECT_FALSE(no_flops.gflops);
  EXPECT_TRUE(no_flops.peak_gflops);
  EXPECT_FALSE(no_flops.peak_share);
  const Roofline no_peak = roofline(1000, 1.0, {}, std::nullopt);
  EXPECT_DOUBLE_EQ(*no_peak.gflops, 1e-3);
  EXPECT_FALSE(no_peak.peak_share);
  EXPECT_FALSE(roofline(1000, std::nullopt, {}, peak_of(100, 1)).gflops);
  // A GPU variant has a rate but no share of the CPU's peak.
  const Roofline gpu = roofline(1000, 1.0, {{"device", "cuda"}}, peak_of(100, 1));
  EXPECT_TRUE(gpu.gflops);
  EXPECT_FALSE(gpu.peak_gflops);
  EXPECT_FALSE(gpu.peak_share);
}

TEST(CpuPeak, ThreadsBeyondTheCoresAddNothing) {
  EXPECT_DOUBLE_EQ(peak_gflops(peak_of(100, 2), 1), 100);
  EXPECT_DOUBLE_EQ(peak_gflops(peak_of(100, 2), 2), 200);
  EXPECT_DOUBLE_EQ(peak_gflops(peak_of(100, 2), 8), 200);
  EXPECT_DOUBLE_EQ(peak_gflops(peak_of(100, 2), 0), 100);
}

TEST(CpuPeak, JsonRoundTripAndUnusableRecords) {
  const auto back = parse_cpu_peak(to_json(peak_of(117.5, 2)).dump());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cpu, "Test CPU");
  EXPECT_EQ(back->isa, "avx512");
  EXPECT_DOUBLE_EQ(back->gflops_per_core, 117.5);
  EXPECT_EQ(back->cores, 2);
  EXPECT_FALSE(parse_cpu_peak("not json"));
  EXPECT_FALSE(parse_cpu_peak("{\"gflops_per_core\": 0}"));
  EXPECT_FALSE(parse_cpu_peak("{\"gflops_per_core\": \"fast\"}"));
  EXPECT_FALSE(parse_cpu_peak("[]"));
}

// The benchmark measures something plausible, and the cache answers the second time without
// measuring again (its file holds the first answer).
TEST(CpuPeak, MeasuredOnceAndCachedPerCpu) {
  test::TempDir dir;
  const CpuPeak first = cached_cpu_peak(dir.path());
  EXPECT_EQ(first.source, "measured");
  EXPECT_GT(first.gflops_per_core, 0.5);  // any core of this century, even the generic kernel
  EXPECT_LT(first.gflops_per_core, 1e4);
  EXPECT_FALSE(first.isa.empty());
  EXPECT_GE(first.cores, 1);
  const CpuPeak second = cached_cpu_peak(dir.path());
  EXPECT_NE(second.source, "measured");
  EXPECT_TRUE(fs::exists(second.source));
  EXPECT_DOUBLE_EQ(second.gflops_per_core, first.gflops_per_core);
  // An unreadable entry is measured again (and replaced).
  test::write_file(second.source, "garbage");
  EXPECT_EQ(cached_cpu_peak(dir.path()).source, "measured");
  EXPECT_TRUE(parse_cpu_peak(test::read_file(second.source)));
}

// Version 5 files gain models.flops (empty for their models); a count is stored once per model
// and a later run without one keeps it.
TEST(StoreFlops, MigratedEmptyThenStoredAndKept) {
  test::TempDir dir;
  const fs::path db = dir / "v5.db";
  {
    SQLite::Database old(db.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    old.exec(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', '5');"
        "CREATE TABLE models(id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, "
        "spec_json TEXT NOT NULL, spec_source TEXT NOT NULL DEFAULT '', recorded_at TEXT NOT "
        "NULL DEFAULT CURRENT_TIMESTAMP);"
        "INSERT INTO models(id, path, sha256, spec_json) VALUES(1, '/m.onnx', 'abc', '{}');");
  }
  Store store(db);
  ASSERT_EQ(store.models().size(), 1u);
  EXPECT_EQ(store.models()[0].flops, std::nullopt);
  EXPECT_EQ(store.ensure_model({0, "/m.onnx", "abc", "{}", "", 12345}), 1);
  EXPECT_EQ(store.models()[0].flops, 12345);
  EXPECT_EQ(store.ensure_model({0, "/m.onnx", "abc", "{}"}), 1);
  EXPECT_EQ(store.models()[0].flops, 12345);
  const int64_t second = store.ensure_model({0, "/n.onnx", "def", "{}", "", 7});
  EXPECT_EQ(store.models().at(1).flops, 7);
  EXPECT_NE(second, 1);
}

// From the database to the fields: the stored count and the recorded peak give each variant its
// rate and share in --json (and so in the CSV and HTML, which read the same table).
TEST(RooflineFields, CompareCarriesFlopsRateAndShare) {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  {
    Store store(db);
    store.set_meta("cpu_peak", to_json(peak_of(100, 2)).dump());
    const int64_t model = store.ensure_model({0, "/m.onnx", "abc", "{}", "", 400'000'000});
    const int64_t image =
        store.ensure_image({0, "a.jpg", "/a.jpg", "s", std::nullopt, ImageStatus::ok, ""});
    for (const char* env : {"ort:threads=1", "ort:threads=2", "tvm:device=cuda,threads=1"}) {
      const int64_t variant = store.ensure_variant(model, env, "ort");
      StoredResult r;
      r.variant_id = variant;
      r.image_id = image;
      r.top_ids = {1};
      r.top_scores = {1.0f};
      r.samples_ns = {5'000'000, 5'000'000, 5'000'000};  // 5 ms: 80 GFLOP/s
      store.add_result(r);
    }
  }
  const Store store(db, StoreMode::ReadOnly);
  const nlohmann::json j = to_json(compare_variants(store));
  const auto& v = j["variants"];
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0]["flops"], 400'000'000);
  EXPECT_DOUBLE_EQ(v[0]["gflops"].get<double>(), 80.0);
  EXPECT_DOUBLE_EQ(v[0]["peak_gflops"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(v[0]["peak_share"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(v[1]["peak_share"].get<double>(), 0.4);
  EXPECT_TRUE(v[2]["peak_share"].is_null());  // a GPU variant
  EXPECT_EQ(j["models"][0]["flops"], 400'000'000);
  EXPECT_EQ(format_value(variant_field("gflops").format, 80.04), "80.0");
  EXPECT_EQ(format_value(variant_field("peak_share").format, 0.8), "80.0%");
}

TEST(RooflineFields, AnUnreadablePeakIsAWarningNotAFailure) {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  Store(db).set_meta("cpu_peak", "{broken");
  const Store store(db, StoreMode::ReadOnly);
  const CampaignData campaign = load_campaign(store);
  EXPECT_FALSE(campaign.cpu_peak);
  ASSERT_EQ(campaign.problems.size(), 1u);
  EXPECT_TRUE(test::Contains(campaign.problems[0], "meta cpu_peak"));
}

}  // namespace
}  // namespace deltann
