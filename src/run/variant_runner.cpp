#include "variant_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "deltann/classify.h"
#include "deltann/error.h"
#include "protocol.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

int64_t nanoseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}

constexpr int kTopK = 5;
constexpr int kMaxConsecutiveFailures = 3;

// Runs one variant over the images it still lacks, in its own worker process. Every failure is
// recorded; a worker that dies is restarted for the remaining images until it has failed
// kMaxConsecutiveFailures times in a row.
class VariantRunner {
 public:
  explicit VariantRunner(const VariantRunContext& context)
      : config_(context.config),
        spec_(context.spec),
        store_(context.store),
        events_(context.events),
        progress_(context.progress),
        keep_outputs_(context.keep_outputs),
        record_start_times_(context.record_start_times) {}

  int64_t results_written() const { return results_written_; }

  // Returns false when the variant was abandoned.
  bool run(const PlannedVariant& variant, const StoredVariant& stored,
           const std::vector<ReadyImage>& todo, const fs::path& artifact,
           const std::string& artifact_sha) {
    variant_ = &variant;
    id_ = stored.id;
    artifact_ = fs::absolute(artifact);
    artifact_sha_ = artifact_sha;
    need_load_record_ = record_start_times_ && !stored.load_ns.has_value();
    need_first_record_ = record_start_times_ && !stored.first_ns.has_value();
    int consecutive_failures = 0;
    for (size_t next = 0; next < todo.size();) {
      if (!worker_ && !start()) return false;
      const ReadyImage& image = todo[next];
      const bool first = !ran_in_process_;
      // An image outside the timing sample runs once (repeat 0: one untimed run) for its output;
      // the sampled images come first, so the warm-up precedes the timed runs.
      worker_->send({{"op", "run"},
                     {"image", image.key},
                     {"tensor", image.tensor.string()},
                     {"first", first},
                     {"warmup", first && image.timed ? config_.warmup : 0},
                     {"repeat", image.timed ? config_.repeat : 0}});
      const auto reply = worker_->receive(config_.timeout_s);
      const FailureStage stage = first ? FailureStage::first_inference : FailureStage::run;
      bool ok = false;
      if (!reply) {
        record_death(stage, &image);
      } else if (reply->value("event", "") == "error") {
        fail(stage, FailureSymptom::error, reply->value("message", ""), &image);
      } else {
        ok = store_result(*reply, image, stage);
        if (!ok && abandon_) return abandon("the engine's output does not match the model spec");
      }
      ++next;
      progress_.advance();
      if (ok) {
        consecutive_failures = 0;
        ran_in_process_ = true;
      } else if (++consecutive_failures >= kMaxConsecutiveFailures) {
        return abandon(std::to_string(kMaxConsecutiveFailures) + " failures in a row");
      }
    }
    stop();
    return true;
  }

 private:
  bool start() {
    ran_in_process_ = false;
    const auto spawned = Clock::now();
    try {
      worker_ =
          std::make_unique<WorkerProcess>(variant_->worker, std::vector<std::string>{"--serve"});
    } catch (const Error& e) {
      fail(FailureStage::load, FailureSymptom::error, e.what(), nullptr);
      return abandon("its worker cannot start");
    }
    std::optional<json> ready;
    try {
      ready = load_worker(*worker_, variant_->worker, artifact_, variant_->text, to_json(spec_),
                          config_.timeout_s);
    } catch (const Error& e) {  // a worker of another protocol version
      fail(FailureStage::load, FailureSymptom::error, e.what(), nullptr);
      return abandon("it could not be loaded");
    }
    if (!ready) {
      record_death(FailureStage::load, nullptr);
      return abandon("it could not be loaded");
    }
    if (ready->value("event", "") != "loaded") {
      fail(FailureStage::load, FailureSymptom::error, ready->value("message", ready->dump()),
           nullptr);
      return abandon("it could not be loaded");
    }
    const int64_t start_ns = nanoseconds_since(spawned);
    protocol::LoadReply loaded;
    try {
      loaded = protocol::parse_load_reply(*ready);
    } catch (const Error& e) {
      fail(FailureStage::load, FailureSymptom::error, std::string("unreadable reply: ") + e.what(),
           nullptr);
      return abandon("it could not be loaded");
    }
    events_.on_worker_loaded({variant_->text, start_ns, loaded.load_ns});
    if (need_load_record_) {
      store_.record_load(id_, loaded.engine_version, artifact_sha_, loaded.load_ns, ready->dump());
      need_load_record_ = false;
    }
    return true;
  }

