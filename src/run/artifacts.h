// A variant's artifact: what its worker loads. The model file itself, or what the variant's
// conversion chain (stage "convert") and its engine's compile step (stage "compile") made from
// the model's source, each step cached by a content hash (docs/CONVERSIONS.md, docs/PROTOCOL.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "deltann/campaign_events.h"
#include "deltann/outcomes.h"
#include "deltann/spec.h"
#include "planner.h"

namespace deltann {

struct VariantArtifact {
  std::filesystem::path file;
  std::string sha;
  ModelSpec spec;
  nlohmann::json report;  // {"conversion": [step reports], ...the compile step's report}
  int64_t build_ns = 0;   // conversion steps + compile, as first measured (also when cached)
  std::filesystem::path compiled_from;  // what a compiling engine built `file` from; else empty
};

// Why a variant's artifact could not be made.
struct ArtifactFailure {
  FailureStage stage = FailureStage::convert;  // convert | compile
  FailureSymptom symptom = FailureSymptom::error;
  std::string message;
};

// Makes the artifact of `variant` from config.model (content hash `model_sha`) with spec `spec`,
// telling `events` of each step. Returns the failure when a step fails.
std::optional<ArtifactFailure> build_artifact(const PlannedVariant& variant,
                                              const CampaignConfig& config, const ModelSpec& spec,
                                              const std::string& model_sha, VariantArtifact& made,
                                              CampaignObserver& events);

}  // namespace deltann
