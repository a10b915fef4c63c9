// The field tables behind every summary output (summary_fields.h) and the terminal form of
// `deltann compare` built on them.
#include "deltann/summary_fields.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <string>

#include "deltann/compare.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;

constexpr double kInf = std::numeric_limits<double>::infinity();

VariantSummary full_variant() {
  VariantSummary v;
  v.env = "ort:opt=all,device=cpu,threads=1";
  v.framework = "ort";
  v.knobs = {{"opt", "all"}, {"device", "cpu"}, {"threads", "1"}};
  v.status = VariantStatus::done;
  v.engine_version = "1.17.3";
  v.images = 10;
  v.failures = 1;
  v.labelled_images = 8;
  v.top1_accuracy = 0.75;
  v.top1_accuracy_ci = stats::Interval{0.35, 0.97};
  v.top5_accuracy = 0.9;
  v.top5_accuracy_ci = stats::Interval{0.6, 1};
  v.compile_ms = 1234.5;
  v.load_ms = 12.5;
  v.first_ms = 3.25;
  v.median_ms = 2.5;
  v.p90_ms = 2.75;
  v.p99_ms = 2.9;
  v.cv = 0.05;
  v.median_ci_ms = stats::Interval{2.4, 2.6};
  v.median_bootstrap_ci_ms = stats::Interval{2.45, 2.55};
  v.samples = 50;
  v.nonfinite_images = 1;
  v.nondeterministic_images = 2;
  v.max_repeat_diff = 1e-6;
  v.flops = 800'000'000;
  v.gflops = 320;
  v.peak_gflops = 400;
  v.peak_share = 0.8;
  v.device.isa = "avx2";
  v.device.device = "cuda";
  HostIdentity host;
  host.host = "node1";
  host.cpu_model = "Some CPU";
  host.isa_flags = {"avx", "avx2", "fma"};
  host.isa_level = "avx2";
  host.logical_cores = 8;
  host.cpu_mhz_measured = 2990;
  host.cpu_mhz_reported = 2400;
  host.gpus = {{"NVIDIA H100", "550.54", "1980", "2619", "1980", "2619"}};
  v.device.host = host;
  host.host = "node2";
  v.device.other_hosts = {host};
  v.device.hardware = {{"cuda_device", "NVIDIA H100"}};
  return v;
}

PairSummary full_pair() {
  PairSummary p;
  p.a = "ort:opt=all";
  p.b = "ort:opt=off";
  p.axis = "opt";
  p.images = 4;
  p.top1_differences = 1;
  p.differing_images = {"a.jpg"};
  p.top1_difference_ci = stats::Interval{0.0063, 0.806};
  p.top5_differences = 2;
  p.top5_difference_ci = stats::Interval{0.068, 0.932};
  p.top5_overlap = 0.9;
  p.max_abs_diff = kInf;
  p.mean_abs_diff = 0.01;
  p.near_tie_flips = 1;
  p.top5_jaccard = 0.8;
  p.rank_correlation = 0.7;
  p.relative_l2 = 0.001;
  p.cosine = 0.999;
  p.min_atol = 0.5;
  p.min_rtol = 0.25;
  p.failing_elements = 3;
  p.speed_ratio = 1.25;
  p.speed_ratio_ci = stats::Interval{1.1, 1.4};
  p.p_value = 0.001;
  p.p_adjusted = 0.003;
  p.significant = true;
  p.device_differences = {"isa native (avx512) vs avx2"};
  return p;
}

ShiftSummary full_shift() {
  return {"ort", "ort:opt=off", "transform", "fog", 4, 1, stats::Interval{0.0063, 0.806}};
}

