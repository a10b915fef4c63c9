#include "deltann/compare.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "deltann/campaign_data.h"
#include "deltann/environment.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/metrics.h"
#include "deltann/spec.h"
#include "deltann/store.h"
#include "device_identity.h"
#include "findings.h"
#include "roofline.h"

namespace deltann {
namespace {

std::optional<Environment> try_parse(const std::string& env) {
  try {
    return parse_environment(env);
  } catch (const Error&) {
    return std::nullopt;  // a database written by a newer grammar: no axis, still compared
  }
}

VariantSummary summarise_variant(const CampaignVariant& variant,
                                 const std::map<int64_t, std::optional<int>>& labels, int failures,
                                 const AnalysisOptions& options) {
  const StoredVariant& v = variant.stored;
  const std::vector<double>& samples = variant.samples_ms;
  VariantSummary s;
  s.env = variant.name;
  s.model = variant.model;
  s.framework = v.framework;
  if (const auto env = try_parse(v.env)) s.knobs = env->knobs;
  s.device = device_identity(s.knobs, v.info_json);
  s.status = v.status;
  s.engine_version = v.engine_version;
  s.images = static_cast<int>(variant.results.size());
  s.failures = failures;
  if (v.compile_ns) s.compile_ms = static_cast<double>(*v.compile_ns) / 1e6;
  if (v.load_ns) s.load_ms = static_cast<double>(*v.load_ns) / 1e6;
  if (v.first_ns) s.first_ms = static_cast<double>(*v.first_ns) / 1e6;
  int labelled = 0, top1 = 0, top5 = 0;
  for (const auto& r : variant.results) {
    const int64_t image = r.image_id;
    if (r.nonfinite > 0) ++s.nonfinite_images;
    if (r.repeat_max_abs_diff && *r.repeat_max_abs_diff > 0) {
      ++s.nondeterministic_images;
      s.max_repeat_diff = std::max(s.max_repeat_diff, *r.repeat_max_abs_diff);
    }
    const auto label = labels.count(image) ? labels.at(image) : std::nullopt;
    if (!label) continue;
    ++labelled;
    if (!r.top_ids.empty() && r.top_ids[0] == *label) ++top1;
    if (std::find(r.top_ids.begin(), r.top_ids.end(), *label) != r.top_ids.end()) ++top5;
  }
  s.labelled_images = labelled;
  s.top1_correct = top1;
  s.top5_correct = top5;
  if (labelled > 0) {
    s.top1_accuracy = static_cast<double>(top1) / labelled;
    s.top5_accuracy = static_cast<double>(top5) / labelled;
    s.top1_accuracy_ci = stats::rate_interval(top1, labelled, options.confidence);
    s.top5_accuracy_ci = stats::rate_interval(top5, labelled, options.confidence);
  }
  s.samples = static_cast<int64_t>(samples.size());
  s.timed_images = variant.timed_images;
  if (!samples.empty()) {
    s.median_ms = stats::percentile_sorted(samples, 50);
    s.p90_ms = stats::percentile_sorted(samples, 90);
    s.p99_ms = stats::percentile_sorted(samples, 99);
    s.median_ci_ms = stats::median_ci_sorted(samples, options.confidence);
    if (s.samples <= kBootstrapMaxSamples)
      s.median_bootstrap_ci_ms = stats::bootstrap_median_ci(samples, options.confidence, 1000, 1);
    if (const double cv = stats::coefficient_of_variation(samples); !std::isnan(cv)) s.cv = cv;
  }
  return s;
}

// Whether two results of one image name different top-1 classes (a missing top-1 counts as one).
bool top1_differs(const CampaignResult& a, const CampaignResult& b) {
  return a.top_ids.empty() || b.top_ids.empty() || a.top_ids[0] != b.top_ids[0];
}

// The shifts an image belongs to, by transform and by severity, from its provenance.
std::pair<std::string, std::string> shifts_of(const StoredProvenance& p) {
  return {p.transform, p.severity ? std::to_string(*p.severity) : p.transform};
}

// The pair's top-1 differences per transform and per severity, over the images with provenance
// that both ran. Transforms in name order after the originals; severities "original", "1" to "5".
std::vector<ShiftSummary> shift_differences(const PairSummary& pair,
                                            const std::vector<CampaignResult>& a,
                                            const std::vector<CampaignResult>& b,
                                            const std::map<int64_t, StoredProvenance>& provenance,
                                            const AnalysisOptions& options) {
  struct ShiftCount {
    std::string name;
    int images = 0, differences = 0;
  };
  // Keyed for their order: "original" first (a leading space), then the names or severities.
  std::map<std::string, ShiftCount> by_transform, by_severity;
  const auto count = [](std::map<std::string, ShiftCount>& groups, const std::string& shift,
                        bool differs) {
    ShiftCount& group = groups[shift == "original" ? " " : shift];
    group.name = shift;
    ++group.images;
    group.differences += differs ? 1 : 0;
  };
  auto it = b.begin();
  for (const auto& ra : a) {
    while (it != b.end() && it->image_id < ra.image_id) ++it;
    if (it == b.end()) break;
    if (it->image_id != ra.image_id) continue;
    const auto found = provenance.find(ra.image_id);
    if (found == provenance.end()) continue;
    const auto [transform, severity] = shifts_of(found->second);
    const bool differs = top1_differs(ra, *it);
    count(by_transform, transform, differs);
    count(by_severity, severity, differs);
  }
  std::vector<ShiftSummary> shifts;
  const auto add = [&](const char* by, const std::map<std::string, ShiftCount>& groups) {
    for (const auto& [key, group] : groups)
      shifts.push_back({pair.a, pair.b, by, group.name, group.images, group.differences,
                        stats::rate_interval(group.differences, group.images, options.confidence)});
  };
  add("transform", by_transform);
  add("severity", by_severity);
  return shifts;
}

// Label and numeric metrics over the images both variants ran.
void compare_outputs(PairSummary& p, const std::vector<CampaignResult>& a,
                     const std::vector<CampaignResult>& b,
                     const std::map<int64_t, std::string>& keys, OutputKind kind,
                     const AnalysisOptions& options) {
  double overlap_sum = 0, jaccard_sum = 0, rank_sum = 0;
  int rank_count = 0;
  bool outputs = true;
  metrics::NumericDifference total;
  double worst_l2 = 0, worst_cosine = 1, worst_rtol = 0;
  auto it = b.begin();
  for (const auto& ra : a) {
    const int64_t image = ra.image_id;
    while (it != b.end() && it->image_id < image) ++it;
    if (it == b.end()) break;
    if (it->image_id != image) continue;
    const auto& rb = *it;
    ++p.images;
    if (top1_differs(ra, rb)) {
      ++p.top1_differences;
      p.differing_images.push_back(keys.at(image));
      const double gap_a = metrics::top2_relative_gap(ra.top_scores, kind);
      const double gap_b = metrics::top2_relative_gap(rb.top_scores, kind);
      // A NaN gap means a non-finite score: never a near-tie.
      if (gap_a < options.near_tie_gap && gap_b < options.near_tie_gap)
        ++p.near_tie_flips;
      else
        ++p.confident_flips;
    }
    int common = 0;
    for (int id : rb.top_ids)
      common += std::find(ra.top_ids.begin(), ra.top_ids.end(), id) != ra.top_ids.end();
    if (ra.top_ids.size() != rb.top_ids.size() || common != static_cast<int>(rb.top_ids.size()))
      ++p.top5_differences;
    const size_t k = std::max(ra.top_ids.size(), rb.top_ids.size());
    overlap_sum += k == 0 ? 1.0 : static_cast<double>(common) / static_cast<double>(k);
    jaccard_sum += metrics::jaccard(ra.top_ids, rb.top_ids);
    const double rho =
        metrics::topk_rank_correlation(ra.top_ids, ra.top_scores, rb.top_ids, rb.top_scores);
    if (!std::isnan(rho)) {
      rank_sum += rho;
      ++rank_count;
    }
    if (!outputs || ra.output.empty() || ra.output.size() != rb.output.size()) {
      outputs = false;
      continue;
    }
    const auto d = metrics::numeric_difference(ra.output, rb.output, options.atol, options.rtol);
    total.max_abs = std::max(total.max_abs, d.max_abs);
    total.sum_abs += d.sum_abs;
    total.elements += d.elements;
    total.failing += d.failing;
    worst_l2 = std::max(worst_l2, d.relative_l2);
    // std::min would drop a NaN (an output with a NaN or an infinity on one side): keep it.
    worst_cosine = std::isnan(d.cosine) ? d.cosine : std::min(worst_cosine, d.cosine);
    worst_rtol = std::max(worst_rtol, d.min_rtol);
  }
  if (p.images == 0) return;
  p.top1_difference_ci = stats::rate_interval(p.top1_differences, p.images, options.confidence);
  p.top5_difference_ci = stats::rate_interval(p.top5_differences, p.images, options.confidence);
  p.top5_overlap = overlap_sum / p.images;
  p.top5_jaccard = jaccard_sum / p.images;
  p.rank_correlation = rank_count > 0 ? rank_sum / rank_count : 1.0;
  if (outputs && total.elements > 0) {
    p.max_abs_diff = total.max_abs;
    p.mean_abs_diff = total.sum_abs / static_cast<double>(total.elements);
    p.relative_l2 = worst_l2;
    p.cosine = worst_cosine;
    p.min_atol = total.max_abs;
    p.min_rtol = worst_rtol;
    p.failing_elements = total.failing;
  }
}

void compare_timing(PairSummary& p, const std::vector<double>& a, const std::vector<double>& b,
                    const AnalysisOptions& options) {
  if (a.empty() || b.empty()) return;
  const auto ratio = stats::median_ratio_sorted(a, b, options.confidence);
  const auto test = stats::mann_whitney_sorted(a, b);
  p.speed_ratio = ratio.ratio;
  p.speed_ratio_ci = ratio.ci;
  p.p_value = test.p_value;  // `significant` waits for the family: decide_significance
}

// Every timing test of one comparison is one family: Holm's adjustment over all of them, so that
// among the hundreds of pairs of a campaign the chance of any false "significant" stays below
// alpha (docs/ANALYSIS.md, "Multiple comparisons").
void decide_significance(std::vector<PairSummary>& pairs, const AnalysisOptions& options) {
  std::vector<PairSummary*> tested;
  std::vector<double> p_values;
  for (auto& p : pairs)
    if (p.p_value && p.speed_ratio_ci) {
      tested.push_back(&p);
      p_values.push_back(*p.p_value);
    }
  const std::vector<double> adjusted = stats::holm_adjusted(p_values);
  for (size_t i = 0; i < tested.size(); ++i) {
    PairSummary& p = *tested[i];
    p.p_adjusted = adjusted[i];
    p.significant = adjusted[i] < options.alpha &&
                    (p.speed_ratio_ci->low > 1.0 || p.speed_ratio_ci->high < 1.0);
  }
}

ModelSummary model_on_disk(const StoredModel& m) {
  ModelSummary s{m.id, m.path, m.sha256, m.spec_source, m.flops, "unchanged"};
  std::error_code ec;
  if (!std::filesystem::is_regular_file(m.path, ec))
    s.on_disk = "missing";
  else if (sha256_file(m.path) != m.sha256)
    s.on_disk = "changed";
  return s;
}

// The options of `deltann run` that shaped the stored results, as the campaign recorded them
// (meta `run_options`, a JSON array of arguments). A database from before that key was written
// gives at least its spec file.
std::vector<std::string> run_options(const std::map<std::string, std::string>& meta) {
  if (const auto it = meta.find("run_options"); it != meta.end()) {
    try {
      return nlohmann::json::parse(it->second).get<std::vector<std::string>>();
    } catch (const std::exception&) {
      // Unreadable: fall back to what older databases hold.
    }
  }
  if (const auto it = meta.find("spec"); it != meta.end() && !it->second.empty())
    return {"--spec", it->second};
  return {};
}

// Shortest text that reads back to the same double.
std::string exact(double value) {
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  return ec == std::errc() ? std::string(text, end) : std::to_string(value);
}

// The analysis options (src/cli/analysis_options.h) that give these thresholds, for those not at
// their default.
std::vector<std::string> analysis_arguments(const AnalysisOptions& options) {
  const AnalysisOptions defaults;
  std::vector<std::string> args;
  for (const auto& [name, value, fallback] :
       {std::tuple{"--near-tie", options.near_tie_gap, defaults.near_tie_gap},
        std::tuple{"--atol", options.atol, defaults.atol},
        std::tuple{"--rtol", options.rtol, defaults.rtol},
        std::tuple{"--confidence", options.confidence, defaults.confidence},
        std::tuple{"--alpha", options.alpha, defaults.alpha},
        std::tuple{"--max-cv", options.max_cv, defaults.max_cv}})
    if (value != fallback) {
      args.push_back(name);
      args.push_back(exact(value));
    }
  return args;
}

}  // namespace

int Comparison::timing_tests() const {
  return static_cast<int>(std::count_if(
      pairs.begin(), pairs.end(), [](const PairSummary& p) { return p.p_adjusted.has_value(); }));
}

double PairSummary::top1_difference_rate() const {
  return images == 0 ? 0.0 : static_cast<double>(top1_differences) / images;
}

double ShiftSummary::top1_difference_rate() const {
  return images == 0 ? 0.0 : static_cast<double>(top1_differences) / images;
}

double PairSummary::top5_difference_rate() const {
  return images == 0 ? 0.0 : static_cast<double>(top5_differences) / images;
}

std::string axis_between(const std::string& env_a, const std::string& env_b) {
  const auto a = try_parse(env_a), b = try_parse(env_b);
  if (!a || !b) return "mixed";
  if (a->framework != b->framework || a->version != b->version || a->conversion != b->conversion) {
    // Engines have knobs of their own (their opt values mean different things), so a change of
    // engine is the "framework" axis when the settings they share are equal.
    for (const char* shared : {"device", "precision", "threads"})
      if (a->knobs.count(shared) && b->knobs.count(shared) &&
          a->knobs.at(shared) != b->knobs.at(shared))
        return "mixed";
    if (a->framework != b->framework) return "framework";
    return a->version != b->version ? "version" : "conversion";
  }
  std::set<std::string> differing;
  for (const auto& [key, value] : a->knobs)
    if (b->knob(key) != value) differing.insert(key);
  for (const auto& [key, value] : b->knobs)
    if (a->knob(key) != value) differing.insert(key);
  if (differing.size() == 1) return *differing.begin();
  return differing.empty() ? "none" : "mixed";
}

Comparison compare_variants(const Store& store, const AnalysisOptions& options) {
  return compare_variants(load_campaign(store), options);
}

Comparison compare_variants(const CampaignData& campaign, const AnalysisOptions& options) {
  Comparison c;
  c.options = options;
  c.meta = campaign.meta;
  std::map<int64_t, std::optional<int>> labels;
  std::map<int64_t, std::string> keys;
  for (const auto& image : campaign.images) {
    labels[image.id] = image.label;
    keys[image.id] = image.key;
    if (image.label && image.status == ImageStatus::ok) ++c.labelled_images;
    if (image.status != ImageStatus::ok)
      c.unusable_images.push_back({image.key, image.path, image.message});
  }
  for (const auto& cm : campaign.models) {
    const StoredModel& model = cm.stored;
    c.models.push_back(model_on_disk(model));
    if (c.models.back().on_disk != "unchanged")
      c.warnings.push_back("model file " + model.path +
                           (c.models.back().on_disk == "missing"
                                ? " no longer exists"
                                : " has changed since the campaign ran (its sha256 is not the "
                                  "recorded " +
                                      model.sha256.substr(0, 12) +
                                      "...): the results are of the earlier file"));
  }
  for (const auto& problem : campaign.problems) c.warnings.push_back(problem);
  std::map<int64_t, int> failure_counts;
  for (const auto& f : campaign.failures)
    if (f.stage != FailureStage::plan) ++failure_counts[f.variant_id];

  const auto& variants = campaign.variants;
  for (const auto& v : variants) {
    VariantSummary s = summarise_variant(v, labels, failure_counts[v.stored.id], options);
    if (v.model >= 1 && static_cast<size_t>(v.model) <= c.models.size())
      s.flops = c.models[static_cast<size_t>(v.model - 1)].flops;
    const Roofline r = roofline(s.flops, s.median_ms, s.knobs, campaign.cpu_peak);
    s.gflops = r.gflops;
    s.peak_gflops = r.peak_gflops;
    s.peak_share = r.peak_share;
    // A variant whose blocks ran on several machines mixes their hardware in its results.
    if (!s.device.other_hosts.empty())
      c.warnings.push_back(s.env + " ran on " + std::to_string(1 + s.device.other_hosts.size()) +
                           " different machines (its blocks of images were shards on several "
                           "nodes): " +
                           describe_host(*s.device.host) + "; " +
                           describe_host(s.device.other_hosts.front()) +
                           (s.device.other_hosts.size() > 1 ? "; ..." : ""));
    c.variants.push_back(std::move(s));
  }
  std::vector<std::pair<size_t, size_t>> jobs;
  for (size_t a = 0; a < variants.size(); ++a)
    for (size_t b = a + 1; b < variants.size(); ++b)
      if (variants[a].stored.model_id == variants[b].stored.model_id) jobs.emplace_back(a, b);
  std::vector<OutputKind> job_kind;
  for (auto [a, b] : jobs)
    job_kind.push_back(
        campaign.models.empty()
            ? OutputKind::Logits
            : campaign.models[static_cast<size_t>(variants[a].model - 1)].output_kind);
  std::vector<PairSummary> done(jobs.size());
  std::vector<std::vector<ShiftSummary>> done_shifts(jobs.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j; (j = next++) < jobs.size();) {
      const auto [a, b] = jobs[j];
      PairSummary& p = done[j];
      p.a = c.variants[a].env;
      p.b = c.variants[b].env;
      compare_outputs(p, variants[a].results, variants[b].results, keys, job_kind[j], options);
      if (p.images == 0) continue;
      if (!campaign.provenance.empty())
        done_shifts[j] = shift_differences(p, variants[a].results, variants[b].results,
                                           campaign.provenance, options);
      p.axis = axis_between(variants[a].stored.env, variants[b].stored.env);
      p.device_differences = device_differences(c.variants[a].device, c.variants[b].device);
      compare_timing(p, variants[a].samples_ms, variants[b].samples_ms, options);
    }
  };
  // Pairs are independent: spread them over the cores. Each writes only its own slot, so the
  // result does not depend on the schedule.
  std::vector<std::thread> pool;
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (size_t j = 0; j < done.size(); ++j) {
    if (done[j].images == 0) continue;
    c.pairs.push_back(std::move(done[j]));
    for (auto& shift : done_shifts[j]) c.shifts.push_back(std::move(shift));
  }
  decide_significance(c.pairs, options);

  FindingContext context;
  context.model = c.models.empty() ? "" : c.models.front().path;
  context.images = c.meta.count("images") ? c.meta.at("images") : "";
  context.run_options = run_options(c.meta);
  context.compare_options = analysis_arguments(options);
  for (size_t i = 0; i < variants.size(); ++i) {
    const std::string& name = c.variants[i].env;
    const ModelSummary& model = c.models[static_cast<size_t>(c.variants[i].model - 1)];
    context.variant_ids[name] = variants[i].stored.id;
    context.environment[name] = variants[i].stored.env;
    context.model_of[name] = model.path;
    // The spec each model ran with (a file path, or the ImageNet defaults); unknown for models
    // stored before schema version 5, whose runs' --spec then stands.
    if (!model.spec_source.empty())
      context.spec_of[name] = model.spec_source.front() == '/' ? model.spec_source : "";
  }
  for (const auto& [engine, info] : campaign.engines)
    for (const auto& knob : info.knobs)
      if (knob.name == "opt") context.opt_order[engine] = knob.values;
  context.failures = campaign.failures;
  context.image_keys = std::move(keys);  // not needed here any more
  c.findings = derive_findings(c, context);
  return c;
}

}  // namespace deltann
