// The campaign: plan the variants (planner), make each one's artifact (artifacts), run it in its
// worker (variant runner), all into one database, telling the subscribers of each step
// (campaign_events.h).
#include "deltann/campaign.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "artifacts.h"
#include "deltann/db_lock.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/store.h"
#include "deltann/version.h"
#include "engine_registry.h"
#include "host_probe.h"
#include "job_slots.h"
#include "locate.h"
#include "locked_store.h"
#include "peak_benchmark.h"
#include "planner.h"
#include "provenance.h"
#include "timing_sample.h"
#include "variant_runner.h"

#ifdef DELTANN_ONNX_FLOPS
#include "core/onnx_flops.h"
#endif

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Why an entry's ground-truth label is no class of the model's output, or "" when it is one.
std::string label_problem(const ImageEntry& image, const OutputSpec& output) {
  if (!image.label || (*image.label >= 0 && *image.label < output.classes)) return "";
  return "label " + std::to_string(*image.label) + " is out of range: the output spec has " +
         std::to_string(output.classes) + " classes (0-" + std::to_string(output.classes - 1) + ")";
}

std::string host_description() {
  utsname u{};
  ::uname(&u);
  const HostIdentity& host = this_host();
  return std::string(u.nodename) + " " + u.sysname + " " + u.release + " " + u.machine + ", " +
         host.cpu_model + ", " + std::to_string(host.logical_cores) + " cores";
}

// Floating-point operations of one inference of the model as the spec feeds it, stored with the
// model so that the database alone gives every variant's GFLOP/s. A model that cannot be counted
// is still run: the count stays empty and a note says why.
std::optional<int64_t> model_flops(const CampaignConfig& config, const ModelSpec& spec,
                                   CampaignObserver& events) {
#ifdef DELTANN_ONNX_FLOPS
  try {
    return count_model_flops(config.model, spec.input.name, spec.input.shape).total;
  } catch (const Error& e) {
    events.on_note(std::string("note: FLOPs not counted: ") + e.what());
    return std::nullopt;
  }
#else
  (void)config, (void)spec;
  events.on_note("note: FLOPs not counted: this deltann was built without ONNX shape inference");
  return std::nullopt;
#endif
}

// The first few fields (dotted JSON paths) whose values differ between two specs.
void differing_fields(const json& a, const json& b, const std::string& prefix,
                      std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& [k, v] : b.items()) keys.insert(k);
    for (const auto& k : keys)
      differing_fields(a.value(k, json()), b.value(k, json()),
                       prefix.empty() ? k : prefix + "." + k, out);
  } else if (a != b) {
    out.push_back(prefix + " " + (a.is_null() ? "absent" : a.dump()) + " vs " +
                  (b.is_null() ? "absent" : b.dump()));
  }
}

// A database belongs to the model whose results it holds: results of one model file (by content)
// and spec must never sit beside another's as if only the environment changed. Returns the row to
// use, or nullopt when the model is new to the database and may be added.
std::optional<int64_t> existing_model(const std::vector<StoredModel>& models,
                                      const StoredModel& model, const CampaignConfig& config) {
  for (const auto& m : models)
    if (m.sha256 == model.sha256 && m.spec_json == model.spec_json) return m.id;
  if (models.empty() || config.new_model) return std::nullopt;
  const StoredModel& last = models.back();
  std::string what;
  if (last.sha256 != model.sha256) {
    what = "its content differs from the model file whose results it holds (" + last.path +
           ", sha256 " + last.sha256.substr(0, 12) + "...; " + fs::absolute(config.model).string() +
           " has sha256 " + model.sha256.substr(0, 12) + "...)";
  } else {
    std::vector<std::string> fields;
    differing_fields(json::parse(last.spec_json, nullptr, false),
                     json::parse(model.spec_json, nullptr, false), "", fields);
    if (fields.size() > 4) fields.resize(4);
    std::string list;
    for (const auto& f : fields) list += (list.empty() ? "" : "; ") + f;
    what = "the same model file but another spec than its results used (" +
           (last.spec_source.empty() ? std::string("") : "then: " + last.spec_source + ", ") +
           "now: " + model.spec_source + "; differing: " + list + ")";
  }
  throw Error(config.db.string() + " already holds results of another model: " + what +
              ". Give a new --db, or --new-model to add it to this database as a second model "
              "(its variants are then compared only with each other)");
}

