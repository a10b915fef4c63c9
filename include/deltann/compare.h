// Pairwise comparison of the variants stored in a campaign database.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deltann/host_info.h"
#include "deltann/outcomes.h"
#include "deltann/stats.h"

namespace deltann {

class Store;
struct CampaignData;

// Thresholds of the analysis; the defaults are what `deltann compare` and the report use.
struct AnalysisOptions {
  double near_tie_gap = 0.1;  // a flip is a near-tie when both relative top-2 gaps are below this
  double atol = 1e-4;         // element-wise |a - b| <= atol + rtol * |b|
  double rtol = 1e-3;
  double confidence = 0.95;    // of every interval
  double alpha = 0.05;         // family-wise significance level of the timing tests (Holm)
  double max_cv = 0.10;        // timing with a larger coefficient of variation is flagged
  double min_slowdown = 0.02;  // a significant slow-down must also exceed this fraction
};

inline constexpr int64_t kBootstrapMaxSamples = 5000;

// What a variant computed on (docs/ENVIRONMENTS.md, "Hardware"): the knobs that choose the
// hardware, the machine the process that ran it recorded, and what the engine reported at load.
struct DeviceIdentity {
  std::string isa = "native";  // the `isa` knob's value; "native" where it is unset or absent
  std::string device = "cpu";  // the `device` knob's value; "cpu" where it is unset or absent
  // The machine, as recorded when the variant loaded; none for a variant that never loaded or was
  // stored by an older deltann (then `note` says which).
  std::optional<HostIdentity> host;
  // Where the blocks of a variant merged from several shards ran on other machines than `host`
  // (docs/SCALE_OUT.md): each other machine once. Its results then mix hardware.
  std::vector<HostIdentity> other_hosts;
  std::map<std::string, std::string> hardware;  // the engine's `hardware` report at load
  std::string note;                             // why `host` is none, or what could not be read

