#include "variant_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>

#include "deltann/classify.h"
#include "deltann/error.h"
#include "host_probe.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

int64_t nanoseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}

// The images of one run request.
using Images = std::span<const ReadyImage>;

constexpr int kTopK = 5;
constexpr int kMaxConsecutiveFailures = 3;

// A batch's results as each image's: every sample is the batch's time divided by the images
// the engine ran in it (the time per image at that batch size, docs/ANALYSIS.md); the first
// inference, the batch's first call, goes with its first image.
std::vector<protocol::RunReply> per_image(protocol::BatchReply batch) {
  std::vector<protocol::RunReply> results = std::move(batch.results);
  std::vector<int64_t> samples;
  for (const int64_t ns : batch.samples_ns) samples.push_back(ns / batch.batch);
  for (auto& r : results) r.samples_ns = samples;
  results.front().first_ns = batch.first_ns;
  return results;
}

}  // namespace

VariantRunner::VariantRunner(const VariantRunContext& context, const PlannedVariant& variant,
                             const StoredVariant& stored, const fs::path& artifact,
                             const std::string& artifact_sha)
    : config_(context.config),
      spec_(context.spec),
      artifact_(fs::absolute(artifact)),
      artifact_sha_(artifact_sha),
      store_(context.store),
      events_(context.events),
      progress_(context.progress),
      keep_outputs_(context.keep_outputs),
      variant_(&variant),
      id_(stored.id),
      need_load_record_(context.record_start_times && !stored.load_ns.has_value()),
      need_first_record_(context.record_start_times && !stored.first_ns.has_value()),
      batch_(batch_size(variant.env)) {}

VariantRunner::~VariantRunner() { stop(); }

bool VariantRunner::run_all(const std::vector<ReadyImage>& todo) {
  for (const ImageGroup& group : group_images(todo, batch_))
    if (!run(Images(todo.data() + group.begin, group.size()))) return false;
  stop();
  return true;
}

bool VariantRunner::run(Images images) {
  if (abandoned_) return false;
  if (!worker_ && !start()) return false;
  const bool first = !ran_in_process_;
  worker_->send(run_request(images, first));
  const auto reply = worker_->receive(config_.timeout_s);
  const FailureStage stage = first ? FailureStage::first_inference : FailureStage::run;
  bool ok = false;
  if (!reply) {
    record_death(stage, images);
  } else if (reply->value("event", "") == "error") {
    fail(stage, FailureSymptom::error, reply->value("message", ""), images);
  } else {
    ok = store_results(*reply, images, stage);
    if (!ok && abandon_) return abandon("the engine's output does not match the model spec");
  }
  for (size_t i = 0; i < images.size(); ++i) progress_.advance();
  if (ok) {
    consecutive_failures_ = 0;
    ran_in_process_ = true;
  } else if (++consecutive_failures_ >= kMaxConsecutiveFailures) {
    return abandon(std::to_string(kMaxConsecutiveFailures) + " failures in a row");
  }
  return true;
}

bool VariantRunner::load() {
  if (abandoned_) return false;
  return worker_ || start();
}

bool VariantRunner::start() {
  ran_in_process_ = false;
  const auto spawned = Clock::now();
  try {
    // Instruction-set caps and device switches the engine reads once, when it initialises.
    const std::vector<std::string> environment =
        variant_->engine ? worker_environment(*variant_->engine, variant_->env)
                         : std::vector<std::string>{};
    worker_ = std::make_unique<WorkerProcess>(variant_->worker, std::vector<std::string>{"--serve"},
                                              fs::path{}, environment);
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
    record_death(FailureStage::load, {});
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
    // The machine this process runs the variant on, beside the engine's own report (`hardware`):
    // the shards of a campaign run on several nodes each store their own.
    json info = *ready;
    info["host"] = to_json(this_host());
    store_.record_load(id_, loaded.engine_version, artifact_sha_, loaded.load_ns, info.dump());
    need_load_record_ = false;
  }
  return true;
}

// A run request for `images`: at batch 1 one image in the plain form every worker speaks, a
// batch (docs/PROTOCOL.md, "Batches") otherwise. An image outside the timing sample runs once
// (repeat 0: one untimed run) for its output; the sampled images come first, so the warm-up
// precedes the timed runs.
json VariantRunner::run_request(Images images, bool first) const {
  const bool timed = images.front().timed;
  json request = {{"op", "run"},
                  {"first", first},
                  {"warmup", first && timed ? config_.warmup : 0},
                  {"repeat", timed ? config_.repeat : 0}};
  if (batch_ == 1) {
    request["image"] = images.front().key;
    request["tensor"] = images.front().tensor.string();
    return request;
  }
  request["images"] = json::array();
  request["tensors"] = json::array();
  for (const ReadyImage& image : images) {
    request["images"].push_back(image.key);
    request["tensors"].push_back(image.tensor.string());
  }
  return request;
}