// The options of `deltann run` that shaped this campaign's results, as command-line arguments,
// so that a finding's reproduce command gets the same results from any working directory: paths
// absolute, the spec file even when it was the model's sidecar (a copy of the model may lack it),
// the timing always, the rest when not the default.
std::vector<std::string> result_options(const CampaignConfig& config,
                                        const std::optional<fs::path>& spec_file) {
  const CampaignConfig defaults;
  std::vector<std::string> args;
  const auto add = [&](const std::string& option, const std::string& value) {
    args.push_back(option);
    args.push_back(value);
  };
  if (spec_file) add("--spec", spec_file->string());
  if (config.dataset.labels) add("--labels", fs::absolute(*config.dataset.labels).string());
  if (config.dataset.synsets) add("--synsets", fs::absolute(*config.dataset.synsets).string());
  add("--warmup", std::to_string(config.warmup));
  add("--repeat", std::to_string(config.repeat));
  add("--timing-images", timing_images_text(config.timing_images));
  if (fs::absolute(config.cache_dir) != fs::absolute(default_cache_dir()))
    add("--cache", fs::absolute(config.cache_dir).string());
  if (config.keep_outputs_up_to != defaults.keep_outputs_up_to)
    add("--keep-outputs", std::to_string(config.keep_outputs_up_to));
  if (config.timeout_s != defaults.timeout_s) add("--timeout", json(config.timeout_s).dump());
  if (config.build_timeout_s != defaults.build_timeout_s)
    add("--build-timeout", json(config.build_timeout_s).dump());
  if (config.shuffle_seed) add("--shuffle", std::to_string(*config.shuffle_seed));
  return args;
}

void check_config(const CampaignConfig& config) {
  if (config.repeat < 1) throw Error("--repeat must be at least 1");
  if (config.warmup < 0) throw Error("--warmup must not be negative");
  if (config.timing_images && *config.timing_images < 0)
    throw Error("--timing-images must not be negative");
  if (config.timeout_s <= 0) throw Error("--timeout must be positive");
  if (config.build_timeout_s <= 0) throw Error("--build-timeout must be positive");
  // More jobs than cores are refused: two jobs on one core would take turns, not run at once.
  split_cores(allowed_cores(), config.jobs);
  if (!fs::is_regular_file(config.model))
    throw Error("model file " + config.model.string() + " does not exist");
}

PlanEvent plan_event(const std::vector<PlannedVariant>& variants, const Dataset& dataset,
                     const ModelSpec& spec) {
  PlanEvent e;
  e.variants = static_cast<int>(variants.size());
  e.runnable =
      static_cast<int>(std::count_if(variants.begin(), variants.end(), [](const PlannedVariant& v) {
        return v.skip_reason.empty();
      }));
  e.images = static_cast<int>(dataset.images.size());
  e.labelled =
      static_cast<int>(std::count_if(dataset.images.begin(), dataset.images.end(),
                                     [](const ImageEntry& i) { return i.label.has_value(); }));
  e.layout = dataset.layout;
  e.model = spec.name;
  return e;
}

// Refuses a database whose results were timed otherwise: samples taken with other warm-up and
// repeat counts, or over another number of images, would be pooled and compared as if alike.
void check_timing(Store& store, const CampaignConfig& config, const std::string& timing) {
  if (const auto stored = store.meta("timing"); stored && *stored != timing && store.has_results())
    throw Error(config.db.string() + " holds results timed with " + *stored + "; this run asks " +
                timing +
                ", and the samples would be pooled as if alike: give the same --warmup, "
                "--repeat and --timing-images, or a new --db");
}