  // The device that computed, beyond the CPU: the OpenCL device with its platform for `opencl`
  // devices, the GPUs' names for `cuda`; "" for the CPU.
  std::string accelerator() const;
  // The instruction-set level in effect: the cap, or "native (avx512)" with the CPU's highest
  // level where the engine chose.
  std::string isa_in_effect() const;
  // One line for people: "AMD EPYC, isa native (avx2), device cpu" (+ ": accelerator").
  std::string summary() const;
};

// How two device identities differ, one item per part ("isa native (avx2) vs avx2", "host
// node1 (Xeon ...) vs node2 (EPYC ...)"); empty when they are the same.
std::vector<std::string> device_differences(const DeviceIdentity& a, const DeviceIdentity& b);

struct VariantSummary {
  // The variant's name in this comparison: its environment string, followed by " [model K]" when
  // the database holds results of several models (K indexes Comparison::models from 1), so that
  // variants of different models are never taken for one another.
  std::string env;
  int model = 1;  // index into Comparison::models, from 1
  std::string framework;
  std::map<std::string, std::string> knobs;
  VariantStatus status = VariantStatus::pending;
  std::string engine_version;
  int images = 0;  // images with a stored result
  int failures = 0;
  int labelled_images = 0;  // labelled images with a result: the trials of the accuracies
  int top1_correct = 0;
  int top5_correct = 0;
  std::optional<double> top1_accuracy;  // top1_correct / labelled_images, when any
  std::optional<double> top5_accuracy;
  // Intervals of the accuracies at the options' confidence (stats::rate_interval); none without
  // labelled images.
  std::optional<stats::Interval> top1_accuracy_ci;
  std::optional<stats::Interval> top5_accuracy_ci;
  std::optional<double> compile_ms;  // build step (compiler, converter), when the engine has one
  std::optional<double> load_ms;
  std::optional<double> first_ms;
  std::optional<double> median_ms;  // over all timed samples
  std::optional<double> p90_ms;
  std::optional<double> p99_ms;
  std::optional<double> cv;                     // coefficient of variation of the samples
  std::optional<stats::Interval> median_ci_ms;  // distribution-free interval of the median
  // Percentile-bootstrap interval of the median (1000 resamples, fixed seed), computed when the
  // variant has at most kBootstrapMaxSamples samples; the distribution-free interval above is
  // exact at any size and is the one the tests and findings use.
  std::optional<stats::Interval> median_bootstrap_ci_ms;
  int64_t samples = 0;
  int64_t timed_images = 0;         // images of the timing sample whose samples are pooled
  int nonfinite_images = 0;         // images whose output held NaN or Inf
  int nondeterministic_images = 0;  // images whose repeated runs gave different outputs
  double max_repeat_diff = 0;       // largest |difference| between repeated runs
  // Against the roofline (docs/ANALYSIS.md, "FLOPs and peak"): the model's FLOPs per inference,
  // FLOPs / median_ms, the CPU's peak at the variant's threads, and the achieved share of it.
  std::optional<int64_t> flops;
  std::optional<double> gflops;
  std::optional<double> peak_gflops;
  std::optional<double> peak_share;
  DeviceIdentity device;
};

// A model whose results the database holds (docs/STORAGE.md, table models).
struct ModelSummary {
  int64_t id = 0;
  std::string path;
  std::string sha256;
  std::string spec_source;
  std::optional<int64_t> flops;  // of one inference, as stored when the model ran
  // Whether the file at `path` is still the one that ran: "unchanged", "changed" (another
  // sha256 now) or "missing".
  std::string on_disk;
};

struct PairSummary {
  std::string a, b;  // the variants' names (VariantSummary::env): always of the same model
  int images = 0;    // images both variants have a result for
  int top1_differences = 0;
  std::vector<std::string> differing_images;
  double top5_overlap = 0;  // mean |top5(a) ∩ top5(b)| / 5
  // Images whose top-5 id sets differ (in any member; the order within the five does not count).
  int top5_differences = 0;
  // Intervals of top1_difference_rate() and top5_difference_rate() at the options' confidence
  // (stats::rate_interval): how large the rate over all such images may be, given these.
  std::optional<stats::Interval> top1_difference_ci;
  std::optional<stats::Interval> top5_difference_ci;
  std::optional<double> max_abs_diff;  // over full output vectors, when both were stored
  std::optional<double> mean_abs_diff;
  double top1_difference_rate() const;
  double top5_difference_rate() const;

