#include "deltann/campaign.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <variant>

#include <nlohmann/json.hpp>

#include "builder.h"
#include "converter.h"
#include "deltann/backend.h"
#include "deltann/classify.h"
#include "deltann/db_lock.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/store.h"
#include "deltann/text.h"
#include "deltann/version.h"
#include "protocol.h"
#include "worker_process.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kTopK = 5;
constexpr int kMaxConsecutiveFailures = 3;

struct PlannedVariant {
  Environment env;   // resolved: every knob explicit
  std::string text;  // canonical environment string
  fs::path worker;
  std::string skip_reason;
  std::optional<BackendInfo> engine;  // what the engine said about itself, when it could start
  // The engine's build step (build_<framework>.py), shared by its variants so that the tool
  // describes itself once per campaign; null when the engine needs none.
  std::shared_ptr<Builder> builder;
  // The conversion steps that make the artifact from the model's source (empty: the model file
  // itself), and the tool that performs them.
  std::vector<ConversionStep> chain;
  std::shared_ptr<Converter> converter;
};

struct ReadyImage {
  int64_t id;
  std::string key;
  fs::path tensor;
  fs::path path;  // the image file, for a variant whose spec asks for other preprocessing
};

// Why an entry's ground-truth label is no class of the model's output, or "" when it is one.
std::string label_problem(const ImageEntry& image, const OutputSpec& output) {
  if (!image.label || (*image.label >= 0 && *image.label < output.classes)) return "";
  return "label " + std::to_string(*image.label) + " is out of range: the output spec has " +
         std::to_string(output.classes) + " classes (0-" + std::to_string(output.classes - 1) + ")";
}

std::string worker_name(const std::string& framework) { return "deltann-worker-" + framework; }

std::vector<std::string> built_engines(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("deltann-worker-", 0) == 0) names.push_back(name.substr(15));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string host_description() {
  utsname u{};
  ::uname(&u);
  std::string cpu;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  return std::string(u.nodename) + " " + u.sysname + " " + u.release + " " + u.machine + ", " +
         cpu + ", " + std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) + " cores";
}

// What an engine offers here: its worker's self-description with the knobs of its build tool (if
// it has one) merged in, or why it cannot run.
struct EngineOffer {
  std::optional<BackendInfo> info;
  std::shared_ptr<Builder> builder;
  std::string unavailable;
};

EngineOffer describe_engine(const std::string& framework, const fs::path& worker,
                            const fs::path& worker_dir) {
  EngineOffer offer;
  if (!fs::exists(worker)) {
    std::string built;
    for (const auto& name : built_engines(worker_dir)) built += (built.empty() ? "" : ", ") + name;
    offer.unavailable = "engine '" + framework + "' is not built into this deltann (built: " +
                        (built.empty() ? "none" : built) + ")";
    return offer;
  }
  try {
    BackendInfo info = backend_info_from_json(describe_worker(worker));
    if (auto found = Builder::find(framework)) offer.builder = std::make_shared<Builder>(*found);
    if (offer.builder)
      for (const auto& knob : offer.builder->knobs()) {
        const auto same = std::find_if(info.knobs.begin(), info.knobs.end(),
                                       [&](const Knob& k) { return k.name == knob.name; });
        if (same == info.knobs.end())
          info.knobs.push_back(knob);
        else
          *same = knob;  // the build tool knows the valid build settings
      }
    offer.info = std::move(info);
  } catch (const std::exception& e) {
    offer.unavailable = std::string("engine '") + framework + "' cannot start: " + e.what();
  }
  return offer;
}

// `knob=each` on a set knob stands for one variant per member, e.g. each pass of an opt level
// switched off in turn.
std::vector<Environment> expand_each(const Environment& env, EngineOffer& offer) {
  if (!offer.info) return {env};
  for (const auto& knob : offer.info->knobs) {
    if (!knob.subset || env.knob(knob.name) != "each") continue;
    // Per-level members: the build tool's table (TVM), else the worker's own (ORT), else all.
    std::vector<std::string> members =
        offer.builder ? offer.builder->each_members(knob.name, env) : knob.values;
    if (!offer.builder)
      if (auto row = each_members(*offer.info, knob.name, env)) members = std::move(*row);
    if (members.empty())
      throw Error("environment '" + env.to_string() + "': knob '" + knob.name +
                  "' has no members to take in turn");
    std::vector<Environment> expanded;
    for (const auto& member : members) {
      Environment one = env;
      one.knobs[knob.name] = member;
      expanded.push_back(one);
    }
    return expanded;
  }
  return {env};
}

