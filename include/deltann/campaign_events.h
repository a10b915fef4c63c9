// What a running campaign tells its subscribers, as typed events rather than lines of text: the
// terminal display, `bisect` counting builds, the JSON event log and the tests are subscribers
// alike (docs/PROTOCOL.md, "Campaign events"). Every handler has an empty default, so a
// subscriber overrides only what it reads.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "deltann/outcomes.h"

namespace deltann {

// The campaign's plan, once, before any work.
struct PlanEvent {
  int variants = 0;  // after `knob=each` expansion and deduplication
  int runnable = 0;  // of them, those that can run here
  int images = 0;
  int labelled = 0;
  std::string layout;  // of the dataset
  std::string model;   // the spec's model name
};

// One step that made a variant's artifact: a conversion (`onnx>tflite`) or the engine's compile.
struct ArtifactEvent {
  std::string variant;
  std::string step;  // "<from>><to>" for a conversion, "compile" for the build tool
  std::string tool;  // the converter that performed a conversion; "" for a compile
  bool cached = false;
  int64_t duration_ns = 0;  // as measured when the artifact was made (also when cached)
};

struct VariantStartEvent {
  std::string variant;
  int64_t images = 0;  // those it still lacks
};

// A variant's worker started and loaded its artifact: once per worker process (a worker that died
// is restarted for the remaining images).
struct WorkerLoadedEvent {
  std::string variant;
  int64_t start_ns = 0;  // from starting the process to its load reply, as the campaign measured
  int64_t load_ns = 0;   // of that, the engine's load as the worker measured it
};

// The dataset's images are preprocessed (or found in the cache) and each has its database row.
struct ImagesReadyEvent {
  int64_t usable = 0;
  int64_t unusable = 0;
};

// One image's result stored.
struct ResultEvent {
  std::string variant;
  std::string image;
  bool timed = false;  // it ran with warm-up and repeats (the timing sample), not once
  // Time spent handing the result to the database: usually a buffer append, a batch commit every
  // 64 results (docs/STORAGE.md).
  int64_t store_ns = 0;
};

// A failure recorded for a variant: while making its artifact (stage convert or compile), loading
// it, or on one image.
struct FailureEvent {
  std::string variant;
  std::optional<std::string> image;
  FailureStage stage = FailureStage::run;  // any but plan: a skipped variant ends, it does not fail
  FailureSymptom symptom = FailureSymptom::error;
  std::string message;
};

// Every variant is finished with and the database is flushed; what follows is the analysis.
struct CampaignEndEvent {
  int64_t results = 0;  // written by this run
};

struct VariantEndEvent {
  std::string variant;
  // done: ran to the end; failed: abandoned or its artifact failed; skipped: cannot run here or
  // failed before; complete: nothing left to run from an earlier campaign.
  std::string status;
  // Why it was skipped or abandoned; empty when a failure event has already said why.
  std::string reason;
};

// A campaign run with --jobs N > 1 runs in two phases: every variant's images outside the timing
// sample run once for their outputs, N variants at a time ("outputs"), and then each variant's
// timed images run alone, one variant after another ("timing"), so that no timed run shares the
// machine with another job (docs/ANALYSIS.md, "Concurrent outputs, serial timing"). Told as each
// phase begins; a campaign with --jobs 1 runs in one pass and tells no phase.
struct PhaseEvent {
  std::string phase;  // "outputs" | "timing"
  int jobs = 1;       // variants at a time
};

class CampaignObserver {
 public:
  virtual ~CampaignObserver() = default;
  virtual void on_plan(const PlanEvent&) {}
  virtual void on_artifact(const ArtifactEvent&) {}
  virtual void on_images_ready(const ImagesReadyEvent&) {}
  virtual void on_phase(const PhaseEvent&) {}
  virtual void on_variant_start(const VariantStartEvent&) {}
  virtual void on_worker_loaded(const WorkerLoadedEvent&) {}
  virtual void on_result(const ResultEvent&) {}
  virtual void on_failure(const FailureEvent&) {}
  virtual void on_variant_end(const VariantEndEvent&) {}
  virtual void on_campaign_end(const CampaignEndEvent&) {}
  // Inferences done (with a result or a failure) out of the campaign's total, and an estimate of
  // the time left.
  virtual void on_progress(int64_t /*done*/, int64_t /*total*/, double /*eta_s*/) {}
  // A remark for the person running the campaign (an image skipped, a database lock waited for)
  // that no program reads.
  virtual void on_note(const std::string&) {}
};

// Passes every event to each of its subscribers in turn.
class CampaignEventFanout final : public CampaignObserver {
 public:
  void subscribe(CampaignObserver& observer) { observers_.push_back(&observer); }
  void on_plan(const PlanEvent& e) override;
  void on_artifact(const ArtifactEvent& e) override;
  void on_images_ready(const ImagesReadyEvent& e) override;
  void on_phase(const PhaseEvent& e) override;
  void on_variant_start(const VariantStartEvent& e) override;
  void on_worker_loaded(const WorkerLoadedEvent& e) override;
  void on_result(const ResultEvent& e) override;
  void on_failure(const FailureEvent& e) override;
  void on_variant_end(const VariantEndEvent& e) override;
  void on_campaign_end(const CampaignEndEvent& e) override;
  void on_progress(int64_t done, int64_t total, double eta_s) override;
  void on_note(const std::string& line) override;

