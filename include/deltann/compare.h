// Pairwise comparison of the variants stored in a campaign database.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace deltann {

class Store;

struct VariantSummary {
  std::string env;
  std::string status;
  std::string engine_version;
  int images = 0;  // images with a stored result
  int failures = 0;
  std::optional<double> top1_accuracy;  // over labelled images with a result
  std::optional<double> top5_accuracy;
  std::optional<double> load_ms;
  std::optional<double> first_ms;
  std::optional<double> median_ms;  // over all timed samples
  std::optional<double> p90_ms;
};

struct PairSummary {
  std::string a, b;
  int images = 0;  // images both variants have a result for
  int top1_differences = 0;
  std::vector<std::string> differing_images;
  double top5_overlap = 0;             // mean |top5(a) ∩ top5(b)| / 5
  std::optional<double> max_abs_diff;  // over full output vectors, when both were stored
  std::optional<double> mean_abs_diff;
  double top1_difference_rate() const;
};

struct Comparison {
  std::vector<VariantSummary> variants;
  std::vector<PairSummary> pairs;  // every pair with an image in common, a before b
  int labelled_images = 0;
};

Comparison compare_variants(Store& store);
nlohmann::json to_json(const Comparison& comparison);
void print_comparison(const Comparison& comparison, std::ostream& out);

// Percentile by linear interpolation between closest ranks (p in [0,100]); values is sorted.
double percentile_sorted(const std::vector<double>& sorted, double p);

}  // namespace deltann
