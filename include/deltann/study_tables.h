// The published DeltaNN study's two tables, computed from a campaign's comparison: top-1 label
// differences of every variant against the model's baseline (the study's source framework), and
// the median time per optimisation level with the slow-down against the engine's lowest level.
// Every rate and ratio carries its interval (docs/STUDY.md).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "deltann/stats.h"
#include "deltann/summary_fields.h"

namespace deltann {

struct CampaignData;
struct Comparison;

// One row of the label table: `variant` against its model's baseline.
struct StudyLabelRow {
  int model = 1;           // index into Comparison::models, from 1
  std::string model_path;  // as stored
  std::string baseline;    // environment strings, without the " [model K]" suffix
  std::string variant;
  std::string axis;  // what changed between the two (PairSummary::axis)
  int images = 0;    // images both have a result for
  int top1_differences = 0;
  double top1_difference_rate = 0;
  std::optional<stats::Interval> top1_difference_ci;
  int top5_differences = 0;
  double top5_difference_rate = 0;
  std::optional<stats::Interval> top5_difference_ci;
};

// One row of the timing table: one optimisation level of one engine setting of one model.
struct StudyTimingRow {
  int model = 1;
  std::string model_path;
  std::string engine;   // framework, with its conversion chain ("tvm", "ort@pytorch>onnx")
  std::string setting;  // the other knobs, as in an environment string ("device=cpu,threads=1")
  std::string opt;      // this row's level
  int level = 0;        // its rank in the engine's list of opt values, least optimised first
  std::string variant;  // environment string, without the model suffix
  std::string lowest;   // the variant at the group's lowest level, which the ratio divides by
  int64_t samples = 0;
  std::optional<double> median_ms;
  std::optional<stats::Interval> median_ci_ms;
  // median(this level) / median(lowest level): above 1 is a slow-down. 1 for the lowest level.
  std::optional<double> ratio;
  std::optional<stats::Interval> ratio_ci;
  std::optional<double> p_adjusted;  // Holm-adjusted Mann-Whitney p of the pair with `lowest`
  bool significant = false;          // the comparison's verdict on that pair
};

struct StudyTables {
  std::vector<StudyLabelRow> labels;   // by model, then in variant order
  std::vector<StudyTimingRow> timing;  // by model, engine setting, then level
};

struct StudyOptions {
  // Baseline of each model: the first of these environment strings that names one of the
  // model's variants; when none does, the model's first variant (campaign order).
  std::vector<std::string> baselines;
};

// `comparison` must come from compare_variants(campaign); the engines' opt orders are read from
// the campaign. A group of one opt level (nothing to compare) gives no timing rows.
StudyTables study_tables(const CampaignData& campaign, const Comparison& comparison,
                         const StudyOptions& options = {});

// The columns of the two tables, as the export writes them (JSON keys, CSV columns, docs/EXPORT.md)
// and the report shows them; intervals are `<name>_ci_low` / `<name>_ci_high` companions.
const std::vector<Field<StudyLabelRow>>& study_label_fields();
const std::vector<Field<StudyTimingRow>>& study_timing_fields();

}  // namespace deltann