// The formats the model is available in: its own file's and those of its spec's sources.
std::vector<std::string> available_formats(const fs::path& model, const ModelSpec& spec) {
  std::vector<std::string> formats;
  if (const std::string own = model_format(model); !own.empty()) formats.push_back(own);
  for (const auto& [format, source] : spec.sources)
    if (std::find(formats.begin(), formats.end(), format) == formats.end())
      formats.push_back(format);
  return formats;
}

// The artifact formats an engine takes as input: its build tool's (TVM compiles ONNX), else its
// worker's. "any" is the test engine's.
std::vector<std::string> input_formats(const EngineOffer& offer) {
  if (offer.builder) {
    const auto& d = offer.builder->describe();
    if (d.contains("formats")) return d.at("formats").get<std::vector<std::string>>();
  }
  return offer.info ? offer.info->formats : std::vector<std::string>{};
}

bool accepts(const std::vector<std::string>& formats, const std::string& format) {
  return formats.empty() || std::find(formats.begin(), formats.end(), "any") != formats.end() ||
         std::find(formats.begin(), formats.end(), format) != formats.end();
}

// Checks a variant's conversion chain against the steps the tool offers and the formats the
// model has. A chain that can never work (an unknown step, an end the engine cannot load) is the
// user's mistake and throws; one that cannot run *here* (missing source, missing converter)
// returns the reason to skip it.
std::string plan_chain(PlannedVariant& v, const EngineOffer& offer,
                       const std::vector<std::string>& have,
                       std::shared_ptr<Converter>& converter) {
  const auto& chain = v.env.conversion;
  const std::string where = "environment '" + v.env.to_string() + "'";
  if (chain.size() < 2)
    throw Error(where + ": a conversion chain needs at least two formats, e.g. onnx>tflite");
  const auto formats = input_formats(offer);
  if (offer.info && !accepts(formats, chain.back()))
    throw Error(where + ": the chain ends in " + chain.back() + " but " + v.env.framework +
                " loads " + joined(formats));
  if (!converter) {
    auto found = Converter::find();
    if (!found)
      return "this deltann has no conversion tool (" + (tools_dir() / "convert.py").string() + ")";
    converter = std::make_shared<Converter>(*found);
  }
  std::vector<std::string> known;
  for (const auto& s : converter->steps()) known.push_back(s.name());
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    auto step = converter->step(chain[i], chain[i + 1]);
    if (!step)
      throw Error(where + ": no conversion " + chain[i] + ">" + chain[i + 1] +
                  " (known: " + joined(known) + ")");
    v.chain.push_back(*step);
  }
  v.converter = converter;
  if (std::find(have.begin(), have.end(), chain.front()) == have.end())
    return "the model has no " + chain.front() + " form (it has: " + joined(have) +
           "); add \"sources\": {\"" + chain.front() + "\": {\"file\": ...}} to its spec";
  for (const auto& step : v.chain)
    if (!step.unavailable.empty()) return "conversion " + step.name() + ": " + step.unavailable;
  return "";
}

// The engine's description plus the knobs of the chain's conversion steps (quantize), which only
// chained variants accept.
BackendInfo with_conversion_knobs(BackendInfo info, const PlannedVariant& v) {
  if (!v.converter) return info;
  for (const auto& knob : v.converter->knobs())
    for (const auto& step : v.chain)
      if (std::find(step.knobs.begin(), step.knobs.end(), knob.name) != step.knobs.end()) {
        info.knobs.push_back(knob);
        break;
      }
  return info;
}