 private:
  std::vector<CampaignObserver*> observers_;
};

// Passes every event to one subscriber, one event at a time, whichever thread tells it: the
// variants of a campaign with --jobs N > 1 run on N threads, and subscribers (a progress line, an
// event file) are written for one.
class SerializedObserver final : public CampaignObserver {
 public:
  explicit SerializedObserver(CampaignObserver& observer) : observer_(observer) {}
  void on_plan(const PlanEvent& e) override;
  void on_artifact(const ArtifactEvent& e) override;
  void on_images_ready(const ImagesReadyEvent& e) override;
  void on_phase(const PhaseEvent& e) override;
  void on_variant_start(const VariantStartEvent& e) override;
  void on_worker_loaded(const WorkerLoadedEvent& e) override;
  void on_result(const ResultEvent& e) override;
  void on_failure(const FailureEvent& e) override;
  void on_variant_end(const VariantEndEvent& e) override;
  void on_campaign_end(const CampaignEndEvent& e) override;
  void on_progress(int64_t done, int64_t total, double eta_s) override;
  void on_note(const std::string& line) override;

 private:
  CampaignObserver& observer_;
  std::mutex mutex_;
};

// Says every event that a person should read as one line of text (the lines `deltann run`
// prints), handed to `sink`. Results and progress are left to the progress display.
class MessageLines : public CampaignObserver {
 public:
  explicit MessageLines(std::function<void(const std::string&)> sink) : sink_(std::move(sink)) {}
  void on_plan(const PlanEvent& e) override;
  void on_artifact(const ArtifactEvent& e) override;
  void on_phase(const PhaseEvent& e) override;
  void on_variant_start(const VariantStartEvent& e) override;
  void on_failure(const FailureEvent& e) override;
  void on_variant_end(const VariantEndEvent& e) override;
  void on_note(const std::string& line) override;

 private:
  std::function<void(const std::string&)> sink_;
};

// Writes every event as one JSON object per line ({"event": "result", "variant": ..., ...}),
// flushed as it happens, for programs that follow a campaign (`deltann run --events FILE`). Each
// carries "t", when it was written in seconds since the Unix epoch (microseconds), so that a
// program can tell how long each phase of the campaign took (bench/campaign_overhead).
class JsonEventLog final : public CampaignObserver {
 public:
  explicit JsonEventLog(std::ostream& out) : out_(out) {}
  void on_plan(const PlanEvent& e) override;
  void on_artifact(const ArtifactEvent& e) override;
  void on_images_ready(const ImagesReadyEvent& e) override;
  void on_phase(const PhaseEvent& e) override;
  void on_variant_start(const VariantStartEvent& e) override;
  void on_worker_loaded(const WorkerLoadedEvent& e) override;
  void on_result(const ResultEvent& e) override;
  void on_failure(const FailureEvent& e) override;
  void on_variant_end(const VariantEndEvent& e) override;
  void on_campaign_end(const CampaignEndEvent& e) override;
  void on_note(const std::string& line) override;

 private:
  std::ostream& out_;
};

}  // namespace deltann