  bool store_result(const json& reply, const ReadyImage& image, FailureStage stage) {
    protocol::RunReply result;
    try {
      result = protocol::parse_run_reply(reply);
    } catch (const Error& e) {
      fail(stage, FailureSymptom::error, std::string("unreadable reply: ") + e.what(), &image);
      return false;
    }
    std::vector<float>& output = result.output;
    const size_t expected = static_cast<size_t>(spec_.output.classes + spec_.output.label_offset);
    if (output.size() != expected) {
      fail(stage, FailureSymptom::error,
           "output has " + std::to_string(output.size()) + " values; the spec expects " +
               std::to_string(expected) + " (" + std::to_string(spec_.output.classes) +
               " classes + label offset " + std::to_string(spec_.output.label_offset) + ")",
           &image);
      abandon_ = true;
      return false;
    }
    if (need_first_record_ && result.first_ns) {
      store_.record_first_inference(id_, *result.first_ns);
      need_first_record_ = false;
    }
    nonfinite_ = static_cast<int>(
        std::count_if(output.begin(), output.end(), [](float v) { return !std::isfinite(v); }));
    TopK top = top_k(output, kTopK, spec_.output.label_offset);
    StoredResult r;
    r.variant_id = id_;
    r.image_id = image.id;
    r.top_ids = std::move(top.ids);
    r.top_scores = std::move(top.scores);
    if (keep_outputs_) r.output = std::move(output);
    r.samples_ns = std::move(result.samples_ns);
    r.nonfinite = nonfinite_;
    r.repeat_max_abs_diff = result.repeat_max_abs_diff;
    const auto storing = Clock::now();
    store_.add_result(std::move(r));
    const int64_t store_ns = nanoseconds_since(storing);
    ++results_written_;
    events_.on_result({variant_->text, image.key, image.timed, store_ns});
    return true;
  }

  void record_death(FailureStage stage, const ReadyImage* image) {
    const WorkerExit exit = worker_->finish();
    std::string log = worker_->log_tail();
    if (log.size() > 1500) log = "..." + log.substr(log.size() - 1500);
    fail(stage, exit.symptom, exit.detail + (log.empty() ? "" : "; engine log: " + log), image);
    worker_.reset();
  }

  // `image`: the image it failed on, or null for a failure of the whole worker (load).
  void fail(FailureStage stage, FailureSymptom symptom, const std::string& message,
            const ReadyImage* image) {
    store_.record_failure(
        {id_, image ? std::optional(image->id) : std::nullopt, stage, symptom, message});
    events_.on_failure({variant_->text, image ? std::optional(image->key) : std::nullopt, stage,
                        symptom, message});
  }

  bool abandon(const std::string& why) {
    stop();
    store_.set_variant_status(id_, VariantStatus::failed);
    events_.on_variant_end({variant_->text, "failed", why});
    return false;
  }

  void stop() {
    if (!worker_) return;
    worker_->send({{"op", "quit"}});
    worker_->finish();
    worker_.reset();
  }

  const CampaignConfig& config_;
  const ModelSpec& spec_;
  fs::path artifact_;
  std::string artifact_sha_;
  LockedStore& store_;
  CampaignObserver& events_;
  Progress& progress_;
  bool keep_outputs_;
  bool record_start_times_;
  const PlannedVariant* variant_ = nullptr;
  int64_t id_ = 0;
  std::unique_ptr<WorkerProcess> worker_;
  bool ran_in_process_ = false;
  bool need_load_record_ = false;
  bool need_first_record_ = false;
  bool abandon_ = false;
  int64_t results_written_ = 0;
  int nonfinite_ = 0;
};

}  // namespace

VariantRunOutcome run_variant(const VariantRunContext& context, const PlannedVariant& variant,
                              const StoredVariant& stored, const std::vector<ReadyImage>& todo,
                              const fs::path& artifact, const std::string& artifact_sha) {
  VariantRunner runner(context);
  VariantRunOutcome outcome;
  outcome.completed = runner.run(variant, stored, todo, artifact, artifact_sha);
  outcome.results_written = runner.results_written();
  return outcome;
}

}  // namespace deltann
