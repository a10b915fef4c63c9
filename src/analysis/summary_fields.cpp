#include "deltann/summary_fields.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "deltann/json_number.h"
#include "deltann/text.h"

namespace deltann {
namespace {

using F = FieldFormat;

using namespace field_values;

// A text of the variant's recorded machine; absent where none was recorded.
FieldValue host_text(const VariantSummary& v, std::string HostIdentity::*member) {
  return v.device.host ? FieldValue((*v.device.host).*member) : FieldValue(std::monostate{});
}

const std::vector<VariantField> kVariantFields = {
    {"env", "environment", "", F::text,
     "canonical environment string; followed by \" [model K]\" when the database holds several "
     "models",
     [](const VariantSummary& v) { return FieldValue(v.env); }},
    {"model", "model", "index", F::count, "which of the campaign's models the variant ran (from 1)",
     [](const VariantSummary& v) { return count(v.model); }},
    {"framework", "engine", "", F::text, "engine name (ort, opencv, ...)",
     [](const VariantSummary& v) { return FieldValue(v.framework); }},
    {"knobs", "knobs", "", F::text,
     "the environment's knobs (CSV: key=value,... in canonical order)",
     [](const VariantSummary& v) { return FieldValue(v.knobs); }},
    {"status", "status", "", F::text, "pending, running, done, failed (abandoned) or skipped",
     [](const VariantSummary& v) { return FieldValue(std::string(to_string(v.status))); }},
    {"engine_version", "version", "", F::text,
     "version the engine reported at load; empty if it never loaded",
     [](const VariantSummary& v) { return FieldValue(v.engine_version); }},
    {"images", "images", "count", F::count, "images with a stored result",
     [](const VariantSummary& v) { return count(v.images); }},
    {"failures", "failures", "count", F::count, "recorded failures other than planning ones",
     [](const VariantSummary& v) { return count(v.failures); }},
    {"labelled_images", "labelled", "count", F::count,
     "labelled images with a result: the images the accuracies are over",
     [](const VariantSummary& v) { return count(v.labelled_images); }},
    {"top1_accuracy", "top-1", "fraction", F::percent,
     "top-1 accuracy over labelled images with a result",
     [](const VariantSummary& v) { return number(v.top1_accuracy); }},
    {"top1_accuracy_ci_low", "top-1 CI low", "fraction", F::percent,
     "low end of the Clopper-Pearson interval of top1_accuracy at `confidence`",
     [](const VariantSummary& v) { return low(v.top1_accuracy_ci); }},
    {"top1_accuracy_ci_high", "top-1 CI high", "fraction", F::percent,
     "high end of the interval of top1_accuracy",
     [](const VariantSummary& v) { return high(v.top1_accuracy_ci); }},
    {"top5_accuracy", "top-5", "fraction", F::percent,
     "top-5 accuracy over labelled images with a result",
     [](const VariantSummary& v) { return number(v.top5_accuracy); }},
    {"top5_accuracy_ci_low", "top-5 CI low", "fraction", F::percent,
     "low end of the Clopper-Pearson interval of top5_accuracy at `confidence`",
     [](const VariantSummary& v) { return low(v.top5_accuracy_ci); }},
    {"top5_accuracy_ci_high", "top-5 CI high", "fraction", F::percent,
     "high end of the interval of top5_accuracy",
     [](const VariantSummary& v) { return high(v.top5_accuracy_ci); }},
    {"compile_ms", "compile ms", "ms", F::ms,
     "build step (compiler, converter), when the engine has one",
     [](const VariantSummary& v) { return number(v.compile_ms); }},
    {"load_ms", "load ms", "ms", F::ms, "model load (and compile) time in the worker",
     [](const VariantSummary& v) { return number(v.load_ms); }},
    {"first_inference_ms", "first ms", "ms", F::ms, "first inference, timed on its own",
     [](const VariantSummary& v) { return number(v.first_ms); }},
    {"median_ms", "median ms", "ms", F::ms, "median of all timed samples pooled",
     [](const VariantSummary& v) { return number(v.median_ms); }},
    {"p90_ms", "p90 ms", "ms", F::ms, "90th percentile of all timed samples",
     [](const VariantSummary& v) { return number(v.p90_ms); }},
    {"p99_ms", "p99 ms", "ms", F::ms, "99th percentile of all timed samples",
     [](const VariantSummary& v) { return number(v.p99_ms); }},
    {"cv", "CV", "fraction", F::percent, "coefficient of variation of the timed samples",
     [](const VariantSummary& v) { return number(v.cv); }},
    {"median_ci_low_ms", "median CI low ms", "ms", F::ms,
     "low end of the distribution-free interval of the median at `confidence`",
     [](const VariantSummary& v) { return low(v.median_ci_ms); }},
    {"median_ci_high_ms", "median CI high ms", "ms", F::ms,
     "high end of the distribution-free interval of the median",
     [](const VariantSummary& v) { return high(v.median_ci_ms); }},
    {"median_bootstrap_ci_low_ms", "bootstrap CI low ms", "ms", F::ms,
     "low end of the percentile-bootstrap interval of the median (at most 5000 samples)",
     [](const VariantSummary& v) { return low(v.median_bootstrap_ci_ms); }},
    {"median_bootstrap_ci_high_ms", "bootstrap CI high ms", "ms", F::ms,
     "high end of the percentile-bootstrap interval of the median",
     [](const VariantSummary& v) { return high(v.median_bootstrap_ci_ms); }},
    {"samples", "samples", "count", F::count,
     "timed samples pooled (every image of the timing sample, every repeat)",
     [](const VariantSummary& v) { return count(v.samples); }},
    {"timed_images", "timed images", "count", F::count,
     "images of the timing sample (--timing-images) whose samples are pooled",
     [](const VariantSummary& v) { return count(v.timed_images); }},
    {"nonfinite_images", "non-finite", "count", F::count, "images whose output held NaN or Inf",
     [](const VariantSummary& v) { return count(v.nonfinite_images); }},
    {"nondeterministic_images", "nondet.", "count", F::count,
     "images whose first and last repeated run gave different outputs",
     [](const VariantSummary& v) { return count(v.nondeterministic_images); }},
    {"max_repeat_diff", "max repeat |d|", "model output", F::scientific,
     "largest difference between repeated runs (0 when none)",
     [](const VariantSummary& v) { return FieldValue(v.max_repeat_diff); }},
    {"flops", "FLOPs", "count", F::count,
     "floating-point operations of one inference, counted from the ONNX graph",
     [](const VariantSummary& v) {
       return v.flops ? count(*v.flops) : FieldValue(std::monostate{});
     }},
    {"gflops", "GFLOP/s", "GFLOP/s", F::fixed1, "achieved rate: flops / median_ms",
     [](const VariantSummary& v) { return number(v.gflops); }},
    {"peak_gflops", "peak GFLOP/s", "GFLOP/s", F::fixed1,
     "the CPU's FMA peak at the variant's threads (CPU variants only)",
     [](const VariantSummary& v) { return number(v.peak_gflops); }},
    {"peak_share", "of peak", "fraction", F::percent, "gflops / peak_gflops",
     [](const VariantSummary& v) { return number(v.peak_share); }},
    // The device identity (docs/ENVIRONMENTS.md, "Hardware"): null where the machine was not
    // recorded (a variant that never loaded, or one of an older deltann).
    {"device_identity", "device", "", F::text,
     "one line: CPU model, isa level in effect, device and accelerator",
     [](const VariantSummary& v) { return FieldValue(v.device.summary()); }},
    {"isa", "isa", "", F::text,
     "instruction-set level in effect: the isa knob's cap, or native (the CPU's highest level)",
     [](const VariantSummary& v) { return FieldValue(v.device.isa_in_effect()); }},
    {"accelerator", "accelerator", "", F::text,
     "the OpenCL device [platform] or the GPUs that computed; empty on the CPU",
     [](const VariantSummary& v) { return FieldValue(v.device.accelerator()); }},
    {"host", "host", "", F::text, "name of the machine the variant ran on",
     [](const VariantSummary& v) { return host_text(v, &HostIdentity::host); }},
    {"cpu_model", "CPU", "", F::text, "the CPU's model name (/proc/cpuinfo)",
     [](const VariantSummary& v) { return host_text(v, &HostIdentity::cpu_model); }},
    {"cpu_isa_flags", "CPU flags", "", F::list,
     "the CPU's vector and instruction-set flags (avx*, amx*, fma, f16c, sse*)",
     [](const VariantSummary& v) {
       return v.device.host ? FieldValue(v.device.host->isa_flags) : FieldValue(std::monostate{});
     }},
    {"cpu_cores", "cores", "count", F::count, "online logical processors",
     [](const VariantSummary& v) {
       return v.device.host ? count(v.device.host->logical_cores) : FieldValue(std::monostate{});
     }},
    {"cpu_mhz_measured", "MHz", "MHz", F::fixed1,
     "clock of one busy core, measured by a timed chain of additions when the variant loaded",
     [](const VariantSummary& v) {
       return v.device.host ? number(v.device.host->cpu_mhz_measured)
                            : FieldValue(std::monostate{});
     }},
    {"cpu_mhz_reported", "cpuinfo MHz", "MHz", F::fixed1,
     "/proc/cpuinfo's cpu MHz averaged over the processors (nominal in many virtual machines)",
     [](const VariantSummary& v) {
       return v.device.host ? number(v.device.host->cpu_mhz_reported)
                            : FieldValue(std::monostate{});
     }},
    {"gpus", "GPUs", "", F::list,
     "each GPU nvidia-smi reported: name, driver, SM and memory clocks now / at most (MHz)",
     [](const VariantSummary& v) {
       if (!v.device.host) return FieldValue(std::monostate{});
       std::vector<std::string> gpus;
       for (const auto& g : v.device.host->gpus)
         gpus.push_back(g.name + ", driver " + g.driver + ", SM " + g.clock_sm_mhz + "/" +
                        g.clock_max_sm_mhz + " MHz, memory " + g.clock_mem_mhz + "/" +
                        g.clock_max_mem_mhz + " MHz");
       return FieldValue(gpus);
     }},
    {"other_machines", "other machines", "", F::list,
     "a variant merged from shards on several machines: the others, one line each",
     [](const VariantSummary& v) {
       std::vector<std::string> others;
       for (const auto& h : v.device.other_hosts) others.push_back(describe_host(h));
       return FieldValue(others);
     }},
    {"engine_hardware", "engine hardware", "", F::text,
     "what the engine reported at load (CPU features, OpenCL device and driver, kernels...)",
     [](const VariantSummary& v) { return FieldValue(v.device.hardware); }},
};

const std::vector<PairField> kPairFields = {
    {"a", "A", "", F::text, "the first environment, earlier in variant order",
     [](const PairSummary& p) { return FieldValue(p.a); }},
    {"b", "B", "", F::text, "the second environment",
     [](const PairSummary& p) { return FieldValue(p.b); }},
    {"axis", "axis", "", F::text, "what differs: framework, a knob name, mixed, ...",
     [](const PairSummary& p) { return FieldValue(p.axis); }},
    {"images", "images", "count", F::count, "images both have a result for",
     [](const PairSummary& p) { return count(p.images); }},
    {"top1_differences", "top-1 diffs", "count", F::count, "images whose top-1 class differs",
     [](const PairSummary& p) { return count(p.top1_differences); }},
    {"top1_difference_rate", "top-1 diff", "fraction", F::percent, "top1_differences / images",
     [](const PairSummary& p) { return FieldValue(p.top1_difference_rate()); }},
    {"top1_difference_rate_ci_low", "top-1 diff CI low", "fraction", F::percent,
     "low end of the Clopper-Pearson interval of top1_difference_rate at `confidence`",
     [](const PairSummary& p) { return low(p.top1_difference_ci); }},
    {"top1_difference_rate_ci_high", "top-1 diff CI high", "fraction", F::percent,
     "high end of the interval of top1_difference_rate",
     [](const PairSummary& p) { return high(p.top1_difference_ci); }},
    {"near_tie_flips", "near-tie", "count", F::count,
     "top-1 differences where both decisions were near-ties",
     [](const PairSummary& p) { return count(p.near_tie_flips); }},
    {"confident_flips", "conf", "count", F::count, "the other top-1 differences",
     [](const PairSummary& p) { return count(p.confident_flips); }},
    {"top5_differences", "top-5 diffs", "count", F::count,
     "images whose top-5 id sets differ (order within the five aside)",
     [](const PairSummary& p) { return count(p.top5_differences); }},
    {"top5_difference_rate", "top-5 diff", "fraction", F::percent, "top5_differences / images",
     [](const PairSummary& p) { return FieldValue(p.top5_difference_rate()); }},
    {"top5_difference_rate_ci_low", "top-5 diff CI low", "fraction", F::percent,
     "low end of the Clopper-Pearson interval of top5_difference_rate at `confidence`",
     [](const PairSummary& p) { return low(p.top5_difference_ci); }},
    {"top5_difference_rate_ci_high", "top-5 diff CI high", "fraction", F::percent,
     "high end of the interval of top5_difference_rate",
     [](const PairSummary& p) { return high(p.top5_difference_ci); }},
    {"top5_overlap", "top-5 ovl", "fraction", F::fixed3, "mean share of top-5 ids in common",
     [](const PairSummary& p) { return FieldValue(p.top5_overlap); }},
    {"top5_jaccard", "top-5 Jaccard", "fraction", F::fixed3,
     "mean Jaccard index of the top-5 id sets",
     [](const PairSummary& p) { return FieldValue(p.top5_jaccard); }},
    {"rank_correlation", "rank corr.", "[-1, 1]", F::fixed3, "mean top-K rank correlation",
     [](const PairSummary& p) { return FieldValue(p.rank_correlation); }},
    {"max_abs_diff", "max |d|", "model output", F::scientific,
     "largest element difference of the full outputs",
     [](const PairSummary& p) { return number(p.max_abs_diff); }},
    {"mean_abs_diff", "mean |d|", "model output", F::scientific,
     "mean element difference of the full outputs",
     [](const PairSummary& p) { return number(p.mean_abs_diff); }},
    {"relative_l2", "rel L2", "fraction", F::scientific, "worst image's ||a - b|| / ||a||",
     [](const PairSummary& p) { return number(p.relative_l2); }},
    {"cosine", "cosine", "[-1, 1]", F::fixed6, "worst image's cosine similarity",
     [](const PairSummary& p) { return number(p.cosine); }},
    {"min_atol", "min atol", "model output", F::scientific, "smallest atol that passes with rtol 0",
     [](const PairSummary& p) { return number(p.min_atol); }},
    {"min_rtol", "min rtol", "fraction", F::scientific, "smallest rtol that passes with atol 0",
     [](const PairSummary& p) { return number(p.min_rtol); }},
    {"failing_elements", "failing elements", "count", F::count,
     "elements failing |a - b| <= atol + rtol * |b|",
     [](const PairSummary& p) {
       return p.failing_elements ? count(*p.failing_elements) : FieldValue(std::monostate{});
     }},
    {"speed_ratio", "speed", "ratio", F::ratio,
     "median(b) / median(a) of the pooled samples: above 1, b is slower",
     [](const PairSummary& p) { return number(p.speed_ratio); }},
    {"speed_ratio_ci_low", "speed CI low", "ratio", F::ratio,
     "low end of the interval of the speed ratio at `confidence`",
     [](const PairSummary& p) { return low(p.speed_ratio_ci); }},
    {"speed_ratio_ci_high", "speed CI high", "ratio", F::ratio,
     "high end of the interval of the speed ratio",
     [](const PairSummary& p) { return high(p.speed_ratio_ci); }},
    {"p_value", "p", "probability", F::scientific,
     "two-sided Mann-Whitney test of the two sample sets, this pair alone",
     [](const PairSummary& p) { return number(p.p_value); }},
    {"p_adjusted", "p adj.", "probability", F::scientific,
     "p_value adjusted by Holm's method over every pair's timing test",
     [](const PairSummary& p) { return number(p.p_adjusted); }},
    {"significant", "significant", "flag", F::flag,
     "p_adjusted < alpha and the interval of the speed ratio excludes 1",
     [](const PairSummary& p) { return FieldValue(p.significant); }},
    {"differing_images", "differing images", "", F::list,
     "keys of the images counted in top1_differences",
     [](const PairSummary& p) { return FieldValue(p.differing_images); }},
    {"device_differences", "device differences", "", F::list,
     "how the two variants' device identities differ (isa, device, accelerator, machine)",
     [](const PairSummary& p) { return FieldValue(p.device_differences); }},
};

const std::vector<ShiftField> kShiftFields = {
    {"a", "A", "", F::text, "the first environment of the pair",
     [](const ShiftSummary& s) { return FieldValue(s.a); }},
    {"b", "B", "", F::text, "the second environment",
     [](const ShiftSummary& s) { return FieldValue(s.b); }},
    {"by", "by", "", F::text, "transform or severity: how the images are grouped",
     [](const ShiftSummary& s) { return FieldValue(s.by); }},
    {"shift", "shift", "", F::text,
     "the transform (original, fog, ...) or the severity (original, 1 to 5)",
     [](const ShiftSummary& s) { return FieldValue(s.shift); }},
    {"images", "images", "count", F::count, "images of the shift both have a result for",
     [](const ShiftSummary& s) { return count(s.images); }},
    {"top1_differences", "top-1 diffs", "count", F::count,
     "images of the shift whose top-1 class differs",
     [](const ShiftSummary& s) { return count(s.top1_differences); }},
    {"top1_difference_rate", "top-1 diff", "fraction", F::percent, "top1_differences / images",
     [](const ShiftSummary& s) { return FieldValue(s.top1_difference_rate()); }},
    {"top1_difference_rate_ci_low", "top-1 diff CI low", "fraction", F::percent,
     "low end of the Clopper-Pearson interval of top1_difference_rate at `confidence`",
     [](const ShiftSummary& s) { return low(s.top1_difference_ci); }},
    {"top1_difference_rate_ci_high", "top-1 diff CI high", "fraction", F::percent,
     "high end of the interval of top1_difference_rate",
     [](const ShiftSummary& s) { return high(s.top1_difference_ci); }},
};

template <typename Row>
const Field<Row>& find_field(const std::vector<Field<Row>>& fields, std::string_view name) {
  for (const auto& field : fields)
    if (name == field.name) return field;
  throw std::out_of_range("no summary field " + std::string(name));
}

std::string format_number(FieldFormat format, double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  switch (format) {
    case F::percent:
      return format_double("%.1f", v * 100) + "%";
    case F::fixed1:
      return format_double("%.1f", v);
    case F::fixed3:
      return format_double("%.3f", v);
    case F::ms:
      return std::fabs(v) >= 1000 ? format_double("%.0f", v) : format_double("%.4g", v);
    case F::fixed6:
      return format_double("%.6f", v);
    case F::ratio:
      return format_double("%.3f", v);
    case F::scientific:
      return format_double("%.2e", v);
    case F::count:
      return format_double("%.0f", v);
    default:
      return format_double("%g", v);
  }
}

}  // namespace

const std::vector<VariantField>& variant_fields() { return kVariantFields; }
const std::vector<PairField>& pair_fields() { return kPairFields; }
const std::vector<ShiftField>& shift_fields() { return kShiftFields; }

const VariantField& variant_field(std::string_view name) {
  return find_field(kVariantFields, name);
}
const PairField& pair_field(std::string_view name) { return find_field(kPairFields, name); }
const ShiftField& shift_field(std::string_view name) { return find_field(kShiftFields, name); }

std::string format_value(FieldFormat format, const FieldValue& value) {
  struct Visitor {
    FieldFormat format;
    std::string operator()(std::monostate) const { return "-"; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_number(format, v); }
    std::string operator()(const std::string& v) const { return v; }
    std::string operator()(bool v) const { return v ? "yes" : "no"; }
    std::string operator()(const std::vector<std::string>& v) const {
      std::string text;
      for (const auto& item : v) text += (text.empty() ? "" : ", ") + item;
      return text;
    }
    std::string operator()(const std::map<std::string, std::string>& v) const {
      std::string text;
      for (const auto& [key, item] : v) text += (text.empty() ? "" : ",") + key + "=" + item;
      return text;
    }
  };
  return std::visit(Visitor{format}, value);
}

std::string format_interval(FieldFormat format, const FieldValue& low, const FieldValue& high) {
  if (std::holds_alternative<std::monostate>(low) || std::holds_alternative<std::monostate>(high))
    return "";
  // The unit once, after the value: "3.1% [1.2–6.5]".
  const auto bare = [format](const FieldValue& v) {
    std::string text = format_value(format, v);
    if (format == F::percent && !text.empty() && text.back() == '%') text.pop_back();
    return text;
  };
  return " [" + bare(low) + "\u2013" + bare(high) + "]";
}

template <typename Json>
Json field_json(const FieldValue& value) {
  struct Visitor {
    Json operator()(std::monostate) const { return nullptr; }
    Json operator()(int64_t v) const { return v; }
    Json operator()(double v) const { return json_number<Json>(v); }
    Json operator()(const std::string& v) const { return v; }
    Json operator()(bool v) const { return v; }
    Json operator()(const std::vector<std::string>& v) const { return v; }
    Json operator()(const std::map<std::string, std::string>& v) const {
      Json object = Json::object();
      for (const auto& [key, item] : v) object[key] = item;
      return object;
    }
  };
  return std::visit(Visitor{}, value);
}

template nlohmann::json field_json<nlohmann::json>(const FieldValue&);
template nlohmann::ordered_json field_json<nlohmann::ordered_json>(const FieldValue&);

}  // namespace deltann