// What the results were made with, beside them in the database (docs/STORAGE.md).
void write_campaign_meta(Store& store, const CampaignConfig& config, const Dataset& dataset,
                         const ModelSpec& spec, const std::optional<fs::path>& spec_file,
                         const std::string& timing, const std::vector<PlannedVariant>& variants) {
  if (!store.meta("created_at")) {
    store.set_meta("created_at",
                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count()));
  }
  store.set_meta("deltann_version", kVersion);
  store.set_meta("host", host_description());
  store.set_meta("dataset", fs::absolute(config.images).string() + " (" + dataset.layout + ")");
  store.set_meta("images", fs::absolute(config.images).string());
  // The spec file used ("" for the ImageNet defaults), what that was in words, and the options
  // a reproduce command must repeat (docs/STORAGE.md).
  store.set_meta("spec", spec_file ? spec_file->string() : "");
  store.set_meta("spec_source", spec_source_text(config.model, config.spec));
  store.set_meta("run_options", json(result_options(config, spec_file)).dump());
  store.set_meta("preprocessing", preprocessing_description(spec.input));
  store.set_meta("timing", timing);
  // The engines' self-descriptions go with the results: the analysis reads the order of each
  // engine's opt values from them (lowest optimisation first).
  for (const auto& v : variants)
    if (v.engine) store.set_meta("engine:" + v.engine->name, to_json(*v.engine).dump());
}

// Preprocesses the dataset's images (cached) and gives each a row. Every entry gets a row: an
// unusable one with the reason, and a duplicate (the same file named twice in a list, or the same
// content under another path) with the row of its first copy, so that each is listed with the
// results and counted, and each distinct image runs once (docs/DATASETS.md, "Duplicates").
std::vector<ReadyImage> prepare_images(const Dataset& dataset, const ModelSpec& spec, Store& store,
                                       PreprocessCache& cache, CampaignObserver& events,
                                       CampaignOutcome& outcome) {
  std::vector<ReadyImage> ready;
  std::map<std::string, int64_t> row_of_key;
  std::map<std::string, const ReadyImage*> first_with_content;  // sha256 -> its first entry
  const auto duplicate = [&](StoredImage& row, int64_t first, const std::string& message) {
    row.status = ImageStatus::duplicate;
    row.message = message;
    row.duplicate_of = first;
    row_of_key[row.key] = store.ensure_image(row);
    events.on_note("duplicate image: " + row.key + ": " + message + "; it runs once, as the first");
    ++outcome.images_duplicate;
  };
  ready.reserve(dataset.images.size());  // first_with_content points into it
  for (const auto& image : dataset.images) {
    StoredImage row{0, image.key, image.path.string(), "", image.label, ImageStatus::ok, ""};
    const auto unusable = [&](const std::string& message) {
      row.status = ImageStatus::error;
      row.message = message;
      row_of_key[row.key] = store.ensure_image(row);
      events.on_note("image skipped: " + message);
      ++outcome.images_bad;
    };
    if (!image.duplicate_of.empty() && row_of_key.count(image.duplicate_of)) {
      duplicate(row, row_of_key.at(image.duplicate_of), image.problem);
      continue;
    }
    const std::string problem = image.usable() ? label_problem(image, spec.output) : image.problem;
    if (!problem.empty()) {
      unusable(image.path.string() + ": " + problem);
      continue;
    }
    try {
      const auto entry = cache.prepare(image.path, spec.input);
      row.sha256 = entry.image_sha256;
      if (const auto first = first_with_content.find(row.sha256);
          first != first_with_content.end()) {
        duplicate(row, first->second->id,
                  "same content as " + first->second->key + " (sha256 " + row.sha256.substr(0, 12) +
                      "...)");
        continue;
      }
      for (const auto& note : entry.notes) row.message += (row.message.empty() ? "" : "; ") + note;
      const int64_t id = store.ensure_image(row);
      row_of_key[row.key] = id;
      ready.push_back({id, image.key, entry.tensor_path, image.path, row.sha256});
      first_with_content[row.sha256] = &ready.back();
      if (!row.message.empty()) events.on_note("note: " + image.key + ": " + row.message);
      ++outcome.images_ok;
    } catch (const Error& e) {
      unusable(e.what());
    }
  }
  return ready;
}