  // What differs between the two environments: "framework", "opt", "device", "threads",
  // "precision", another knob's name, or "mixed" when more than one thing changed.
  std::string axis;
  // The pair differs in nothing but its hardware: the axis is `isa` or `device` (the same engine,
  // model and other knobs), so a difference is the hardware's (docs/ANALYSIS.md, "Findings").
  bool hardware_axis() const { return axis == "isa" || axis == "device"; }
  // How the two variants' device identities differ (device_differences); empty when they ran on
  // the same machine with the same isa level, device and accelerator.
  std::vector<std::string> device_differences;
  int near_tie_flips = 0;       // top-1 differences where both decisions were near-ties
  int confident_flips = 0;      // the other top-1 differences
  double top5_jaccard = 0;      // mean over images
  double rank_correlation = 0;  // mean over images of metrics::topk_rank_correlation
  // Numeric metrics over full outputs (when both were stored): worst image for relative L2 and
  // cosine, all elements for the tolerance check.
  std::optional<double> relative_l2;
  std::optional<double> cosine;
  std::optional<double> min_atol;           // smallest atol that passes with rtol = 0 (= max |d|)
  std::optional<double> min_rtol;           // smallest rtol that passes with atol = 0
  std::optional<int64_t> failing_elements;  // under the options' atol/rtol
  // Timing: median(b) / median(a) over all samples, its interval and a Mann-Whitney U test.
  std::optional<double> speed_ratio;
  std::optional<stats::Interval> speed_ratio_ci;
  std::optional<double> p_value;  // two-sided Mann-Whitney, for this pair alone
  // p_value adjusted by Holm's method over every timing test of the comparison (all pairs with
  // a p_value): the family whose false alarms `significant` keeps below alpha.
  std::optional<double> p_adjusted;
  bool significant = false;  // p_adjusted < alpha and the interval excludes 1
};

// A pair's top-1 label differences over the images of one natural shift of an expanded set
// (`deltann expand`; docs/ANALYSIS.md, "Differences by transform"): the images of one transform,
// or of one severity. Made only for the images with stored provenance.
struct ShiftSummary {
  std::string a, b;   // the pair (PairSummary::a, b)
  std::string by;     // "transform" or "severity"
  std::string shift;  // the transform ("original", "fog", ...) or the severity ("original", "1"...)
  int images = 0;     // images of this shift that both variants ran
  int top1_differences = 0;
  std::optional<stats::Interval> top1_difference_ci;  // at the options' confidence
  double top1_difference_rate() const;
};

// What a finding is about (docs/ANALYSIS.md, "Findings").
enum class FindingKind {
  failure,
  label_difference,
  numeric_difference,
  slowdown,
  nondeterminism,
  nonfinite,
  unstable_timing,
  hardware,  // a pair differing only in isa or device whose outputs agree: what the axis changed
};
// The kind's name, as --json, the export and the report write it ("label_difference").
std::string_view to_string(FindingKind kind);

// Something a user should look at, with the evidence and a command that reproduces it.
struct Finding {
  FindingKind kind = FindingKind::failure;
  double severity = 0;  // ranks the list: higher first
  std::string title;
  std::string evidence;
  std::vector<std::string> variants;
  std::vector<std::string> images;
  std::string reproduce;
};

// An image of the dataset that no variant ran: missing, unreadable, undecodable, a duplicate, a
// bad label... (the images table's rows whose status is not "ok").
struct UnusableImage {
  std::string key;
  std::string path;
  std::string reason;
};

struct Comparison {
  std::vector<ModelSummary> models;  // in the order of VariantSummary::model
  // What a reader must know before trusting the numbers (e.g. a model file changed since).
  std::vector<std::string> warnings;
  std::vector<VariantSummary> variants;
  std::vector<PairSummary> pairs;  // every pair of one model with an image in common, a before b
  // Per pair (in the order of `pairs`), by transform and then by severity, when the campaign
  // holds provenance (an expanded set); empty otherwise.
  std::vector<ShiftSummary> shifts;
  int labelled_images = 0;
  std::vector<UnusableImage> unusable_images;  // in database order
  std::vector<Finding> findings;               // ranked, most severe first
  AnalysisOptions options;
  std::map<std::string, std::string> meta;  // the database's meta table (host, model, ...)

  // Pairs with a timing test (a p-value): the family over which p_adjusted is adjusted.
  int timing_tests() const;
};

// The analysis of a campaign read with load_campaign (deltann/campaign_data.h); the campaign must
// hold the full outputs for the numeric metrics of the pairs.
Comparison compare_variants(const CampaignData& campaign, const AnalysisOptions& options = {});
// Reads the campaign from `store` and analyses it.
Comparison compare_variants(const Store& store, const AnalysisOptions& options = {});

// What changed between two environment strings (the `axis` of a pair).
std::string axis_between(const std::string& env_a, const std::string& env_b);
nlohmann::json to_json(const Comparison& comparison);
// The same document as to_json(comparison).dump(2) with invalid UTF-8 replaced by U+FFFD, byte for
// byte (no final line break), written as it is produced: the per-pair and per-finding arrays of a
// large campaign (tens of megabytes) are never held in memory as one document or one string.
void write_json(const Comparison& comparison, std::ostream& out);
nlohmann::json to_json(const Finding& finding);
nlohmann::json to_json(const AnalysisOptions& options);
// How `deltann compare` prints for people.
struct TerminalOptions {
  int width = 100;      // columns every line fits in (at least 60)
  bool matrix = false;  // print the variant x variant matrix even when it is wider
};
// Findings first, then a summary per axis, the most different pairs, the variants and, when it
// fits (or is asked for), the matrix of top-1 differences. --json holds everything.
void print_comparison(const Comparison& comparison, std::ostream& out,
                      const TerminalOptions& options = {});

// Percentile by linear interpolation between closest ranks (p in [0,100]); values is sorted.
using stats::percentile_sorted;

}  // namespace deltann
