// What the verbs that run one model's environments outside a campaign share (localize, bisect,
// repair, precision): their progress lines and the configuration their workers run with.
#pragma once

#include <filesystem>
#include <iostream>
#include <string>

#include "deltann/campaign.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/text.h"

namespace deltann::cli {

// A progress line on standard error, made safe for the terminal (names come from files).
inline void say(const std::string& line) { std::cerr << terminal_safe(line) << '\n'; }

// The model file and its spec (empty: <model>.spec.json when present), the artifact cache (empty:
// the default), the workers installed next to the binary and their timeout.
inline CampaignConfig model_config(const std::filesystem::path& model, const std::string& spec,
                                   const std::string& cache, double timeout_s) {
  CampaignConfig config;
  config.model = model;
  if (!spec.empty()) config.spec = spec;
  config.cache_dir = cache.empty() ? default_cache_dir() : std::filesystem::path(cache);
  config.worker_dir = default_worker_dir();
  config.timeout_s = timeout_s;
  return config;
}

// The model's spec; says so when none was given and none sits beside the model (the defaults).
inline ModelSpec load_spec_saying_default(const CampaignConfig& config) {
  ModelSpec spec = load_model_spec(config.model, config.spec);
  if (!model_spec_file(config.model, config.spec)) say(default_spec_note(config.model));
  return spec;
}

}  // namespace deltann::cli
