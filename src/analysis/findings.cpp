#include "findings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "deltann/summary_fields.h"
#include "deltann/text.h"

namespace deltann {

std::string_view to_string(FindingKind kind) {
  switch (kind) {
    case FindingKind::failure:
      return "failure";
    case FindingKind::label_difference:
      return "label_difference";
    case FindingKind::numeric_difference:
      return "numeric_difference";
    case FindingKind::slowdown:
      return "slowdown";
    case FindingKind::nondeterminism:
      return "nondeterminism";
    case FindingKind::nonfinite:
      return "nonfinite";
    case FindingKind::unstable_timing:
      return "unstable_timing";
    case FindingKind::hardware:
      return "hardware";
  }
  return "unknown";
}

namespace {

// A command for a POSIX shell that runs the variants again, with the options that shaped the
// finding, into a new database (a fresh temporary one, so that an earlier paste is never resumed
// instead). Every path is absolute: it can be pasted in any folder.
std::string reproduce(const FindingContext& context, const std::vector<std::string>& envs) {
  // The variants of one finding are of one model (pairs never cross models): its file and spec.
  const std::string name = envs.empty() ? "" : envs.front();
  const auto model = context.model_of.find(name);
  const auto spec = context.spec_of.find(name);
  std::string command =
      "deltann run --model " +
      shell_quote(model != context.model_of.end() ? model->second : context.model) + " --images " +
      shell_quote(context.images);
  for (size_t i = 0; i < context.run_options.size(); ++i) {
    if (spec != context.spec_of.end() && context.run_options[i] == "--spec") {
      ++i;  // the model's own spec, below
      continue;
    }
    command += " " + shell_quote(context.run_options[i]);
  }
  if (spec != context.spec_of.end() && !spec->second.empty())
    command += " --spec " + shell_quote(spec->second);
  for (const auto& option : context.compare_options) command += " " + shell_quote(option);
  for (const auto& variant : envs) {
    const auto env = context.environment.find(variant);
    command += " --env " + shell_quote(env != context.environment.end() ? env->second : variant);
  }
  return command + " --db \"$(mktemp -d)/repro.db\"";
}

std::string number(double value, const char* format = "%.3g") {
  return format_double(format, value);
}

std::string percent(double fraction) { return number(100 * fraction, "%.1f") + "%"; }

std::string list(const std::vector<std::string>& items, size_t shown = 8) {
  std::string text;
  for (size_t i = 0; i < items.size() && i < shown; ++i) text += (i ? ", " : "") + items[i];
  if (items.size() > shown) text += ", ... (" + std::to_string(items.size()) + " in all)";
  return text;
}

void add_failures(std::vector<Finding>& out, const FindingContext& context) {
  // One finding per (variant, stage, symptom), listing the images it happened on; grouped by the
  // names so that the findings come in the same order as they always have.
  std::map<std::tuple<int64_t, std::string, std::string>, std::vector<const StoredFailure*>> groups;
  for (const auto& f : context.failures)
    groups[{f.variant_id, std::string(to_string(f.stage)), std::string(to_string(f.symptom))}]
        .push_back(&f);
  std::map<int64_t, std::string> env_of;
  for (const auto& [env, id] : context.variant_ids) env_of[id] = env;
  for (const auto& [key, items] : groups) {
    const auto& [variant, stage, symptom] = key;
    Finding f;
    f.kind = FindingKind::failure;
    const bool skipped = items.front()->stage == FailureStage::plan;
    const FailureSymptom how = items.front()->symptom;
    const bool died = how == FailureSymptom::crash || how == FailureSymptom::abort ||
                      how == FailureSymptom::hang || how == FailureSymptom::killed ||
                      how == FailureSymptom::exit;
    f.severity = skipped ? 5 : died ? 100 : 90;
    f.variants = {env_of[variant]};
    for (const auto* item : items)
      if (item->image_id && context.image_keys.count(*item->image_id))
        f.images.push_back(context.image_keys.at(*item->image_id));
    f.title =
        skipped
            ? env_of[variant] + " was not run: " + items.front()->message
            : env_of[variant] + ": " + symptom + " at " + stage +
                  (f.images.empty() ? "" : " on " + std::to_string(f.images.size()) + " image(s)");
    std::string message = items.front()->message;
    if (message.size() > 600) message = message.substr(0, 600) + "...";
    f.evidence = skipped ? "" : message + (f.images.empty() ? "" : "; images: " + list(f.images));
    f.reproduce = reproduce(context, f.variants);
    out.push_back(std::move(f));
  }
}

// The label or numeric difference finding of one pair, if its outputs disagree.
std::optional<Finding> difference_finding(const PairSummary& p, const Comparison& c,
                                          const FindingContext& context) {
  const std::string where =
      p.a + " vs " + p.b +
      (p.hardware_axis() ? " (differs only in " + p.axis + ")" : " (axis: " + p.axis + ")");
  Finding f;
  // A pair without an interval (none is computed without images) stands on its rate.
  const double rate = p.top1_difference_rate();
  const stats::Interval ci = p.top1_difference_ci.value_or(stats::Interval{rate, rate});
  // The finding stands on the interval: the rate over all such images is above 0 at the
  // analysis' confidence (with Clopper-Pearson, exactly when an image differed).
  if (ci.low > 0) {
    f.kind = FindingKind::label_difference;
    // Ranked by what is certain: the interval's low end, split between confident and near-tie
    // flips in their proportions, so that 1 flip of 9 images does not outrank 20 of 1000.
    const double confident = ci.low * p.confident_flips / p.top1_differences;
    const double near = ci.low * p.near_tie_flips / p.top1_differences;
    f.severity = 50 + 40 * confident + 10 * near;
    f.title = std::to_string(p.top1_differences) + " of " + std::to_string(p.images) + " images (" +
              percent(rate) + ", " + number(100 * c.options.confidence, "%.0f") + "% interval " +
              percent(ci.low) + " to " + percent(ci.high) + ") change top-1 label: " + where;
    f.evidence = std::to_string(p.confident_flips) + " confident, " +
                 std::to_string(p.near_tie_flips) + " near-tie flips; top-5 Jaccard " +
                 number(p.top5_jaccard) + ", rank correlation " + number(p.rank_correlation) +
                 (p.max_abs_diff ? ", max |d| " + number(*p.max_abs_diff) : "") +
                 "; images: " + list(p.differing_images);
    f.images = p.differing_images;
  } else if (p.failing_elements && *p.failing_elements > 0) {
    f.kind = FindingKind::numeric_difference;
    f.severity = 30 + std::min(15.0, std::log10(1 + *p.min_atol / c.options.atol));
    f.title = "outputs differ beyond atol " + number(c.options.atol) + " / rtol " +
              number(c.options.rtol) + " with the same labels: " + where;
    f.evidence = std::to_string(*p.failing_elements) + " elements fail; max |d| " +
                 number(*p.max_abs_diff) + ", worst relative L2 " + number(*p.relative_l2) +
                 ", worst cosine " + number(*p.cosine, "%.9f") + "; would pass with atol " +
                 number(*p.min_atol) + " (rtol 0) or rtol " + number(*p.min_rtol) + " (atol 0)";
  } else {
    return std::nullopt;
  }
  if (p.hardware_axis() && !p.device_differences.empty())
    f.evidence += "; device identity: " + list(p.device_differences);
  f.variants = {p.a, p.b};
  f.reproduce = reproduce(context, f.variants);
  return f;
}

// Variants that disagree with most others while those others agree among themselves: one
// quantised or broken conversion among twenty faithful variants would otherwise give nineteen
// pair findings that all say the same thing. Returns none when there is no such majority.
std::set<std::string> deviating_variants(const Comparison& c,
                                         const std::map<const PairSummary*, Finding>& differ) {
  std::map<std::string, std::pair<int, int>> counts;  // env -> (pairs, differing pairs)
  for (const auto& p : c.pairs) {
    const bool d = differ.count(&p) > 0;
    for (const auto* env : {&p.a, &p.b}) {
      ++counts[*env].first;
      counts[*env].second += d;
    }
  }
  std::set<std::string> deviating;
  for (const auto& [env, n] : counts)
    if (n.first >= 3 && 2 * n.second > n.first) deviating.insert(env);
  if (2 * deviating.size() >= counts.size()) return {};
  return deviating;
}

// One finding per deviating variant, summarising its disagreements with the variants that agree.
Finding deviation_finding(const std::string& env, const std::vector<const Finding*>& against,
                          int partners, const FindingContext& context) {
  const bool labels = std::any_of(against.begin(), against.end(), [](const Finding* f) {
    return f->kind == FindingKind::label_difference;
  });
  const Finding* worst = *std::max_element(
      against.begin(), against.end(),
      [](const Finding* x, const Finding* y) { return x->severity < y->severity; });
  Finding f;
  f.kind = labels ? FindingKind::label_difference : FindingKind::numeric_difference;
  f.severity = worst->severity;
  f.title =
      env +
      (labels ? " changes top-1 labels against " : " gives different outputs (same labels) from ") +
      std::to_string(against.size()) + " of the " + std::to_string(partners) +
      " variants that agree with most others";
  const std::string& other = worst->variants[0] == env ? worst->variants[1] : worst->variants[0];
  f.evidence = "worst against " + other + ": " + worst->evidence;
  std::set<std::string> images;
  for (const auto* pair : against) images.insert(pair->images.begin(), pair->images.end());
  f.images.assign(images.begin(), images.end());
  f.variants = {env, other};
  f.reproduce = reproduce(context, f.variants);
  return f;
}

void add_pair_findings(std::vector<Finding>& out, const Comparison& c,
                       const FindingContext& context) {
  std::map<const PairSummary*, Finding> differ;
  for (const auto& p : c.pairs)
    if (auto f = difference_finding(p, c, context)) differ.emplace(&p, std::move(*f));
  const std::set<std::string> deviating = deviating_variants(c, differ);
  std::map<std::string, std::vector<const Finding*>> against;
  std::map<std::string, int> partners;
  for (const auto& p : c.pairs) {
    const bool a_off = deviating.count(p.a) > 0, b_off = deviating.count(p.b) > 0;
    // A deviating variant is summarised against the agreeing ones only; pairs of two deviating
    // variants say nothing the summaries do not.
    if (a_off != b_off) ++partners[a_off ? p.a : p.b];
    const auto it = differ.find(&p);
    if (it == differ.end() || (a_off && b_off)) continue;
    if (a_off || b_off)
      against[a_off ? p.a : p.b].push_back(&it->second);
    else
      out.push_back(std::move(it->second));  // never read again: `against` points elsewhere
  }
  for (const auto& [env, items] : against)
    out.push_back(deviation_finding(env, items, partners[env], context));
  for (const auto& p : c.pairs) {
    // Unexpected degradation: the more optimised of two levels of the same engine is slower.
    if (p.axis != "opt" || !p.significant || !p.speed_ratio) continue;
    const auto find = [&](const std::string& env) -> const VariantSummary* {
      for (const auto& v : c.variants)
        if (v.env == env) return &v;
      return nullptr;
    };
    const VariantSummary* a = find(p.a);
    const VariantSummary* b = find(p.b);
    if (!a || !b || !context.opt_order.count(a->framework)) continue;
    const auto& order = context.opt_order.at(a->framework);
    const auto rank = [&](const VariantSummary& v) {
      const auto it = v.knobs.find("opt");
      if (it == v.knobs.end()) return -1L;
      const auto at = std::find(order.begin(), order.end(), it->second);
      return at == order.end() ? -1L : static_cast<long>(at - order.begin());
    };
    const long rank_a = rank(*a), rank_b = rank(*b);
    if (rank_a < 0 || rank_b < 0 || rank_a == rank_b) continue;
    // Oriented from the lower to the higher level: ratio = median(higher) / median(lower).
    const bool b_higher = rank_b > rank_a;
    const double ratio = b_higher ? *p.speed_ratio : 1.0 / *p.speed_ratio;
    const double ci_low = b_higher ? p.speed_ratio_ci->low : 1.0 / p.speed_ratio_ci->high;
    const double ci_high = b_higher ? p.speed_ratio_ci->high : 1.0 / p.speed_ratio_ci->low;
    if (ci_low <= 1.0 + c.options.min_slowdown) continue;
    const std::string& lower = b_higher ? p.a : p.b;
    const std::string& higher = b_higher ? p.b : p.a;
    Finding f;
    f.kind = FindingKind::slowdown;
    f.severity = 60 + std::min(30.0, 100 * (ratio - 1));
    f.title = "higher optimisation is slower: " + higher + " takes " + number(ratio, "%.3f") +
              "x the time of " + lower;
    f.evidence = "median ratio " + number(ratio, "%.3f") + ", " +
                 number(100 * c.options.confidence, "%.0f") + "% interval [" +
                 number(ci_low, "%.3f") + ", " + number(ci_high, "%.3f") +
                 "], Mann-Whitney p = " + number(*p.p_value, "%.2g");
    if (p.p_adjusted)
      f.evidence +=
          " (Holm-adjusted over the campaign's timing tests: " + number(*p.p_adjusted, "%.2g") +
          ")";
    f.variants = {lower, higher};
    f.reproduce = reproduce(context, f.variants);
    out.push_back(std::move(f));
  }
}

// A pair that differs only in its hardware (the `isa` or `device` knob) and whose outputs agree:
// what the axis changed, so that a cap or a device that changes nothing is said as plainly as one
// that changes labels (those pairs have their label or numeric finding, which says the same).
void add_hardware_findings(std::vector<Finding>& out, const Comparison& c,
                           const FindingContext& context) {
  for (const auto& p : c.pairs) {
    if (!p.hardware_axis() || difference_finding(p, c, context)) continue;
    Finding f;
    f.kind = FindingKind::hardware;
    f.severity = 2;  // below everything that needs a look: it says that nothing changed
    f.title = p.a + " vs " + p.b + ": differs only in " + p.axis + ": " +
              (p.max_abs_diff ? "max |d| " + number(*p.max_abs_diff) + ", " : "") +
              std::to_string(p.top1_differences) + "/" + std::to_string(p.images) +
              " labels differ (" + format_with_interval(pair_field("top1_difference_rate"), p) +
              ")";
    f.evidence = p.device_differences.empty() ? "the recorded device identities are the same"
                                              : "device identity: " + list(p.device_differences);
    f.variants = {p.a, p.b};
    f.reproduce = reproduce(context, f.variants);
    out.push_back(std::move(f));
  }
}

void add_variant_findings(std::vector<Finding>& out, const Comparison& c,
                          const FindingContext& context) {
  for (const auto& v : c.variants) {
    if (v.nonfinite_images > 0) {
      Finding f;
      f.kind = FindingKind::nonfinite;
      f.severity = 70;
      f.title = v.env + ": NaN or Inf in the output of " + std::to_string(v.nonfinite_images) +
                " image(s)";
      f.variants = {v.env};
      f.reproduce = reproduce(context, f.variants);
      out.push_back(std::move(f));
    }
    if (v.nondeterministic_images > 0) {
      Finding f;
      f.kind = FindingKind::nondeterminism;
      f.severity = 40;
      f.title = v.env + ": repeated runs of the same input differ on " +
                std::to_string(v.nondeterministic_images) + " image(s)";
      f.evidence = "largest difference between the first and last run of an image: " +
                   number(v.max_repeat_diff);
      f.variants = {v.env};
      f.reproduce = reproduce(context, f.variants);
      out.push_back(std::move(f));
    }
    if (v.cv && *v.cv > c.options.max_cv) {
      Finding f;
      f.kind = FindingKind::unstable_timing;
      f.severity = 10;
      f.title =
          v.env + ": timing too noisy to trust (coefficient of variation " + percent(*v.cv) + ")";
      f.evidence = "threshold " + percent(c.options.max_cv) +
                   "; use more --repeat, fewer concurrent jobs, or pin the process";
      f.variants = {v.env};
      f.reproduce = reproduce(context, f.variants);
      out.push_back(std::move(f));
    }
  }
}

}  // namespace

std::vector<Finding> derive_findings(const Comparison& comparison, const FindingContext& context) {
  std::vector<Finding> findings;
  add_failures(findings, context);
  add_pair_findings(findings, comparison, context);
  add_hardware_findings(findings, comparison, context);
  add_variant_findings(findings, comparison, context);
  std::stable_sort(findings.begin(), findings.end(),
                   [](const Finding& x, const Finding& y) { return x.severity > y.severity; });
  return findings;
}

}  // namespace deltann
