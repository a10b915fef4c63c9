// Turns a comparison into the ranked list of findings (docs/ANALYSIS.md, "Findings").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "deltann/compare.h"
#include "deltann/store.h"

namespace deltann {

struct FindingContext {
  // What the reproduce commands repeat: the model and dataset paths, the options of `deltann run`
  // that shaped the results (the campaign's meta `run_options`: --spec, --repeat, --warmup, ...)
  // and the analysis thresholds that shaped the finding (those not at their default).
  std::string model;
  std::string images;
  std::vector<std::string> run_options;
  std::vector<std::string> compare_options;
  std::map<std::string, int64_t> variant_ids;  // by the variant's name in the comparison
  // By the variant's name: its environment string, its model's path and that model's spec file
  // ("" for the ImageNet defaults): a database may hold several models.
  std::map<std::string, std::string> environment;
  std::map<std::string, std::string> model_of;
  std::map<std::string, std::string> spec_of;
  std::map<int64_t, std::string> image_keys;
  // Per engine, its opt values from the least to the most optimisation.
  std::map<std::string, std::vector<std::string>> opt_order;
  std::vector<StoredFailure> failures;
};

std::vector<Finding> derive_findings(const Comparison& comparison, const FindingContext& context);

}  // namespace deltann
