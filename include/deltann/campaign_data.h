// The typed contents of a campaign database, read once and shared by every verb that analyses a
// campaign (compare, report, export, check): the models with their parsed specs, the engines'
// self-descriptions, the images, and each variant's results with its timing samples converted to
// milliseconds and sorted. The verbs never read the tables themselves, so each value is parsed and
// converted in one place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "deltann/backend.h"
#include "deltann/cpu_peak.h"
#include "deltann/spec.h"
#include "deltann/store.h"

namespace deltann {

// One stored result, as the analysis uses it: the timed repetitions are reduced to their count
// and median (the variant keeps them pooled, see CampaignVariant::samples_ms).
struct CampaignResult {
  int64_t image_id = 0;
  std::vector<int> top_ids;  // best first, label offset removed
  std::vector<float> top_scores;
  std::vector<float> output;  // full output; empty when not stored or not loaded
  int64_t samples = 0;        // timed repetitions of this image
  std::optional<double> median_ms;
  int nonfinite = 0;
  std::optional<double> repeat_max_abs_diff;
};

struct CampaignModel {
  StoredModel stored;
  OutputKind output_kind = OutputKind::Logits;  // from the spec; logits when it cannot be read
  // The spec as the run used it; nullopt (and `spec_error` says why) when it cannot be read, e.g.
  // its class-name file is gone.
  std::optional<ModelSpec> spec;
  std::string spec_error;
};

struct CampaignVariant {
  StoredVariant stored;
  // Its name in every output: the environment string, followed by " [model K]" when the database
  // holds several models, so that variants of different models are never taken for one another.
  std::string name;
  int model = 1;                        // index into CampaignData::models, from 1
  std::vector<CampaignResult> results;  // ordered by image id
  // Every timed sample of every image, sorted. Only the images of the timing sample (images.timed)
  // were timed: the others ran once, untimed, and their results hold no samples.
  std::vector<double> samples_ms;
  int64_t timed_images = 0;  // results with timed samples: the variant's share of the sample
};

struct CampaignData {
  std::filesystem::path db_path;
  std::map<std::string, std::string> meta;  // the meta table as stored
  std::vector<CampaignModel> models;        // in id order
  std::vector<StoredImage> images;          // in id order
  std::vector<CampaignVariant> variants;    // in id order
  std::vector<StoredFailure> failures;      // in the order they were recorded
  std::vector<StoredLocalization> localizations;
  // Where each image of an expanded set came from (table image_provenance), by image id; empty
  // for a campaign over other images.
  std::map<int64_t, StoredProvenance> provenance;
  // One core's peak as `deltann run` measured it (meta `cpu_peak`); nullopt for a campaign of an
  // older deltann, or when the value cannot be read (then `problems` says so).
  std::optional<CpuPeak> cpu_peak;
  // Each engine's self-description (meta `engine:<name>`), by engine name.
  std::map<std::string, BackendInfo> engines;
  // What could not be read (an engine description); the data above leaves it out, and the
  // comparison repeats it among its warnings.
  std::vector<std::string> problems;

  const StoredImage* image(int64_t id) const;            // nullptr when there is none
  const CampaignVariant* variant(int64_t id) const;      // by stored id; nullptr when there is none
  std::string meta_value(const std::string& key) const;  // "" when absent
};

struct CampaignLoadOptions {
  bool outputs = true;  // load full output vectors (the pair metrics need them; listings do not)
};

// Reads the whole campaign. Never writes to the store.
CampaignData load_campaign(const Store& store, const CampaignLoadOptions& options = {});

}  // namespace deltann
