// Turns a comparison into the ranked list of findings (docs/ANALYSIS.md, "Findings").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "deltann/compare.h"
#include "deltann/store.h"

namespace deltann {

struct FindingContext {
  std::string model;   // model path, for the reproduce commands
  std::string images;  // dataset path
  std::string spec;    // spec file given to the campaign; empty when it used the default
  std::map<std::string, int64_t> variant_ids;  // by the variant's name in the comparison
  // By the variant's name: its environment string and its model's path (a database may hold
  // several models).
  std::map<std::string, std::string> environment;
  std::map<std::string, std::string> model_of;
  std::map<int64_t, std::string> image_keys;
  // Per engine, its opt values from the least to the most optimisation.
  std::map<std::string, std::vector<std::string>> opt_order;
  std::vector<StoredFailure> failures;
};

std::vector<Finding> derive_findings(const Comparison& comparison, const FindingContext& context);

}  // namespace deltann
