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
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "deltann/campaign_events.h"
#include "deltann/spec.h"
#include "deltann/store.h"
#include "locked_store.h"
#include "planner.h"
#include "protocol.h"
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

// One turn of the interleaved timing: variant `variant` sends its request number `request`.
struct Turn {
  size_t variant = 0, request = 0;
  bool operator==(const Turn&) const = default;
};

// The order in which variants that have `requests[v]` timed requests each take their turns
// (docs/ANALYSIS.md, "Interleaved timing"): round i holds every variant's i-th request, starting
// at variant i mod n so that no variant always goes first; a variant with fewer requests drops
// out of the rounds once it has none left.
std::vector<Turn> interleaved_turns(const std::vector<size_t>& requests);

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

// One variant's worker, driven one run request at a time: its images in one go (run_all), or,
// in the interleaved timing of a campaign, a request per turn while the worker stays loaded
// between turns (docs/ANALYSIS.md, "Interleaved timing"). Every result and failure is recorded;
// a worker that dies is restarted at the next request until it has failed
// kMaxConsecutiveFailures times in a row. When it abandons the variant, it marks it failed and
// ends it with a variant_end event saying why; a variant that ran to the end is ended by the
// caller, which knows whether another phase follows.
class VariantRunner {
 public:
  VariantRunner(const VariantRunContext& context, const PlannedVariant& variant,
                const StoredVariant& stored, const std::filesystem::path& artifact,
                const std::string& artifact_sha);
  ~VariantRunner();  // stops the worker
  VariantRunner(const VariantRunner&) = delete;
  VariantRunner& operator=(const VariantRunner&) = delete;

  // Starts the worker unless it runs. False when the variant was abandoned.
  bool load();
  // One run request for `images` (a group of group_images), starting the worker first if need
  // be. False when the variant was abandoned (then and ever after).
  bool run(std::span<const ReadyImage> images);
  // Every image of `todo`, request by request, then stops the worker.
  bool run_all(const std::vector<ReadyImage>& todo);
  // Ends the worker (quit); the next request starts a new one.
  void stop();

  size_t batch() const { return batch_; }
  bool abandoned() const { return abandoned_; }
  int64_t results_written() const { return results_written_; }

 private:
  bool start();
  nlohmann::json run_request(std::span<const ReadyImage> images, bool first) const;
  bool store_results(const nlohmann::json& reply, std::span<const ReadyImage> images,
                     FailureStage stage);
  bool store_result(protocol::RunReply result, const ReadyImage& image, FailureStage stage);
  void record_death(FailureStage stage, std::span<const ReadyImage> images);
  void fail(FailureStage stage, FailureSymptom symptom, const std::string& message,
            std::span<const ReadyImage> images);
  void fail(FailureStage stage, FailureSymptom symptom, const std::string& message,
            const ReadyImage* image);
  bool abandon(const std::string& why);

  const CampaignConfig& config_;
  const ModelSpec& spec_;
  std::filesystem::path artifact_;
  std::string artifact_sha_;
  LockedStore& store_;
  CampaignObserver& events_;
  Progress& progress_;
  bool keep_outputs_;
  const PlannedVariant* variant_;
  int64_t id_;
  std::unique_ptr<WorkerProcess> worker_;
  bool ran_in_process_ = false;
  bool need_load_record_;
  bool need_first_record_;
  bool abandon_ = false;    // the output does not fit the spec: no image can be stored
  bool abandoned_ = false;  // given up: recorded as failed, nothing more runs
  size_t batch_;            // images per run request (the variant's `batch` knob)
  int consecutive_failures_ = 0;
  int64_t results_written_ = 0;
  int nonfinite_ = 0;
};

// Runs `variant` (stored as `stored`) on `todo` with the artifact `artifact` (VariantRunner's
// run_all).
VariantRunOutcome run_variant(const VariantRunContext& context, const PlannedVariant& variant,
                              const StoredVariant& stored, const std::vector<ReadyImage>& todo,
                              const std::filesystem::path& artifact,
                              const std::string& artifact_sha);

}  // namespace deltann
