// The campaign planner: turns the command line's environment strings into variants, each runnable
// or skipped with a reason, and decides what a variant still has to do given what the database
// holds of it. It starts no worker itself: what it knows of the engines comes from the engine
// registry, so it can be tested with engines registered by hand.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "converter.h"
#include "deltann/backend.h"
#include "deltann/campaign.h"
#include "deltann/environment.h"
#include "deltann/outcomes.h"
#include "deltann/spec.h"
#include "engine_registry.h"

namespace deltann {

struct PlannedVariant {
  Environment env;   // resolved: every knob explicit
  std::string text;  // canonical environment string
  std::filesystem::path worker;
  std::string skip_reason;
  std::optional<BackendInfo> engine;  // what the engine said about itself, when it could start
  // The engine's build step (build_<framework>.py), shared by its variants so that the tool
  // describes itself once; null when the engine needs none.
  std::shared_ptr<Builder> builder;
  // The conversion steps that make the artifact from the model's source (empty: the model file
  // itself), and the tool that performs them.
  std::vector<ConversionStep> chain;
  std::shared_ptr<Converter> converter;
};

// The variants of `config.environments` for `config.model`, in order, duplicates removed. A
// malformed string, an invalid knob value or a conversion chain that can never work throws Error
// before any work starts; what cannot run *here* is a variant with a skip reason.
std::vector<PlannedVariant> plan(const CampaignConfig& config, const ModelSpec& spec,
                                 EngineRegistry& registry);

// What a campaign does with a planned variant, given the status the database holds for it
// ("" when it is new).
enum class VariantAction {
  kSkip,          // cannot run here: record the reason (once) and skip it
  kSkipFailed,    // failed in an earlier run and --retry-failed is not set
  kRunRemaining,  // run the images it lacks (none left: it is complete)
};
struct ResumeDecision {
  VariantAction action = VariantAction::kRunRemaining;
  // Its recorded failures are obsolete: images about to be retried, or a plan that no longer
  // applies.
  bool clear_failures = false;
  // Whether images that failed before count as done (they are retried otherwise).
  bool failed_images_done = true;
};
ResumeDecision decide_resume(const PlannedVariant& variant, VariantStatus stored_status,
                             bool retry_failed);

}  // namespace deltann
