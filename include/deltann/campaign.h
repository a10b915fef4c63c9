// A campaign: one model, a dataset and a list of environments, run into one database.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "deltann/campaign_events.h"
#include "deltann/dataset.h"
#include "deltann/spec.h"

namespace deltann {

// Timing precision comes from repeats, label rates from images: the pooled median of 50 images x
// 5 repeats (250 samples) already has a distribution-free 95 % interval between about the 44th and
// the 56th percentile, and an image's cost hardly depends on its content at a fixed input shape,
// while every image counts for the flip rates. So by default every image of a dataset of up to
// 50 (the demo's whole dataset) is timed, and 50 of a larger one (docs/ANALYSIS.md).
inline constexpr int64_t kDefaultTimingImages = 50;

struct CampaignConfig {
  std::filesystem::path model;
  std::optional<std::filesystem::path> spec;  // default: <model>.spec.json when present
  std::filesystem::path images;
  DatasetOptions dataset;
  std::vector<std::string> environments;
  std::filesystem::path db;
  std::filesystem::path cache_dir;   // preprocessed tensors
  std::filesystem::path worker_dir;  // where deltann-worker-<framework> live
  int warmup = 3;                    // untimed runs after the first inference
  int repeat = 5;                    // timed runs per image
  // How many images are timed (warm-up and repeats); the others run once for their outputs.
  // nullopt: every image.
  std::optional<int64_t> timing_images = kDefaultTimingImages;
  // Variants run at a time for the outputs of the images outside the timing sample, each on cores
  // of its own; the timed images then run one variant at a time (docs/ANALYSIS.md, "Concurrent
  // outputs, serial timing"). 1: one pass, one variant after another.
  int jobs = 1;
  int keep_outputs_up_to = 1000;  // store full output vectors when the dataset is this small
  double timeout_s = 120;         // a worker silent this long is declared hung
  double build_timeout_s = 3600;  // a build step (compiler, converter) running longer is stopped
  bool retry_failed = false;      // run variants that failed before again
  // Add the model as another model of the database when the database already holds results of
  // a different model file or spec (otherwise that is refused: see run_campaign).
  bool new_model = false;
  // Wait for another campaign that holds the database's lock instead of refusing to start.
  bool wait_for_lock = false;
  // Run the variants in a random order drawn from this seed, so that drift of the machine (heat,
  // other tenants) does not always favour the variants that run first.
  std::optional<uint64_t> shuffle_seed;
};

struct CampaignOutcome {
  int variants_run = 0;
  int variants_skipped = 0;  // unsupported here or already complete
  int variants_failed = 0;
  int images_ok = 0;
  int images_bad = 0;
  int images_duplicate = 0;  // entries repeating an image already in the dataset, run once
  int64_t images_timed = 0;  // in the timing sample
  int64_t results_written = 0;
};

// One part of a campaign run on its own: a shard of a plan folder (docs/SCALE_OUT.md). What a part
// cannot decide from its own images is decided once, over the whole dataset, and given to it, so
// that the parts together store what one run of the whole campaign stores.
struct CampaignSlice {
  // The dataset entries this part records and runs, by key (in the dataset's order). A duplicate
  // entry must be in the slice of its first copy.
  std::set<std::string> image_keys;
  // The campaign's timing sample, by key, chosen over the whole dataset (timing_sample.h).
  std::set<std::string> timed_keys;
  // Whether full output vectors are stored (`keep_outputs_up_to` against the whole dataset).
  bool keep_outputs = true;
};

// Runs (or resumes) the campaign. Throws Error only for problems that stop everything (the model
// file is missing, the database cannot be opened or is in use by another campaign, the database
// holds results of another model file or spec and `new_model` is not set); everything else is
// recorded and told to `events` as it happens.
// With a `slice`, only that part of the campaign (its images; the variants are
// config.environments as always).
CampaignOutcome run_campaign(const CampaignConfig& config, CampaignObserver& events,
                             const CampaignSlice* slice = nullptr);

// One environment made ready the way a campaign readies its variants: the engine described, the
// knobs resolved, the artifact converted and compiled as the environment says (cached).
struct PreparedEnvironment {
  std::string env;  // canonical, every knob explicit
  std::string framework;
  std::filesystem::path worker;    // deltann-worker-<framework>
  std::filesystem::path artifact;  // what the worker loads
  ModelSpec spec;                  // the artifact's spec (a conversion may change the layout)
  std::vector<std::string> worker_env = {};  // what its knobs ask of the worker's environment
  // The model file a compiling engine (TVM) built the artifact from: the model itself or a
  // conversion's output; empty when the worker loads the model or conversion directly.
  std::filesystem::path compiled_from = {};
};

// Plans `environment` for config.model (config.worker_dir, cache_dir and build_timeout_s are
// used) and builds its artifact. Throws Error saying why it cannot run here (engine not built,
// invalid knob, conversion or compile failure); `events` is told of each artifact step. The
// engines are described once per process however many environments are prepared.
PreparedEnvironment prepare_environment(const CampaignConfig& config, const ModelSpec& spec,
                                        const std::string& environment, CampaignObserver& events);
// The same, with the events said as lines of text (MessageLines) to `say`.
PreparedEnvironment prepare_environment(const CampaignConfig& config, const ModelSpec& spec,
                                        const std::string& environment,
                                        const std::function<void(const std::string&)>& say);

// Folder holding the worker executables: $DELTANN_WORKER_DIR, else the folder of this program in a
// build tree, or <prefix>/lib/deltann when it is installed (src/run/locate.h).
std::filesystem::path default_worker_dir();

}  // namespace deltann