template <typename Row>
void expect_complete(const std::vector<Field<Row>>& fields, const Row& row) {
  std::set<std::string> names;
  for (const auto& field : fields) {
    SCOPED_TRACE(field.name);
    EXPECT_TRUE(names.insert(field.name).second) << "duplicate field name";
    EXPECT_STRNE(field.name, "");
    EXPECT_STRNE(field.heading, "");
    EXPECT_STRNE(field.description, "");
    ASSERT_NE(field.unit, nullptr);
    // A number has a unit; text does not.
    EXPECT_EQ(field.format == FieldFormat::text || field.format == FieldFormat::list,
              std::string(field.unit).empty());
    ASSERT_NE(field.value, nullptr);
    const FieldValue value = field.value(row);
    EXPECT_FALSE(std::holds_alternative<std::monostate>(value)) << "the full row has every value";
    EXPECT_NE(format_value(field.format, value), "-");
    EXPECT_FALSE(field_json<nlohmann::json>(value).is_null());
  }
}

TEST(SummaryFields, EveryFieldHasNameHeadingUnitFormatAndDescription) {
  expect_complete(variant_fields(), full_variant());
  expect_complete(pair_fields(), full_pair());
  expect_complete(shift_fields(), full_shift());
}

TEST(SummaryFields, FormatsRender) {
  EXPECT_EQ(format_value(FieldFormat::percent, 0.1234), "12.3%");
  EXPECT_EQ(format_value(FieldFormat::fixed3, 0.5), "0.500");
  EXPECT_EQ(format_value(FieldFormat::ms, 12.345678), "12.35");
  EXPECT_EQ(format_value(FieldFormat::ms, 12345.6), "12346");
  EXPECT_EQ(format_value(FieldFormat::ratio, 1.25), "1.250");
  EXPECT_EQ(format_value(FieldFormat::scientific, 0.000123), "1.23e-04");
  EXPECT_EQ(format_value(FieldFormat::count, int64_t{42}), "42");
  EXPECT_EQ(format_value(FieldFormat::flag, true), "yes");
  EXPECT_EQ(format_value(FieldFormat::list, std::vector<std::string>{"a", "b"}), "a, b");
  EXPECT_EQ(format_value(FieldFormat::ms, FieldValue{}), "-");
  EXPECT_EQ(format_value(FieldFormat::scientific, kInf), "inf");
  EXPECT_EQ(format_value(FieldFormat::scientific, std::nan("")), "NaN");
}

TEST(SummaryFields, JsonWritesNonFiniteNumbersAsWordsAndAbsentAsNull) {
  EXPECT_EQ(field_json<nlohmann::json>(kInf), "Infinity");
  EXPECT_EQ(field_json<nlohmann::json>(-kInf), "-Infinity");
  EXPECT_EQ(field_json<nlohmann::json>(std::nan("")), "NaN");
  EXPECT_TRUE(field_json<nlohmann::json>(FieldValue{}).is_null());
  EXPECT_EQ(field_json<nlohmann::json>(0.5), 0.5);
  const auto knobs = field_json<nlohmann::ordered_json>(
      std::map<std::string, std::string>{{"opt", "all"}, {"threads", "1"}});
  EXPECT_EQ(knobs.dump(), R"({"opt":"all","threads":"1"})");
}

TEST(SummaryFields, CompareJsonHoldsEveryFieldOfTheTables) {
  Comparison c;
  c.variants = {full_variant()};
  c.pairs = {full_pair()};
  const nlohmann::json j = to_json(c);
  for (const auto& field : variant_fields()) EXPECT_TRUE(j["variants"][0].contains(field.name));
  for (const auto& field : pair_fields()) EXPECT_TRUE(j["pairs"][0].contains(field.name));
  EXPECT_EQ(j["variants"][0].size(), variant_fields().size());
  EXPECT_EQ(j["pairs"][0]["max_abs_diff"], "Infinity");
  EXPECT_EQ(j["pairs"][0]["speed_ratio_ci_low"], 1.1);
}

