#include "deltann/campaign_events.h"

#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>

namespace deltann {
using nlohmann::json;

void CampaignEventFanout::on_plan(const PlanEvent& e) {
  for (auto* o : observers_) o->on_plan(e);
}
void CampaignEventFanout::on_artifact(const ArtifactEvent& e) {
  for (auto* o : observers_) o->on_artifact(e);
}
void CampaignEventFanout::on_images_ready(const ImagesReadyEvent& e) {
  for (auto* o : observers_) o->on_images_ready(e);
}
void CampaignEventFanout::on_phase(const PhaseEvent& e) {
  for (auto* o : observers_) o->on_phase(e);
}
void CampaignEventFanout::on_variant_start(const VariantStartEvent& e) {
  for (auto* o : observers_) o->on_variant_start(e);
}
void CampaignEventFanout::on_worker_loaded(const WorkerLoadedEvent& e) {
  for (auto* o : observers_) o->on_worker_loaded(e);
}
void CampaignEventFanout::on_result(const ResultEvent& e) {
  for (auto* o : observers_) o->on_result(e);
}
void CampaignEventFanout::on_failure(const FailureEvent& e) {
  for (auto* o : observers_) o->on_failure(e);
}
void CampaignEventFanout::on_variant_end(const VariantEndEvent& e) {
  for (auto* o : observers_) o->on_variant_end(e);
}
void CampaignEventFanout::on_campaign_end(const CampaignEndEvent& e) {
  for (auto* o : observers_) o->on_campaign_end(e);
}
void CampaignEventFanout::on_progress(int64_t done, int64_t total, double eta_s) {
  for (auto* o : observers_) o->on_progress(done, total, eta_s);
}
void CampaignEventFanout::on_note(const std::string& line) {
  for (auto* o : observers_) o->on_note(line);
}

// Each call holds the lock while the subscriber handles the event: events from the job threads
// reach it whole and one after another, in the order they took the lock.
void SerializedObserver::on_plan(const PlanEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_plan(e);
}
void SerializedObserver::on_artifact(const ArtifactEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_artifact(e);
}
void SerializedObserver::on_images_ready(const ImagesReadyEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_images_ready(e);
}
void SerializedObserver::on_phase(const PhaseEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_phase(e);
}
void SerializedObserver::on_variant_start(const VariantStartEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_variant_start(e);
}
void SerializedObserver::on_worker_loaded(const WorkerLoadedEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_worker_loaded(e);
}
void SerializedObserver::on_result(const ResultEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_result(e);
}
void SerializedObserver::on_failure(const FailureEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_failure(e);
}
void SerializedObserver::on_variant_end(const VariantEndEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_variant_end(e);
}
void SerializedObserver::on_campaign_end(const CampaignEndEvent& e) {
  const std::lock_guard hold(mutex_);
  observer_.on_campaign_end(e);
}
void SerializedObserver::on_progress(int64_t done, int64_t total, double eta_s) {
  const std::lock_guard hold(mutex_);
  observer_.on_progress(done, total, eta_s);
}
void SerializedObserver::on_note(const std::string& line) {
  const std::lock_guard hold(mutex_);
  observer_.on_note(line);
}

void MessageLines::on_plan(const PlanEvent& e) {
  sink_("plan: " + std::to_string(e.variants) + " variants (" + std::to_string(e.runnable) +
        " runnable here) x " + std::to_string(e.images) + " images (" + std::to_string(e.labelled) +
        " labelled, " + e.layout + " layout) of model " + e.model);
}

void MessageLines::on_artifact(const ArtifactEvent& e) {
  if (e.step == "compile") {
    const std::string ms = std::to_string(e.duration_ns / 1'000'000) + " ms";
    sink_(e.variant +
          (e.cached ? ": artifact from the cache (" + ms + " when built)" : ": compiled in " + ms));
    return;
  }
  sink_(e.variant + ": " + e.step + " by " + e.tool +
        (e.cached ? " from the cache"
                  : " in " + std::to_string(std::lround(static_cast<double>(e.duration_ns) / 1e6)) +
                        " ms"));
}

void MessageLines::on_phase(const PhaseEvent& e) {
  if (e.phase == "outputs")
    sink_("outputs phase: " + std::to_string(e.jobs) +
          " variants at a time run the images outside the timing sample");
  else
    sink_(
        "timing phase: the timed images one inference at a time, the variants taking turns "
        "image by image");
}

void MessageLines::on_variant_start(const VariantStartEvent& e) {
  sink_("running " + e.variant + " on " + std::to_string(e.images) + " images");
}

void MessageLines::on_failure(const FailureEvent& e) {
  // A failure to make the artifact fails the whole variant: its message is given longer.
  const std::string stage(to_string(e.stage));
  if (e.stage == FailureStage::convert || e.stage == FailureStage::compile)
    sink_(e.variant + ": " + stage + " failed: " + e.message.substr(0, 400));
  else
    sink_(e.variant + ": " + stage + " failed (" + std::string(to_string(e.symptom)) +
          "): " + e.message.substr(0, 300));
}

void MessageLines::on_variant_end(const VariantEndEvent& e) {
  if (e.status == "skipped")
    sink_("skipped " + e.variant + ": " + e.reason);
  else if (e.status == "failed" && !e.reason.empty())
    sink_(e.variant + ": abandoned, " + e.reason);
}

void MessageLines::on_note(const std::string& line) { sink_(line); }

namespace {

// Seconds since the Unix epoch, to the microsecond: the wall clock, so that a program that started
// the campaign can place the events on its own clock.
double unix_seconds_now() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return static_cast<double>(us) / 1e6;
}

void write(std::ostream& out, json event) {
  event["t"] = unix_seconds_now();
  // Messages quote engines and file names: bytes that are not UTF-8 become U+FFFD.
  out << event.dump(-1, ' ', false, json::error_handler_t::replace) << '\n' << std::flush;
}

}  // namespace