// Stores the result of each image of a reply; false when any could not be stored.
bool VariantRunner::store_results(const json& reply, Images images, FailureStage stage) {
  std::vector<protocol::RunReply> results;
  try {
    if (batch_ == 1) {
      results.push_back(protocol::parse_run_reply(reply));
    } else {
      std::vector<std::string> keys;
      for (const ReadyImage& image : images) keys.push_back(image.key);
      results = per_image(protocol::parse_batch_reply(reply, keys));
    }
  } catch (const Error& e) {
    fail(stage, FailureSymptom::error, std::string("unreadable reply: ") + e.what(), images);
    return false;
  }
  for (size_t i = 0; i < images.size(); ++i)
    if (!store_result(std::move(results[i]), images[i], stage)) return false;
  return true;
}

bool VariantRunner::store_result(protocol::RunReply result, const ReadyImage& image,
                                 FailureStage stage) {
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

// `images`: those the worker was running, or none when it died loading.
void VariantRunner::record_death(FailureStage stage, Images images) {
  const WorkerExit exit = worker_->finish();
  std::string log = worker_->log_tail();
  if (log.size() > 1500) log = "..." + log.substr(log.size() - 1500);
  const std::string message = exit.detail + (log.empty() ? "" : "; engine log: " + log);
  if (images.empty())
    fail(stage, exit.symptom, message, nullptr);
  else
    fail(stage, exit.symptom, message, images);
  worker_.reset();
}

// A failure of a run request, recorded for each of its images; in a batch the message names
// the batch, since the failure belongs to it and not to one of its images.
void VariantRunner::fail(FailureStage stage, FailureSymptom symptom, const std::string& message,
                         Images images) {
  std::string where;
  if (batch_ > 1) {
    where = "in a batch of " + std::to_string(images.size()) + " images (";
    for (size_t i = 0; i < images.size(); ++i) where += (i ? ", " : "") + images[i].key;
    where += "): ";
  }
  for (const ReadyImage& image : images) fail(stage, symptom, where + message, &image);
}

// `image`: the image it failed on, or null for a failure of the whole worker (load).
void VariantRunner::fail(FailureStage stage, FailureSymptom symptom, const std::string& message,
                         const ReadyImage* image) {
  store_.record_failure(
      {id_, image ? std::optional(image->id) : std::nullopt, stage, symptom, message});
  events_.on_failure(
      {variant_->text, image ? std::optional(image->key) : std::nullopt, stage, symptom, message});
}

bool VariantRunner::abandon(const std::string& why) {
  stop();
  abandoned_ = true;
  store_.set_variant_status(id_, VariantStatus::failed);
  events_.on_variant_end({variant_->text, "failed", why});
  return false;
}

void VariantRunner::stop() {
  if (!worker_) return;
  worker_->send({{"op", "quit"}});
  worker_->finish();
  worker_.reset();
}

std::vector<ImageGroup> group_images(const std::vector<ReadyImage>& todo, size_t batch) {
  std::vector<ImageGroup> groups;
  for (size_t i = 0; i < todo.size(); ++i) {
    const bool joins = !groups.empty() && groups.back().size() < batch &&
                       todo[groups.back().begin].timed == todo[i].timed;
    if (joins)
      groups.back().end = i + 1;
    else
      groups.push_back({i, i + 1});
  }
  return groups;
}

std::vector<Turn> interleaved_turns(const std::vector<size_t>& requests) {
  const size_t rounds = requests.empty() ? 0 : *std::max_element(requests.begin(), requests.end());
  std::vector<Turn> turns;
  for (size_t round = 0; round < rounds; ++round)
    for (size_t i = 0; i < requests.size(); ++i) {
      const size_t variant = (round + i) % requests.size();
      if (round < requests[variant]) turns.push_back({variant, round});
    }
  return turns;
}

VariantRunOutcome run_variant(const VariantRunContext& context, const PlannedVariant& variant,
                              const StoredVariant& stored, const std::vector<ReadyImage>& todo,
                              const fs::path& artifact, const std::string& artifact_sha) {
  VariantRunner runner(context, variant, stored, artifact, artifact_sha);
  VariantRunOutcome outcome;
  outcome.completed = runner.run_all(todo);
  outcome.results_written = runner.results_written();
  return outcome;
}

}  // namespace deltann
