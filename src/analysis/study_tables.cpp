#include "deltann/study_tables.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/environment.h"
#include "deltann/error.h"

namespace deltann {
namespace {

// A variant of the comparison with its parsed environment (the stored canonical string, so
// without the " [model K]" suffix of VariantSummary::env).
struct StudyVariant {
  const VariantSummary* summary = nullptr;
  Environment env;
  std::string text;  // env.to_string()
};

// `wanted` names `variant` when the engine, version and conversion are the same and every knob
// `wanted` sets has the variant's value: a baseline can be given as briefly as "ort".
bool names(const Environment& wanted, const Environment& variant) {
  if (wanted.framework != variant.framework || wanted.version != variant.version ||
      wanted.conversion != variant.conversion)
    return false;
  for (const auto& [key, value] : wanted.knobs)
    if (variant.knob(key) != value) return false;
  return true;
}

const StudyVariant& baseline_of(const std::vector<StudyVariant>& variants,
                                const std::vector<Environment>& baselines) {
  for (const auto& wanted : baselines)
    for (const auto& v : variants)
      if (names(wanted, v.env)) return v;
  return variants.front();
}

std::string engine_text(const Environment& env) {
  Environment engine = env;
  engine.knobs.clear();
  return engine.to_string();
}

// The knobs other than opt, as an environment string writes them ("device=cpu,threads=1").
std::string setting_text(const Environment& env) {
  Environment rest;
  rest.framework = "x";
  rest.knobs = env.knobs;
  rest.knobs.erase("opt");
  const std::string text = rest.to_string();
  return text.size() > 2 ? text.substr(2) : "";
}

// Pairs by their two names, in either order.
class PairIndex {
 public:
  explicit PairIndex(const Comparison& c) {
    for (const auto& p : c.pairs) pairs_[{p.a, p.b}] = &p;
  }
  // The pair of a and b, and whether it is stored as (b, a).
  std::pair<const PairSummary*, bool> find(const std::string& a, const std::string& b) const {
    if (const auto it = pairs_.find({a, b}); it != pairs_.end()) return {it->second, false};
    if (const auto it = pairs_.find({b, a}); it != pairs_.end()) return {it->second, true};
    return {nullptr, false};
  }

