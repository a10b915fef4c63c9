// Runs one variant of a campaign: its worker process over the images the variant still lacks,
// every result and failure stored, the worker restarted after a death until it has failed
// kMaxConsecutiveFailures times in a row.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "deltann/campaign_events.h"
#include "deltann/spec.h"
#include "deltann/store.h"
#include "locked_store.h"
#include "planner.h"
#include "worker_process.h"

namespace deltann {

// An image of the dataset, preprocessed and in the database.
struct ReadyImage {
  int64_t id;
  std::string key;
  std::filesystem::path tensor;
  std::filesystem::path
      path;            // the image file, for a variant whose spec asks for other preprocessing
  std::string sha256;  // of the file's content
  // In the timing sample: run with warm-up and repeats. Otherwise it runs once, for its output.
  bool timed = false;
};

// The images one run request carries: todo[begin, end).
struct ImageGroup {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
  bool operator==(const ImageGroup&) const = default;
};

// `todo` cut into the groups a variant of batch size `batch` sends (docs/PROTOCOL.md, "Batches"):
// at most `batch` images each, in order, and never a timed image with an untimed one, so that a
// batch is either timed with warm-up and repeats or run once for its outputs. At batch 1, one
// group per image.
std::vector<ImageGroup> group_images(const std::vector<ReadyImage>& todo, size_t batch);

// Counts inferences done (with a result or a failure) against the campaign's total and tells the
// subscribers, with an estimate of the time left. The job threads of a campaign share it.
class Progress {
 public:
  Progress(CampaignObserver& events, int64_t total) : events_(events), total_(total) {}
  void advance() {
    const std::lock_guard hold(mutex_);
    ++done_;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta =
        done_ > 0 ? elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_) : 0;
    events_.on_progress(done_, total_, eta);
  }

 private:
  CampaignObserver& events_;
  int64_t total_;
  int64_t done_ = 0;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Where a variant's run goes: its row and what it runs.
struct VariantRunContext {
  const CampaignConfig& config;
  const ModelSpec& spec;  // the artifact's
  LockedStore& store;
  CampaignObserver& events;  // safe to tell from several threads
  Progress& progress;
  bool keep_outputs;  // store full output vectors
  // Store the worker's load time and the first inference's time when the variant has none yet.
  // False while other jobs share the machine (the outputs phase of --jobs N > 1): those times
  // would be measured under contention.
  bool record_start_times = true;
};

struct VariantRunOutcome {
  bool completed = false;  // false: abandoned (recorded as failed)
  int64_t results_written = 0;
};

// Runs `variant` (stored as `stored`) on `todo` with the artifact `artifact`, recording every
// result and failure. Tells `events` of each result and failure; when it abandons the variant, it
// marks it failed and ends it with a variant_end event saying why. A variant that ran to the end
// is ended by the caller, which knows whether another phase follows.
VariantRunOutcome run_variant(const VariantRunContext& context, const PlannedVariant& variant,
                              const StoredVariant& stored, const std::vector<ReadyImage>& todo,
                              const std::filesystem::path& artifact,
                              const std::string& artifact_sha);

}  // namespace deltann