// Marks the images of this run that are timed (the timing sample, timing_sample.h), records the
// sample in the database and puts the timed images first, so that each variant's timed runs
// follow its warm-up (docs/ANALYSIS.md, "Timing sample").
// A slice's images are timed as the whole campaign's sample says (CampaignSlice).
void choose_timed_images(std::vector<ReadyImage>& ready, Store& store, const CampaignConfig& config,
                         const CampaignSlice* slice, CampaignObserver& events,
                         CampaignOutcome& outcome) {
  std::set<int64_t> sampled_before;
  for (const auto& image : store.images())
    if (image.timed) sampled_before.insert(image.id);
  const std::set<int64_t> with_results = store.images_with_results();
  std::vector<SampleCandidate> candidates;
  for (const auto& image : ready)
    candidates.push_back({image.id, image.sha256, image.key, sampled_before.count(image.id) > 0,
                          with_results.count(image.id) > 0});
  std::vector<int64_t> sample;
  if (slice) {
    for (const auto& image : ready)
      if (slice->timed_keys.count(image.key) || sampled_before.count(image.id))
        sample.push_back(image.id);
  } else {
    sample = choose_timing_sample(candidates, config.timing_images);
  }
  const std::set<int64_t> timed(sample.begin(), sample.end());
  std::vector<int64_t> added;
  for (auto& image : ready) {
    image.timed = timed.count(image.id) > 0;
    if (image.timed && !sampled_before.count(image.id)) added.push_back(image.id);
  }
  store.add_to_timing_sample(added);
  std::stable_partition(ready.begin(), ready.end(), [](const ReadyImage& i) { return i.timed; });
  outcome.images_timed = static_cast<int64_t>(timed.size());
  if (timed.size() < ready.size())
    events.on_note("timing: " + std::to_string(timed.size()) + " of " +
                   std::to_string(ready.size()) + " images are timed (--timing-images " +
                   timing_images_text(config.timing_images) +
                   "); the others run once for their outputs");
}

// A variant with images left to run.
struct Job {
  const PlannedVariant* variant;
  StoredVariant stored;
  std::vector<ReadyImage> todo;
};