 private:
  std::map<std::pair<std::string, std::string>, const PairSummary*> pairs_;
};

void add_label_rows(StudyTables& t, int model, const std::string& path,
                    const std::vector<StudyVariant>& variants, const StudyVariant& baseline,
                    const PairIndex& pairs) {
  for (const auto& v : variants) {
    if (&v == &baseline) continue;
    // A variant with no image in common with the baseline (skipped, failed) has no pair; the
    // comparison's findings say why, the table leaves it out.
    const PairSummary* p = pairs.find(baseline.summary->env, v.summary->env).first;
    if (!p || p->images == 0) continue;
    StudyLabelRow row;
    row.model = model;
    row.model_path = path;
    row.baseline = baseline.text;
    row.variant = v.text;
    row.axis = axis_between(baseline.text, v.text);
    row.images = p->images;
    row.top1_differences = p->top1_differences;
    row.top1_difference_rate = p->top1_difference_rate();
    row.top1_difference_ci = p->top1_difference_ci;
    row.top5_differences = p->top5_differences;
    row.top5_difference_rate = p->top5_difference_rate();
    row.top5_difference_ci = p->top5_difference_ci;
    t.labels.push_back(std::move(row));
  }
}

void add_timing_rows(StudyTables& t, int model, const std::string& path,
                     const std::vector<StudyVariant>& variants,
                     const std::map<std::string, std::vector<std::string>>& opt_order,
                     const PairIndex& pairs) {
  // Groups: one engine setting (everything but opt), in order of first appearance; members with
  // their rank in the engine's opt list.
  std::vector<std::pair<std::string, std::vector<std::pair<int, const StudyVariant*>>>> groups;
  for (const auto& v : variants) {
    const auto order = opt_order.find(v.env.framework);
    const auto opt = v.env.knobs.find("opt");
    // Untimed variants (skipped, failed, outside the timing sample) have no median to compare.
    if (order == opt_order.end() || opt == v.env.knobs.end() || !v.summary->median_ms) continue;
    const auto at = std::find(order->second.begin(), order->second.end(), opt->second);
    if (at == order->second.end()) continue;
    const std::string key = engine_text(v.env) + ":" + setting_text(v.env);
    auto group =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
    if (group == groups.end()) group = groups.insert(groups.end(), {key, {}});
    group->second.push_back({static_cast<int>(at - order->second.begin()), &v});
  }
  for (auto& [key, members] : groups) {
    std::stable_sort(members.begin(), members.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    if (members.front().first == members.back().first) continue;  // one level: nothing to say
    const StudyVariant& lowest = *members.front().second;
    for (const auto& [level, v] : members) {
      StudyTimingRow row;
      row.model = model;
      row.model_path = path;
      row.engine = engine_text(v->env);
      row.setting = setting_text(v->env);
      row.opt = v->env.knob("opt");
      row.level = level;
      row.variant = v->text;
      row.lowest = lowest.text;
      row.samples = v->summary->samples;
      row.median_ms = v->summary->median_ms;
      row.median_ci_ms = v->summary->median_ci_ms;
      if (v == &lowest) {
        if (row.median_ms) row.ratio = 1.0;
      } else if (const auto [p, swapped] = pairs.find(lowest.summary->env, v->summary->env);
                 p && p->speed_ratio) {
        // The pair's ratio is median(b) / median(a); oriented here as this level over the lowest.
        row.ratio = swapped ? 1.0 / *p->speed_ratio : *p->speed_ratio;
        if (p->speed_ratio_ci)
          row.ratio_ci =
              swapped ? stats::Interval{1.0 / p->speed_ratio_ci->high, 1.0 / p->speed_ratio_ci->low}
                      : *p->speed_ratio_ci;
        row.p_adjusted = p->p_adjusted;
        row.significant = p->significant;
      }
      t.timing.push_back(std::move(row));
    }
  }
}

using F = FieldFormat;

using namespace field_values;
FieldValue text(const std::string& v) { return FieldValue(v); }

using L = StudyLabelRow;
const std::vector<Field<L>> kLabelFields = {
    {"model", "model", "index", F::count, "which of the campaign's models (from 1)",
     [](const L& r) { return count(r.model); }},
    {"model_path", "model file", "", F::text, "the model's path as stored",
     [](const L& r) { return text(r.model_path); }},
    {"baseline", "baseline", "", F::text,
     "the environment every variant of the model is compared with (the study's source framework)",
     [](const L& r) { return text(r.baseline); }},
    {"variant", "variant", "", F::text, "the environment compared with the baseline",
     [](const L& r) { return text(r.variant); }},
    {"axis", "what changed", "", F::text, "framework, conversion, opt, ... or mixed",
     [](const L& r) { return text(r.axis); }},
    {"images", "images", "count", F::count, "images both have a result for",
     [](const L& r) { return count(r.images); }},
    {"top1_differences", "top-1 diffs", "count", F::count, "images whose top-1 labels differ",
     [](const L& r) { return count(r.top1_differences); }},
    {"top1_difference_rate", "top-1 diff", "fraction", F::percent, "top1_differences / images",
     [](const L& r) { return r.images ? FieldValue(r.top1_difference_rate) : FieldValue{}; }},
    {"top1_difference_rate_ci_low", "top-1 diff CI low", "fraction", F::percent,
     "low end of the interval of top1_difference_rate at `confidence`",
     [](const L& r) { return low(r.top1_difference_ci); }},
    {"top1_difference_rate_ci_high", "top-1 diff CI high", "fraction", F::percent,
     "high end of the interval of top1_difference_rate",
     [](const L& r) { return high(r.top1_difference_ci); }},
    {"top5_differences", "top-5 diffs", "count", F::count, "images whose top-5 label sets differ",
     [](const L& r) { return count(r.top5_differences); }},
    {"top5_difference_rate", "top-5 diff", "fraction", F::percent, "top5_differences / images",
     [](const L& r) { return r.images ? FieldValue(r.top5_difference_rate) : FieldValue{}; }},
    {"top5_difference_rate_ci_low", "top-5 diff CI low", "fraction", F::percent,
     "low end of the interval of top5_difference_rate at `confidence`",
     [](const L& r) { return low(r.top5_difference_ci); }},
    {"top5_difference_rate_ci_high", "top-5 diff CI high", "fraction", F::percent,
     "high end of the interval of top5_difference_rate",
     [](const L& r) { return high(r.top5_difference_ci); }},
};

using T = StudyTimingRow;
const std::vector<Field<T>> kTimingFields = {
    {"model", "model", "index", F::count, "which of the campaign's models (from 1)",
     [](const T& r) { return count(r.model); }},
    {"model_path", "model file", "", F::text, "the model's path as stored",
     [](const T& r) { return text(r.model_path); }},
    {"engine", "engine", "", F::text, "engine with its conversion chain (tvm, ort@pytorch>onnx)",
     [](const T& r) { return text(r.engine); }},
    {"setting", "setting", "", F::text, "the knobs other than opt, as key=value,...",
     [](const T& r) { return text(r.setting); }},
    {"opt", "opt", "", F::text, "this row's optimisation level",
     [](const T& r) { return text(r.opt); }},
    {"level", "level", "index", F::count,
     "rank of opt in the engine's list of levels, least optimised first (from 0)",
     [](const T& r) { return count(r.level); }},
    {"variant", "variant", "", F::text, "the environment of this row",
     [](const T& r) { return text(r.variant); }},
    {"lowest", "lowest level", "", F::text,
     "the environment at the group's lowest level, which `ratio` divides by",
     [](const T& r) { return text(r.lowest); }},
    {"samples", "samples", "count", F::count, "timed samples pooled into the median",
     [](const T& r) { return count(r.samples); }},
    {"median_ms", "median ms", "ms", F::ms, "median of the variant's timed samples",
     [](const T& r) { return number(r.median_ms); }},
    {"median_ms_ci_low", "median CI low ms", "ms", F::ms,
     "low end of the distribution-free interval of the median",
     [](const T& r) { return low(r.median_ci_ms); }},
    {"median_ms_ci_high", "median CI high ms", "ms", F::ms, "high end of that interval",
     [](const T& r) { return high(r.median_ci_ms); }},
    {"ratio", "ratio", "ratio", F::ratio,
     "median(this level) / median(lowest level): above 1 is a slow-down; 1 at the lowest level",
     [](const T& r) { return number(r.ratio); }},
    {"ratio_ci_low", "ratio CI low", "ratio", F::ratio,
     "low end of the interval of the ratio of medians at `confidence`",
     [](const T& r) { return low(r.ratio_ci); }},
    {"ratio_ci_high", "ratio CI high", "ratio", F::ratio, "high end of that interval",
     [](const T& r) { return high(r.ratio_ci); }},
    {"p_adjusted", "p (Holm)", "probability", F::scientific,
     "Mann-Whitney p of the pair with the lowest level, Holm-adjusted over the campaign",
     [](const T& r) { return number(r.p_adjusted); }},
    {"significant", "significant", "", F::flag,
     "p_adjusted below alpha and the ratio's interval excludes 1",
     [](const T& r) { return FieldValue(r.significant); }},
};

}  // namespace

const std::vector<Field<StudyLabelRow>>& study_label_fields() { return kLabelFields; }
const std::vector<Field<StudyTimingRow>>& study_timing_fields() { return kTimingFields; }

StudyTables study_tables(const CampaignData& campaign, const Comparison& comparison,
                         const StudyOptions& options) {
  std::vector<Environment> baselines;
  for (const auto& text : options.baselines) baselines.push_back(parse_environment(text));
  std::map<std::string, std::vector<std::string>> opt_order;
  for (const auto& [engine, info] : campaign.engines)
    for (const auto& knob : info.knobs)
      if (knob.name == "opt") opt_order[engine] = knob.values;
  std::map<std::string, const CampaignVariant*> by_name;
  for (const auto& v : campaign.variants) by_name[v.name] = &v;

  const PairIndex pairs(comparison);
  StudyTables tables;
  for (size_t m = 0; m < comparison.models.size(); ++m) {
    const int model = static_cast<int>(m) + 1;
    std::vector<StudyVariant> variants;
    for (const auto& summary : comparison.variants) {
      if (summary.model != model) continue;
      const auto stored = by_name.find(summary.env);
      if (stored == by_name.end()) continue;
      Environment env;
      try {
        env = parse_environment(stored->second->stored.env);
      } catch (const Error&) {
        continue;  // an environment this deltann cannot read: the comparison warned already
      }
      variants.push_back({&summary, env, env.to_string()});
    }
    if (variants.empty()) continue;
    const std::string& path = comparison.models[m].path;
    add_label_rows(tables, model, path, variants, baseline_of(variants, baselines), pairs);
    add_timing_rows(tables, model, path, variants, opt_order, pairs);
  }
  return tables;
}

}  // namespace deltann