void JsonEventLog::on_plan(const PlanEvent& e) {
  write(out_, {{"event", "plan"},
               {"variants", e.variants},
               {"runnable", e.runnable},
               {"images", e.images},
               {"labelled", e.labelled},
               {"layout", e.layout},
               {"model", e.model}});
}

void JsonEventLog::on_artifact(const ArtifactEvent& e) {
  write(out_, {{"event", "artifact"},
               {"variant", e.variant},
               {"step", e.step},
               {"tool", e.tool},
               {"cached", e.cached},
               {"duration_ns", e.duration_ns}});
}

void JsonEventLog::on_images_ready(const ImagesReadyEvent& e) {
  write(out_, {{"event", "images_ready"}, {"usable", e.usable}, {"unusable", e.unusable}});
}

void JsonEventLog::on_phase(const PhaseEvent& e) {
  write(out_, {{"event", "phase"}, {"phase", e.phase}, {"jobs", e.jobs}});
}

void JsonEventLog::on_variant_start(const VariantStartEvent& e) {
  write(out_, {{"event", "variant_start"}, {"variant", e.variant}, {"images", e.images}});
}

void JsonEventLog::on_worker_loaded(const WorkerLoadedEvent& e) {
  write(out_, {{"event", "worker_loaded"},
               {"variant", e.variant},
               {"start_ns", e.start_ns},
               {"load_ns", e.load_ns}});
}

void JsonEventLog::on_result(const ResultEvent& e) {
  write(out_, {{"event", "result"},
               {"variant", e.variant},
               {"image", e.image},
               {"timed", e.timed},
               {"store_ns", e.store_ns}});
}

void JsonEventLog::on_failure(const FailureEvent& e) {
  json j = {{"event", "failure"},
            {"variant", e.variant},
            {"stage", to_string(e.stage)},
            {"symptom", to_string(e.symptom)},
            {"message", e.message}};
  if (e.image) j["image"] = *e.image;
  write(out_, j);
}

void JsonEventLog::on_variant_end(const VariantEndEvent& e) {
  write(out_, {{"event", "variant_end"},
               {"variant", e.variant},
               {"status", e.status},
               {"reason", e.reason}});
}

void JsonEventLog::on_campaign_end(const CampaignEndEvent& e) {
  write(out_, {{"event", "campaign_end"}, {"results", e.results}});
}

void JsonEventLog::on_note(const std::string& line) {
  write(out_, {{"event", "note"}, {"text", line}});
}

}  // namespace deltann