TEST(SummaryFields, RatesCarryTheirIntervalInOneConvention) {
  // Every rate of the comparison has the companions `<name>_ci_low` and `<name>_ci_high`, in the
  // same unit and format, and every `_ci_low` belongs to a field of the table.
  for (const char* rate : {"top1_accuracy", "top5_accuracy"})
    for (const char* end : {"_ci_low", "_ci_high"}) {
      const VariantField& bound = variant_field(std::string(rate) + end);
      EXPECT_EQ(bound.format, variant_field(rate).format) << rate << end;
      EXPECT_STREQ(bound.unit, variant_field(rate).unit) << rate << end;
    }
  for (const char* rate : {"top1_difference_rate", "top5_difference_rate"})
    for (const char* end : {"_ci_low", "_ci_high"}) {
      const PairField& bound = pair_field(std::string(rate) + end);
      EXPECT_EQ(bound.format, pair_field(rate).format) << rate << end;
      EXPECT_STREQ(bound.unit, pair_field(rate).unit) << rate << end;
    }
  for (const auto& field : pair_fields()) {
    const std::string name = field.name;
    if (name.size() > 7 && name.ends_with("_ci_low")) {
      EXPECT_NO_THROW((void)pair_field(name.substr(0, name.size() - 7))) << name;
    }
  }
  for (const char* end : {"_ci_low", "_ci_high"}) {
    const ShiftField& bound = shift_field(std::string("top1_difference_rate") + end);
    EXPECT_EQ(bound.format, shift_field("top1_difference_rate").format) << end;
    EXPECT_STREQ(bound.unit, shift_field("top1_difference_rate").unit) << end;
  }
  // Every percent field of every table is a rate with its interval.
  const auto expect_intervals = [](const auto& fields, const auto& find) {
    for (const auto& field : fields) {
      const std::string name = field.name;
      if (field.format != FieldFormat::percent || name.ends_with("_ci_low") ||
          name.ends_with("_ci_high") || name == "peak_share" || name == "cv")
        continue;  // a share of the peak speed, a coefficient of variation: no trials behind them
      EXPECT_NO_THROW((void)find(name + "_ci_low")) << name;
      EXPECT_NO_THROW((void)find(name + "_ci_high")) << name;
    }
  };
  expect_intervals(variant_fields(), variant_field);
  expect_intervals(pair_fields(), pair_field);
  expect_intervals(shift_fields(), shift_field);
}

TEST(SummaryFields, PeopleSeeTheRateWithItsInterval) {
  PairSummary p = full_pair();  // 1 of 4 images differ
  p.top1_difference_ci = stats::Interval{0.0063, 0.806};
  EXPECT_EQ(format_with_interval(pair_field("top1_difference_rate"), p),
            "25.0% [0.6\u2013"
            "80.6]");
  p.top1_difference_ci.reset();  // no interval: the value alone
  EXPECT_EQ(format_with_interval(pair_field("top1_difference_rate"), p), "25.0%");
  EXPECT_EQ(format_with_interval(pair_field("images"), p), "4");  // no interval in the table
  // Only rates: the speed ratio's interval has columns of its own.
  EXPECT_EQ(format_with_interval(pair_field("speed_ratio"), p), "1.250");
  VariantSummary v = full_variant();
  v.top1_accuracy_ci = stats::Interval{0.5, 0.9};
  v.top5_accuracy_ci.reset();
  EXPECT_EQ(format_with_interval(variant_field("top1_accuracy"), v),
            "75.0% [50.0\u2013"
            "90.0]");
  EXPECT_EQ(format_with_interval(variant_field("top5_accuracy"), v), "90.0%");
  EXPECT_EQ(format_with_interval(shift_field("top1_difference_rate"), full_shift()),
            "25.0% [0.6\u2013"
            "80.6]");
}

TEST(SummaryFields, LookupByName) {
  EXPECT_STREQ(variant_field("top1_accuracy").heading, "top-1");
  EXPECT_STREQ(pair_field("p_adjusted").unit, "probability");
  EXPECT_THROW((void)pair_field("no_such_field"), std::out_of_range);
}