// Works out what each variant still lacks before anything runs, so that progress has a true
// total; records the variants that are skipped or already complete.
std::vector<Job> remaining_jobs(const std::vector<PlannedVariant>& variants,
                                const std::vector<ReadyImage>& ready, int64_t model_id,
                                Store& store, const CampaignConfig& config,
                                CampaignObserver& events, CampaignOutcome& outcome) {
  std::vector<Job> jobs;
  for (const auto& v : variants) {
    const int64_t id = store.ensure_variant(model_id, v.text, v.env.framework);
    StoredVariant stored;
    for (const auto& s : store.variants())
      if (s.id == id) stored = s;
    const ResumeDecision decision = decide_resume(v, stored.status, config.retry_failed);
    if (decision.action == VariantAction::kSkip) {
      if (stored.status != VariantStatus::skipped) {
        store.record_failure(
            {id, std::nullopt, FailureStage::plan, FailureSymptom::unsupported, v.skip_reason});
        store.set_variant_status(id, VariantStatus::skipped);
      }
      events.on_variant_end({v.text, "skipped", v.skip_reason});
      ++outcome.variants_skipped;
      continue;
    }
    if (decision.action == VariantAction::kSkipFailed) {
      events.on_variant_end(
          {v.text, "skipped", "it failed in an earlier run (use --retry-failed to run it again)"});
      ++outcome.variants_skipped;
      continue;
    }
    if (decision.clear_failures) store.clear_failures(id);
    const auto done = store.completed_images(id, decision.failed_images_done);
    Job job{&v, stored, {}};
    for (const auto& image : ready)
      if (!done.count(image.id)) job.todo.push_back(image);
    if (job.todo.empty()) {
      if (stored.status != VariantStatus::done) store.set_variant_status(id, VariantStatus::done);
      events.on_variant_end({v.text, "complete", ""});
      ++outcome.variants_skipped;
      continue;
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

// Each image prepared for another spec than the campaign's (a converted artifact's), by (image
// row, preprocessing key): the tensor, or why the image cannot be prepared so. Shared by the
// variants, so that each distinct image is prepared (and its file hashed) once per spec.
using OtherSpecTensors = std::map<std::pair<int64_t, std::string>, std::variant<fs::path, Error>>;

// What one campaign shares between its jobs. With --jobs N > 1 the jobs of the outputs phase run
// on N threads: the database, the events and the progress are safe to use from any of them, the
// rest is read only, but for the tensors of other specs (other_spec_lock).
struct CampaignRun {
  const CampaignConfig& config;
  const ModelSpec& spec;
  const std::string& model_sha;
  LockedStore& store;
  PreprocessCache& cache;
  CampaignObserver& events;
  Progress& progress;
  bool keep_outputs;
  OtherSpecTensors other_spec_tensors = {};
  std::mutex other_spec_lock = {};
  std::atomic<int> variants_run = 0;
  std::atomic<int> variants_failed = 0;
  std::atomic<int64_t> results_written = 0;
};

// The images prepared for the artifact's spec: a converted artifact may want other input (TFLite
// is NHWC). An image that cannot be is a failure of that image.
std::vector<ReadyImage> images_for(const Job& job, const std::vector<ReadyImage>& images,
                                   const ModelSpec& artifact_spec, CampaignRun& run) {
  std::vector<ReadyImage> todo;
  const std::string key = artifact_spec.input.preprocessing_key();
  for (auto image : images) {
    if (key != run.spec.input.preprocessing_key()) {
      const std::lock_guard hold(run.other_spec_lock);
      auto [prepared, fresh] = run.other_spec_tensors.try_emplace({image.id, key}, fs::path());
      if (fresh) {
        try {
          prepared->second = run.cache.prepare(image.path, artifact_spec.input).tensor_path;
        } catch (const Error& e) {
          prepared->second = e;
        }
      }
      if (const auto* failed = std::get_if<Error>(&prepared->second)) {
        run.store.record_failure({job.stored.id, image.id, FailureStage::preprocess,
                                  FailureSymptom::error, failed->what()});
        run.events.on_failure({job.variant->text, image.key, FailureStage::preprocess,
                               FailureSymptom::error, failed->what()});
        run.progress.advance();
        continue;
      }
      image.tensor = std::get<fs::path>(prepared->second);
    }
    todo.push_back(std::move(image));
  }
  return todo;
}

// A job's part of one phase: the variant's timed images, or the others.
using ImageFilter = bool (*)(const ReadyImage&);
bool untimed_image(const ReadyImage& image) { return !image.timed; }
bool timed_image(const ReadyImage& image) { return image.timed; }

std::vector<ReadyImage> images_where(const std::vector<ReadyImage>& images, ImageFilter keep) {
  std::vector<ReadyImage> kept;
  for (const auto& image : images)
    if (keep(image)) kept.push_back(image);
  return kept;
}

// Variants timed in turns at once (docs/ANALYSIS.md, "Interleaved timing"). Each keeps its worker
// loaded between its turns, and a loaded worker holds its engine and the model in memory (from
// tens of MB to a few GB for a large model in a heavy engine), so a campaign of many variants is
// timed in groups of this many, one group after another: 8 live workers stay within the memory of
// any machine that runs one of them with room, while a drift of the machine is still shared by 8
// variants at a time.
constexpr size_t kInterleavedVariants = 8;

// A job as it goes through the phases: its artifact once made, its worker while it runs in turns
// with others, and whether it is still running.
struct JobState {
  const Job* job;
  VariantArtifact made = {};
  bool artifact_ready = false;
  bool abandoned = false;
  std::unique_ptr<VariantRunner> runner = {};
};

// Makes the job's artifact. A failure is the variant's result: it is recorded and ends it.
bool make_artifact(JobState& state, CampaignRun& run) {
  const Job& job = *state.job;
  const PlannedVariant& variant = *job.variant;
  run.events.on_variant_start({variant.text, static_cast<int64_t>(job.todo.size())});
  run.store.set_variant_status(job.stored.id, VariantStatus::running);
  if (const auto failed =
          build_artifact(variant, run.config, run.spec, run.model_sha, state.made, run.events)) {
    run.store.record_failure(
        {job.stored.id, std::nullopt, failed->stage, failed->symptom, failed->message});
    run.store.set_variant_status(job.stored.id, VariantStatus::failed);
    run.events.on_failure(
        {variant.text, std::nullopt, failed->stage, failed->symptom, failed->message});
    run.events.on_variant_end({variant.text, "failed", ""});
    ++run.variants_failed;
    for (size_t i = 0; i < job.todo.size(); ++i) run.progress.advance();
    state.abandoned = true;
    return false;
  }
  if (variant.builder || !variant.chain.empty() || state.made.report.contains("open_batch"))
    run.store.record_build(job.stored.id, state.made.build_ns, state.made.report.dump());
  state.artifact_ready = true;
  return true;
}

// The job's images that `keep` selects, prepared for its artifact (made first if need be);
// nullopt when the job has ended.
std::optional<std::vector<ReadyImage>> phase_images(JobState& state, CampaignRun& run,
                                                    ImageFilter keep) {
  if (state.abandoned) return std::nullopt;
  if (!state.artifact_ready && !make_artifact(state, run)) return std::nullopt;
  return images_for(*state.job, images_where(state.job->todo, keep), state.made.spec, run);
}

// A worker for the job. `alone`: no other job runs meanwhile, so its load and first-inference
// times may be stored.
std::unique_ptr<VariantRunner> runner_for(const JobState& state, CampaignRun& run, bool alone) {
  const VariantRunContext context{run.config,
                                  state.made.spec,
                                  run.store,
                                  run.events,
                                  run.progress,
                                  run.keep_outputs,
                                  /*record_start_times=*/alone};
  return std::make_unique<VariantRunner>(context, *state.job->variant, state.job->stored,
                                         state.made.file, state.made.sha);
}

// The runner gave the variant up (it has recorded why and ended it).
void abandon_job(JobState& state, CampaignRun& run) {
  ++run.variants_failed;
  state.abandoned = true;
}

// Stops the job's worker, if it has one, and counts its results.
void close_runner(JobState& state, CampaignRun& run) {
  if (!state.runner) return;
  run.results_written += state.runner->results_written();
  state.runner.reset();
}

// Ends a job that ran through its last phase.
void finish_job(JobState& state, CampaignRun& run) {
  close_runner(state, run);
  if (state.abandoned) return;
  run.store.set_variant_status(state.job->stored.id, VariantStatus::done);
  run.events.on_variant_end({state.job->variant->text, "done", ""});
  ++run.variants_run;
}

// Times the timed images of `group` in turns (docs/ANALYSIS.md, "Interleaved timing"). Each
// variant's worker is loaded alone, one after another, and stays loaded; then round by round
// every variant runs its next timed request (one image at batch 1), the variant that goes first
// rotating from round to round, so that a slow drift of the machine (a noisy neighbour, heat)
// falls on every variant alike instead of on whichever ran while it lasted. A variant's first
// request carries its first inference and warm-up, as when it runs alone. A variant that fails
// stops taking turns (the runner records why); the others go on. The workers stay loaded for
// the caller, which may run the variants' untimed images in them.
void time_interleaved(const std::vector<JobState*>& group, CampaignRun& run) {
  struct Turns {
    JobState* state;
    std::vector<ReadyImage> images;
    std::vector<ImageGroup> requests;
  };
  std::vector<Turns> timed;
  for (JobState* state : group) {
    auto images = phase_images(*state, run, timed_image);
    if (!images || images->empty()) continue;
    state->runner = runner_for(*state, run, /*alone=*/true);
    if (!state->runner->load()) {
      abandon_job(*state, run);
      continue;
    }
    const auto requests = group_images(*images, state->runner->batch());
    timed.push_back({state, std::move(*images), requests});
  }
  std::vector<size_t> requests;
  for (const auto& t : timed) requests.push_back(t.requests.size());
  for (const Turn& turn : interleaved_turns(requests)) {
    Turns& t = timed[turn.variant];
    if (t.state->abandoned) continue;
    const ImageGroup& request = t.requests[turn.request];
    if (!t.state->runner->run({t.images.data() + request.begin, request.size()}))
      abandon_job(*t.state, run);
  }
}

// The jobs in groups of at most kInterleavedVariants, in order.
std::vector<std::vector<JobState*>> interleave_groups(std::vector<JobState>& states) {
  std::vector<std::vector<JobState*>> groups;
  for (size_t i = 0; i < states.size(); ++i) {
    if (i % kInterleavedVariants == 0) groups.emplace_back();
    groups.back().push_back(&states[i]);
  }
  return groups;
}

// One pass (--jobs 1), a group of variants at a time: their timed images in turns, then each
// variant's untimed images in the worker it was timed in.
void run_in_one_pass(std::vector<JobState>& states, CampaignRun& run) {
  for (const auto& group : interleave_groups(states)) {
    time_interleaved(group, run);
    for (JobState* state : group) {
      const auto images = phase_images(*state, run, untimed_image);
      if (images && !images->empty()) {
        if (!state->runner) state->runner = runner_for(*state, run, /*alone=*/true);
        if (!state->runner->run_all(*images)) abandon_job(*state, run);
      }
      finish_job(*state, run);
    }
  }
}

// The outputs phase of a job (--jobs N > 1): makes its artifact and runs its images outside the
// timing sample, while other jobs run beside it.
void run_outputs(JobState& state, CampaignRun& run) {
  const auto images = phase_images(state, run, untimed_image);
  if (!images || images->empty()) return;
  const VariantRunOutcome ran = run_variant(
      {run.config, state.made.spec, run.store, run.events, run.progress, run.keep_outputs,
       /*record_start_times=*/false},
      *state.job->variant, state.job->stored, *images, state.made.file, state.made.sha);
  run.results_written += ran.results_written;
  if (!ran.completed) abandon_job(state, run);
}

// Two phases (--jobs N > 1): the outputs phase makes the artifacts and runs the images outside
// the timing sample on N threads, each pinned to cores of its own and taking the next variant
// when it finishes one; then the timing phase times the variants' timed images in turns
// (time_interleaved), with no other job running, so that no timed run shares the machine.
void run_in_two_phases(std::vector<JobState>& states, CampaignRun& run) {
  const std::vector<std::vector<int>> slots = split_cores(allowed_cores(), run.config.jobs);
  run.events.on_phase({"outputs", run.config.jobs});
  std::atomic<size_t> next = 0;
  std::vector<std::thread> threads;
  for (const auto& cores : slots)
    threads.emplace_back([&run, &states, &next, &cores] {
      try {
        pin_this_thread(cores);
      } catch (const Error& e) {
        run.events.on_note(std::string("note: ") + e.what() + "; this job shares the cores");
      }
      for (size_t i = next++; i < states.size(); i = next++) run_outputs(states[i], run);
    });
  for (auto& thread : threads) thread.join();
  run.events.on_phase({"timing", 1});
  for (const auto& group : interleave_groups(states)) {
    time_interleaved(group, run);
    for (JobState* state : group) finish_job(*state, run);
  }
}

}  // namespace

PreparedEnvironment prepare_environment(const CampaignConfig& config, const ModelSpec& spec,
                                        const std::string& environment, CampaignObserver& events) {
  CampaignConfig one = config;
  one.environments = {environment};
  const std::vector<PlannedVariant> planned =
      plan(one, spec, EngineRegistry::shared(config.worker_dir, config.cache_dir));
  if (planned.size() != 1)
    throw Error("environment '" + environment + "' stands for " + std::to_string(planned.size()) +
                " variants; name one");
  const PlannedVariant& v = planned.front();
  if (!v.skip_reason.empty())
    throw Error("environment '" + v.text + "' cannot run here: " + v.skip_reason);
  VariantArtifact made;
  if (const auto failed = build_artifact(v, config, spec, sha256_file(config.model), made, events))
    throw Error("environment '" + v.text + "': " + std::string(to_string(failed->stage)) +
                " failed (" + std::string(to_string(failed->symptom)) + "): " + failed->message);
  return {v.text,
          v.env.framework,
          v.worker,
          fs::absolute(made.file),
          made.spec,
          v.engine ? worker_environment(*v.engine, v.env) : std::vector<std::string>{},
          made.compiled_from.empty() ? fs::path{} : fs::absolute(made.compiled_from)};
}

PreparedEnvironment prepare_environment(const CampaignConfig& config, const ModelSpec& spec,
                                        const std::string& environment,
                                        const std::function<void(const std::string&)>& say) {
  MessageLines lines(say);
  return prepare_environment(config, spec, environment, lines);
}

fs::path default_worker_dir() {
  if (const char* dir = std::getenv("DELTANN_WORKER_DIR"); dir && *dir) return dir;
  return program_lib_dir();
}

CampaignOutcome run_campaign(const CampaignConfig& config, CampaignObserver& events,
                             const CampaignSlice* slice) {
  check_config(config);
  const ModelSpec spec = load_model_spec(config.model, config.spec);
  const std::optional<fs::path> spec_file = model_spec_file(config.model, config.spec);
  if (!spec_file) events.on_note(default_spec_note(config.model));
  Dataset dataset = load_dataset(config.images, config.dataset);
  if (slice)
    std::erase_if(dataset.images,
                  [&](const ImageEntry& image) { return !slice->image_keys.count(image.key); });
  const std::vector<PlannedVariant> variants =
      plan(config, spec, EngineRegistry::shared(config.worker_dir, config.cache_dir));
  events.on_plan(plan_event(variants, dataset, spec));

  // One campaign at a time writes into a database (docs/STORAGE.md, "Locking").
  const DatabaseLock lock(config.db, "deltann run", config.wait_for_lock,
                          [&](const std::string& line) { events.on_note(line); });
  Store store(config.db);
  const std::string model_sha = sha256_file(config.model);
  const StoredModel model_row{0,
                              fs::absolute(config.model).string(),
                              model_sha,
                              to_json(spec).dump(),
                              spec_source_text(config.model, config.spec),
                              model_flops(config, spec, events)};
  // Checked before anything is written, so that a refused run leaves the database as it was.
  const std::optional<int64_t> known_model = existing_model(store.models(), model_row, config);
  const std::string timing = "warmup=" + std::to_string(config.warmup) +
                             ", repeat=" + std::to_string(config.repeat) +
                             ", timing_images=" + timing_images_text(config.timing_images);
  check_timing(store, config, timing);
  write_campaign_meta(store, config, dataset, spec, spec_file, timing, variants);
  // The denominator of every variant's share of peak, measured before any worker runs.
  store.set_meta("cpu_peak", to_json(cached_cpu_peak(config.cache_dir)).dump());
  const int64_t model_id = store.ensure_model(model_row);
  if (!known_model && store.models().size() > 1)
    events.on_note("note: " + config.db.string() + " now holds " +
                   std::to_string(store.models().size()) +
                   " models; variants are compared only with variants of the same model");

  CampaignOutcome outcome;
  PreprocessCache cache(config.cache_dir);
  for (const auto& note : dataset.notes) events.on_note("note: " + note);
  std::vector<ReadyImage> ready = prepare_images(dataset, spec, store, cache, events, outcome);
  record_expanded_provenance(dataset, store, events);
  choose_timed_images(ready, store, config, slice, events, outcome);
  events.on_images_ready({outcome.images_ok, outcome.images_bad});
  std::vector<Job> jobs = remaining_jobs(variants, ready, model_id, store, config, events, outcome);
  if (config.shuffle_seed) {
    std::mt19937_64 generator(*config.shuffle_seed);
    std::shuffle(jobs.begin(), jobs.end(), generator);
    store.set_meta("variant_order", "shuffled with seed " + std::to_string(*config.shuffle_seed));
  }
  int64_t total = 0;
  for (const auto& job : jobs) total += static_cast<int64_t>(job.todo.size());
  // The job threads of the outputs phase tell the subscribers through this.
  SerializedObserver serialized(events);
  Progress progress(serialized, total);
  const bool keep_outputs =
      slice ? slice->keep_outputs : static_cast<int64_t>(ready.size()) <= config.keep_outputs_up_to;
  LockedStore writes(store);
  CampaignRun run{config, spec, model_sha, writes, cache, serialized, progress, keep_outputs};
  std::vector<JobState> states;
  states.reserve(jobs.size());  // the interleaved timing holds pointers to them
  for (const auto& job : jobs) states.push_back({&job});
  if (config.jobs > 1)
    run_in_two_phases(states, run);
  else
    run_in_one_pass(states, run);
  outcome.variants_run += run.variants_run;
  outcome.variants_failed += run.variants_failed;
  outcome.results_written += run.results_written;
  store.flush();
  events.on_campaign_end({outcome.results_written});
  return outcome;
}

}  // namespace deltann