// Turns the command line's environment strings into runnable variants or skipped ones with a
// reason. A malformed string or an invalid knob value stops everything before any work starts.
std::vector<PlannedVariant> plan(const CampaignConfig& config, const ModelSpec& spec) {
  std::map<std::string, EngineOffer> engines;
  std::vector<PlannedVariant> planned;
  const std::vector<std::string> have = available_formats(config.model, spec);
  std::shared_ptr<Converter> converter;
  for (const auto& text : config.environments) {
    const Environment parsed = parse_environment(text);
    const fs::path worker = config.worker_dir / worker_name(parsed.framework);
    if (!engines.count(parsed.framework))
      engines[parsed.framework] = describe_engine(parsed.framework, worker, config.worker_dir);
    EngineOffer& offer = engines.at(parsed.framework);
    for (const auto& env : expand_each(parsed, offer)) {
      PlannedVariant v{env,        env.to_string(), worker, offer.unavailable,
                       offer.info, offer.builder,   {},     nullptr};
      if (offer.info) {
        const auto& info = *offer.info;
        const std::string own = model_format(config.model);
        if (!env.version.empty() && env.version != info.version)
          v.skip_reason = "version " + env.version + " of " + env.framework +
                          " is not installed (have " + info.version + ")";
        else if (!env.conversion.empty())
          v.skip_reason = plan_chain(v, offer, have, converter);
        else if (!own.empty() && !accepts(input_formats(offer), own))
          v.skip_reason = env.framework + " loads " + joined(input_formats(offer)) + ", not " +
                          own + "; name a conversion chain, e.g. " + env.framework + "@" + own +
                          ">" + input_formats(offer).front();
        if (v.skip_reason.empty()) {
          try {
            v.env = resolve_environment(env, with_conversion_knobs(info, v));
            v.text = v.env.to_string();
          } catch (const Unsupported& e) {
            v.skip_reason = e.what();
          }
        }
      }
      const bool duplicate = std::any_of(planned.begin(), planned.end(),
                                         [&](const PlannedVariant& p) { return p.text == v.text; });
      if (!duplicate) planned.push_back(std::move(v));
    }
  }
  return planned;
}

class Progress {
 public:
  Progress(const CampaignEvents& events, int64_t total) : events_(events), total_(total) {}
  void advance() {
    ++done_;
    if (!events_.progress) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta =
        done_ > 0 ? elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_) : 0;
    events_.progress(done_, total_, eta);
  }

 private:
  const CampaignEvents& events_;
  int64_t total_;
  int64_t done_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Runs one variant over the images it still lacks, in its own worker process. Every failure is
// recorded; a worker that dies is restarted for the remaining images until it has failed
// kMaxConsecutiveFailures times in a row.
class VariantRunner {
 public:
  VariantRunner(const CampaignConfig& config, const ModelSpec& spec, const std::string& model_sha,
                Store& store, const CampaignEvents& events, Progress& progress, bool keep_outputs)
      : config_(config),
        spec_(spec),
        model_sha_(model_sha),
        store_(store),
        events_(events),
        progress_(progress),
        keep_outputs_(keep_outputs) {}

  int64_t results_written() const { return results_written_; }