// A campaign of 40 variants with long environment strings, every pair differing, and findings
// with long titles and reproduce commands.
Comparison large_campaign() {
  Comparison c;
  c.meta["spec_source"] = "/models/mobilenet_v2.spec.json";
  c.labelled_images = 5000;
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    VariantSummary v = full_variant();
    v.env = "tvm(onnx>tflite):opt=" + std::to_string(i % 4) +
            ",device=cpu,threads=" + std::to_string(1 + i) +
            ",precision=fp32,disable=FuseOps+FoldConstant";
    v.images = 5000;
    v.failures = 1234;
    v.compile_ms = 123456.7;
    v.samples = 250000;
    c.variants.push_back(v);
  }
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) {
      PairSummary p = full_pair();
      p.a = c.variants[a].env;
      p.b = c.variants[b].env;
      p.axis = a % 3 == 0 ? "framework" : "some_very_long_knob_name_for_an_axis";
      p.images = 5000;
      p.top1_differences = 4999 - a;
      p.differing_images.clear();
      for (int k = 0; k < 30; ++k)
        p.differing_images.push_back("n01440764/ILSVRC2012_val_000" + std::to_string(k) + ".JPEG");
      c.pairs.push_back(p);
    }
  for (int k = 0; k < 12; ++k) {
    Finding f;
    f.kind = FindingKind::label_difference;
    f.title = c.variants[k].env + " changes the top-1 label against 38 of the 39 variants that " +
              "agree with most others, on 4999 of 5000 images";
    f.evidence = "worst pair: " + c.variants[k].env + " vs " + c.variants[k + 1].env +
                 ": 4999 confident flips, 0 near-ties, max |d| 1.23e+01, top-5 overlap 0.123";
    f.reproduce =
        "deltann run --model /very/long/path/to/the/models/folder/mobilenet_v2.onnx "
        "--images /datasets/imagenet/validation --spec "
        "/very/long/path/to/the/models/folder/mobilenet_v2.spec.json --warmup 3 "
        "--repeat 5 --env '" +
        c.variants[k].env + "' --env '" + c.variants[k + 1].env +
        "' --db \"$(mktemp -d)/repro.db\"";
    c.findings.push_back(f);
  }
  c.warnings.push_back(
      "model file /very/long/path/to/the/models/folder/mobilenet_v2.onnx has changed since the "
      "campaign ran (its sha256 is not the recorded 0123456789ab...): the results are of the "
      "earlier file");
  ModelSummary m;
  m.path = "/very/long/path/to/the/models/folder/mobilenet_v2.onnx";
  m.sha256 = "0123456789abcdef";
  m.spec_source = "/very/long/path/to/the/models/folder/mobilenet_v2.spec.json";
  m.on_disk = "changed";
  c.models = {m};
  return c;
}

size_t longest_line(const std::string& text, std::string* which) {
  std::istringstream in(text);
  size_t longest = 0;
  for (std::string line; std::getline(in, line);) {
    size_t n = 0;
    for (const char ch : line) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    if (n > longest) {
      longest = n;
      *which = line;
    }
  }
  return longest;
}

TEST(CompareTerminal, ALargeCampaignFitsOneHundredColumns) {
  const Comparison c = large_campaign();
  std::ostringstream out;
  print_comparison(c, out);
  const std::string text = out.str();
  std::string which;
  EXPECT_LE(longest_line(text, &which), 100u) << which;
  // Findings come first, then the summary per axis, the worst pairs and the variants.
  const size_t findings = text.find("Findings (12"), axes = text.find("By axis"),
               pairs = text.find("Pairs, most different first"), variants = text.find("Variants (");
  ASSERT_NE(findings, std::string::npos) << text;
  ASSERT_NE(axes, std::string::npos) << text;
  ASSERT_NE(pairs, std::string::npos) << text;
  ASSERT_NE(variants, std::string::npos) << text;
  EXPECT_LT(findings, axes);
  EXPECT_LT(axes, pairs);
  EXPECT_LT(pairs, variants);
  // The 40 x 40 matrix does not fit: it is left to --matrix.
  EXPECT_FALSE(Contains(text, "Top-1 label differences (row vs column"));
  EXPECT_TRUE(Contains(text, "40 x 40 matrix"));
  // A wrapped reproduce command is still one shell command: each broken line ends in " \".
  EXPECT_TRUE(Contains(text, " \\\n       --"));
}

TEST(CompareTerminal, TheMatrixIsPrintedWhenAskedFor) {
  std::ostringstream out;
  print_comparison(large_campaign(), out, {.width = 100, .matrix = true});
  EXPECT_TRUE(Contains(out.str(), "Top-1 label differences (row vs column"));
}

}  // namespace
}  // namespace deltann