  // Returns false when the variant was abandoned.
  bool run(const PlannedVariant& variant, const StoredVariant& stored,
           const std::vector<ReadyImage>& todo, const fs::path& artifact,
           const std::string& artifact_sha) {
    variant_ = &variant;
    id_ = stored.id;
    artifact_ = fs::absolute(artifact);
    artifact_sha_ = artifact_sha;
    need_load_record_ = !stored.load_ns.has_value();
    need_first_record_ = !stored.first_ns.has_value();
    int consecutive_failures = 0;
    for (size_t next = 0; next < todo.size();) {
      if (!worker_ && !start()) return false;
      const ReadyImage& image = todo[next];
      const bool first = !ran_in_process_;
      worker_->send({{"op", "run"},
                     {"image", image.key},
                     {"tensor", image.tensor.string()},
                     {"first", first},
                     {"warmup", first ? config_.warmup : 0},
                     {"repeat", config_.repeat}});
      const auto reply = worker_->receive(config_.timeout_s);
      const std::string stage = first ? "first_inference" : "run";
      bool ok = false;
      if (!reply) {
        record_death(stage, image.id);
      } else if (reply->value("event", "") == "error") {
        fail(stage, "error", reply->value("message", ""), image.id);
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
    try {
      worker_ =
          std::make_unique<WorkerProcess>(variant_->worker, std::vector<std::string>{"--serve"});
    } catch (const Error& e) {
      fail("load", "error", e.what(), std::nullopt);
      return abandon("its worker cannot start");
    }
    const auto ready =
        load_worker(*worker_, artifact_, variant_->text, to_json(spec_), config_.timeout_s);
    if (!ready) {
      record_death("load", std::nullopt);
      return abandon("it could not be loaded");
    }
    if (ready->value("event", "") != "loaded") {
      fail("load", "error", ready->value("message", ready->dump()), std::nullopt);
      return abandon("it could not be loaded");
    }
    if (need_load_record_) {
      protocol::LoadReply loaded;
      try {
        loaded = protocol::parse_load_reply(*ready);
      } catch (const Error& e) {
        fail("load", "error", std::string("unreadable reply: ") + e.what(), std::nullopt);
        return abandon("it could not be loaded");
      }
      store_.record_load(id_, loaded.engine_version, artifact_sha_, loaded.load_ns, ready->dump());
      need_load_record_ = false;
    }
    return true;
  }

  bool store_result(const json& reply, const ReadyImage& image, const std::string& stage) {
    protocol::RunReply result;
    try {
      result = protocol::parse_run_reply(reply);
    } catch (const Error& e) {
      fail(stage, "error", std::string("unreadable reply: ") + e.what(), image.id);
      return false;
    }
    std::vector<float>& output = result.output;
    const size_t expected = static_cast<size_t>(spec_.output.classes + spec_.output.label_offset);
    if (output.size() != expected) {
      fail(stage, "error",
           "output has " + std::to_string(output.size()) + " values; the spec expects " +
               std::to_string(expected) + " (" + std::to_string(spec_.output.classes) +
               " classes + label offset " + std::to_string(spec_.output.label_offset) + ")",
           image.id);
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
    store_.add_result(std::move(r));
    ++results_written_;
    return true;
  }

  void record_death(const std::string& stage, std::optional<int64_t> image_id) {
    const WorkerExit exit = worker_->finish();
    std::string log = worker_->log_tail();
    if (log.size() > 1500) log = "..." + log.substr(log.size() - 1500);
    fail(stage, exit.symptom, exit.detail + (log.empty() ? "" : "; engine log: " + log), image_id);
    worker_.reset();
  }

  void fail(const std::string& stage, const std::string& symptom, const std::string& message,
            std::optional<int64_t> image_id) {
    store_.record_failure({id_, image_id, stage, symptom, message});
    if (events_.message)
      events_.message(variant_->text + ": " + stage + " failed (" + symptom +
                      "): " + message.substr(0, 300));
  }

  bool abandon(const std::string& why) {
    stop();
    store_.set_variant_status(id_, "failed");
    if (events_.message) events_.message(variant_->text + ": abandoned, " + why);
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
  const std::string& model_sha_;
  fs::path artifact_;
  std::string artifact_sha_;
  Store& store_;
  const CampaignEvents& events_;
  Progress& progress_;
  bool keep_outputs_;
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

// What a variant runs: the model file itself, or what its conversion chain and compile step made.
struct VariantArtifact {
  fs::path file;
  std::string sha;
  ModelSpec spec;
  json report;           // {"conversion": [step reports], ...the compile step's report}
  int64_t build_ns = 0;  // conversion steps + compile, as first measured (also when cached)
};

// Runs the variant's conversion steps one after another from the model's source form.
bool convert_chain(const PlannedVariant& variant, const CampaignConfig& config,
                   const ModelSpec& spec, VariantArtifact& made, std::string& symptom,
                   std::string& message, const std::function<void(const std::string&)>& say) {
  const std::string& first = variant.chain.front().from;
  if (model_format(config.model) != first) {
    const fs::path source = spec.sources.at(first).file;
    if (!fs::is_regular_file(source)) {
      message = "the model's " + first + " source " + source.string() + " does not exist";
      return false;
    }
    made.file = source;
    made.sha = sha256_file(source);
  }
  json steps = json::array();
  for (const auto& step : variant.chain) {
    const ConversionResult r =
        variant.converter->convert(step, made.file, made.sha, made.spec, variant.env.knobs,
                                   config.cache_dir, config.build_timeout_s);
    if (!r.ok) {
      symptom = r.symptom;
      message = r.message;
      return false;
    }
    const double seconds = r.report.value("convert_s", 0.0);
    say(variant.text + ": " + step.name() + " by " + r.report.value("tool", step.tool) +
        (r.cached ? " from the cache"
                  : " in " + std::to_string(std::lround(seconds * 1000)) + " ms"));
    json entry = r.report;
    entry.erase("spec");
    entry["step"] = step.name();
    entry["cached"] = r.cached;
    steps.push_back(entry);
    made.build_ns += static_cast<int64_t>(seconds * 1e9);
    made.file = r.artifact;
    made.sha = sha256_file(r.artifact);
    made.spec = r.spec;
  }
  made.report["conversion"] = steps;
  return true;
}

// Makes what a variant runs: its conversion steps (stage "convert"), then its engine's compile
// step (stage "compile"). On failure returns false with the stage, symptom and message.
bool build_artifact(const PlannedVariant& variant, const CampaignConfig& config,
                    const ModelSpec& spec, VariantArtifact& made, std::string& stage,
                    std::string& symptom, std::string& message,
                    const std::function<void(const std::string&)>& say) {
  if (!variant.chain.empty()) {
    stage = "convert";
    if (!convert_chain(variant, config, spec, made, symptom, message, say)) return false;
  }
  if (const auto& builder = variant.builder) {
    const BuildResult built = builder->build(made.file, made.sha, made.spec, variant.env,
                                             config.cache_dir, config.build_timeout_s);
    if (!built.ok) {
      stage = "compile";
      symptom = built.symptom;
      message = built.message;
      return false;
    }
    say(variant.text + (built.cached ? ": artifact from the cache (" : ": compiled in ") +
        std::to_string(built.compile_ns / 1'000'000) + " ms" +
        (built.cached ? " when built)" : ""));
    const json conversion = made.report.value("conversion", json::array());
    made.report = json::parse(built.report_json, nullptr, false);
    if (!made.report.is_object()) made.report = json::object();
    if (!conversion.empty()) made.report["conversion"] = conversion;
    made.build_ns += built.compile_ns;
    made.file = built.artifact;
    made.sha = sha256_file(made.file);
  }
  return true;
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

}  // namespace

PreparedEnvironment prepare_environment(const CampaignConfig& config, const ModelSpec& spec,
                                        const std::string& environment,
                                        const std::function<void(const std::string&)>& say) {
  CampaignConfig one = config;
  one.environments = {environment};
  const std::vector<PlannedVariant> planned = plan(one, spec);
  if (planned.size() != 1)
    throw Error("environment '" + environment + "' stands for " + std::to_string(planned.size()) +
                " variants; name one");
  const PlannedVariant& v = planned.front();
  if (!v.skip_reason.empty())
    throw Error("environment '" + v.text + "' cannot run here: " + v.skip_reason);
  VariantArtifact made{config.model, sha256_file(config.model), spec, json::object(), 0};
  if (std::string stage, symptom, message;
      !build_artifact(v, config, spec, made, stage, symptom, message, say))
    throw Error("environment '" + v.text + "': " + stage + " failed (" +
                (symptom.empty() ? "error" : symptom) + "): " + message);
  return {v.text, v.env.framework, v.worker, fs::absolute(made.file), made.spec};
}

fs::path default_worker_dir() {
  if (const char* dir = std::getenv("DELTANN_WORKER_DIR"); dir && *dir) return dir;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

CampaignOutcome run_campaign(const CampaignConfig& config, const CampaignEvents& events) {
  const auto say = [&](const std::string& line) {
    if (events.message) events.message(line);
  };
  if (config.repeat < 1) throw Error("--repeat must be at least 1");
  if (config.warmup < 0) throw Error("--warmup must not be negative");
  if (config.timeout_s <= 0) throw Error("--timeout must be positive");
  if (config.build_timeout_s <= 0) throw Error("--build-timeout must be positive");
  if (!fs::is_regular_file(config.model))
    throw Error("model file " + config.model.string() + " does not exist");
  const ModelSpec spec = load_model_spec(config.model, config.spec);
  const std::optional<fs::path> spec_file = model_spec_file(config.model, config.spec);
  if (!spec_file) say(default_spec_note(config.model));
  const Dataset dataset = load_dataset(config.images, config.dataset);
  std::vector<PlannedVariant> variants = plan(config, spec);
  const auto runnable =
      std::count_if(variants.begin(), variants.end(),
                    [](const PlannedVariant& v) { return v.skip_reason.empty(); });
  const auto labelled = std::count_if(dataset.images.begin(), dataset.images.end(),
                                      [](const ImageEntry& e) { return e.label.has_value(); });
  say("plan: " + std::to_string(variants.size()) + " variants (" + std::to_string(runnable) +
      " runnable here) x " + std::to_string(dataset.images.size()) + " images (" +
      std::to_string(labelled) + " labelled, " + dataset.layout + " layout) of model " + spec.name);

  // One campaign at a time writes into a database (docs/STORAGE.md, "Locking").
  const DatabaseLock lock(config.db, "deltann run", config.wait_for_lock, say);
  Store store(config.db);
  const std::string model_sha = sha256_file(config.model);
  const StoredModel model_row{0, fs::absolute(config.model).string(), model_sha,
                              to_json(spec).dump(), spec_source_text(config.model, config.spec)};
  // Checked before anything is written, so that a refused run leaves the database as it was.
  const std::optional<int64_t> known_model = existing_model(store.models(), model_row, config);
  // Samples taken with other warm-up and repeat counts would be pooled and compared as if alike.
  const std::string timing =
      "warmup=" + std::to_string(config.warmup) + ", repeat=" + std::to_string(config.repeat);
  if (const auto stored = store.meta("timing"); stored && *stored != timing && store.has_results())
    throw Error(config.db.string() + " holds results timed with " + *stored + "; this run asks " +
                timing +
                ", and the samples would be pooled as if alike: give the same --warmup "
                "and --repeat, or a new --db");
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
  const int64_t model_id = store.ensure_model(model_row);
  if (!known_model && store.models().size() > 1)
    say("note: " + config.db.string() + " now holds " + std::to_string(store.models().size()) +
        " models; variants are compared only with variants of the same model");

  CampaignOutcome outcome;
  PreprocessCache cache(config.cache_dir);
  for (const auto& note : dataset.notes) say("note: " + note);
  std::vector<ReadyImage> ready;
  for (const auto& image : dataset.images) {
    StoredImage row{0, image.key, image.path.string(), "", image.label, "ok", ""};
    // Every entry gets a row: an unusable one with the reason, so that it is listed with the
    // results and counted.
    const auto unusable = [&](const std::string& message) {
      row.status = "error";
      row.message = message;
      store.ensure_image(row);
      say("image skipped: " + message);
      ++outcome.images_bad;
    };
    const std::string problem = image.usable() ? label_problem(image, spec.output) : image.problem;
    if (!problem.empty()) {
      unusable(image.path.string() + ": " + problem);
      continue;
    }
    try {
      const auto entry = cache.prepare(image.path, spec.input);
      row.sha256 = entry.image_sha256;
      for (const auto& note : entry.notes) row.message += (row.message.empty() ? "" : "; ") + note;
      ready.push_back({store.ensure_image(row), image.key, entry.tensor_path, image.path});
      if (!row.message.empty()) say("note: " + image.key + ": " + row.message);
      ++outcome.images_ok;
    } catch (const Error& e) {
      unusable(e.what());
    }
  }
  const bool keep_outputs = static_cast<int64_t>(ready.size()) <= config.keep_outputs_up_to;

  // Work out what each variant still lacks before starting, so progress has a true total.
  struct Job {
    const PlannedVariant* variant;
    StoredVariant stored;
    std::vector<ReadyImage> todo;
  };
  std::vector<Job> jobs;
  int64_t total = 0;
  for (const auto& v : variants) {
    const int64_t id = store.ensure_variant(model_id, v.text, v.env.framework);
    StoredVariant stored;
    for (const auto& s : store.variants())
      if (s.id == id) stored = s;
    if (!v.skip_reason.empty()) {
      if (stored.status != "skipped") {
        store.record_failure({id, std::nullopt, "plan", "unsupported", v.skip_reason});
        store.set_variant_status(id, "skipped");
      }
      say("skipped " + v.text + ": " + v.skip_reason);
      ++outcome.variants_skipped;
      continue;
    }
    if (stored.status == "failed" && !config.retry_failed) {
      say("skipped " + v.text +
          ": it failed in an earlier run (use --retry-failed to run it again)");
      ++outcome.variants_skipped;
      continue;
    }
    // Failures of images about to be retried, or of a plan that no longer applies, are obsolete.
    if (config.retry_failed || stored.status == "skipped") store.clear_failures(id);
    const auto done = store.completed_images(id, !config.retry_failed);
    Job job{&v, stored, {}};
    for (const auto& image : ready)
      if (!done.count(image.id)) job.todo.push_back(image);
    if (job.todo.empty()) {
      if (stored.status != "done") store.set_variant_status(id, "done");
      ++outcome.variants_skipped;
      continue;
    }
    total += static_cast<int64_t>(job.todo.size());
    jobs.push_back(std::move(job));
  }

  if (config.shuffle_seed) {
    std::mt19937_64 generator(*config.shuffle_seed);
    std::shuffle(jobs.begin(), jobs.end(), generator);
    store.set_meta("variant_order", "shuffled with seed " + std::to_string(*config.shuffle_seed));
  }
  Progress progress(events, total);
  for (const auto& job : jobs) {
    say("running " + job.variant->text + " on " + std::to_string(job.todo.size()) + " images");
    store.set_variant_status(job.stored.id, "running");
    // Building the variant's artifact: conversion steps (stage "convert"), then the engine's
    // compile step (stage "compile"). A failure is the variant's result; the campaign goes on.
    const auto build_failed = [&](const std::string& stage, const std::string& symptom,
                                  const std::string& message) {
      store.record_failure(
          {job.stored.id, std::nullopt, stage, symptom.empty() ? "error" : symptom, message});
      store.set_variant_status(job.stored.id, "failed");
      say(job.variant->text + ": " + stage + " failed: " + message.substr(0, 400));
      ++outcome.variants_failed;
      for (size_t i = 0; i < job.todo.size(); ++i) progress.advance();
    };
    VariantArtifact made{config.model, model_sha, spec, json::object(), 0};
    if (std::string stage, symptom, message;
        !build_artifact(*job.variant, config, spec, made, stage, symptom, message, say)) {
      build_failed(stage, symptom, message);
      continue;
    }
    if (job.variant->builder || !job.variant->chain.empty())
      store.record_build(job.stored.id, made.build_ns, made.report.dump());
    // A converted artifact may want other input (TFLite is NHWC): prepare the images for its spec.
    std::vector<ReadyImage> todo;
    for (auto image : job.todo) {
      if (made.spec.input.preprocessing_key() != spec.input.preprocessing_key()) {
        try {
          image.tensor = cache.prepare(image.path, made.spec.input).tensor_path;
        } catch (const Error& e) {
          store.record_failure({job.stored.id, image.id, "preprocess", "error", e.what()});
          progress.advance();
          continue;
        }
      }
      todo.push_back(std::move(image));
    }
    VariantRunner runner(config, made.spec, model_sha, store, events, progress, keep_outputs);
    if (runner.run(*job.variant, job.stored, todo, made.file, made.sha)) {
      store.set_variant_status(job.stored.id, "done");
      ++outcome.variants_run;
    } else {
      ++outcome.variants_failed;
    }
    outcome.results_written += runner.results_written();
  }
  store.flush();
  return outcome;
}

}  // namespace deltann
