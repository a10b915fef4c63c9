// `deltann localize`: runs one image through two environments (and optional references) with
// every intermediate tensor captured, and says at which layer their difference first jumps
// (docs/LOCALIZE.md). Exit 0 when no layer diverges, 3 when one does (so that it can gate a
// pipeline), 1 for an error, 2 for a usage error.
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "capture.h"
#include "deltann/campaign.h"
#include "deltann/db_lock.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/localize.h"
#include "deltann/localize_campaign.h"
#include "deltann/localize_format.h"
#include "deltann/localize_image.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/store.h"
#include "deltann/text.h"
#include "model_verb.h"
#include "run/worker_process.h"
#include "verbs.h"
#ifdef DELTANN_MODEL_DIFF
#include "analysis/parameter_report.h"
#include "analysis/reproduce.h"
#endif

namespace deltann::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct LocalizeArgs {
  std::string model, spec, image, a, b, db, keep, cache, b_model, b_spec, image_key;
  std::string tensor;     // --tensor X.npy: the model's input as it is, instead of an image
  std::string reproduce;  // --reproduce DIR: write the smallest subgraph that still diverges
  std::vector<std::string> refs;
  // --images all|disagreeing: localise over many images of the --db campaign, with --max-images
  // and --seed choosing which (localize_campaign.h).
  std::string images;
  size_t max_images = 200;
  uint64_t seed = 1;
  // --captures A_DIR B_DIR [REF_DIR...]: compare captures made earlier (`--keep`, or a worker's
  // capture op on another machine) instead of running the environments here.
  std::vector<std::string> captures;
  LocalizeOptions options;
  size_t rows = 20;
  double timeout_s = 300;
  bool json = false;
};

[[noreturn]] void usage(const std::string& message) {
  throw CLI::ValidationError(message, kExitUsage);
}

// JSON output; bytes of names that are not UTF-8 become U+FFFD instead of stopping the output.
std::string dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace); }

// The capture folder: --keep DIR, or a private temporary folder removed on exit.
class CaptureDir {
 public:
  explicit CaptureDir(const std::string& keep) {
    if (!keep.empty()) {
      path_ = fs::absolute(keep);
      fs::create_directories(path_);
      return;
    }
    std::string pattern = (fs::temp_directory_path() / "deltann-localize-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw Error("cannot create a temporary folder in /tmp");
    path_ = pattern;
    remove_ = true;
  }
  ~CaptureDir() {
    std::error_code ec;
    if (remove_) fs::remove_all(path_, ec);
  }
  CaptureDir(const CaptureDir&) = delete;
  CaptureDir& operator=(const CaptureDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool remove_ = false;
};

// The input tensor file `env` is fed: --tensor as it is (checked against the environment's input
// shape here, so a wrong file is a clear error rather than an engine's), else the image
// preprocessed for the environment's spec (a conversion may give its artifact another layout).
fs::path input_tensor(const PreparedEnvironment& env, const LocalizeArgs& a,
                      PreprocessCache& cache) {
  if (a.tensor.empty()) return cache.prepare(a.image, env.spec.input).tensor_path;
  const Tensor t = read_npy(a.tensor);  // throws unless float32 C-order .npy
  if (t.shape != env.spec.input.shape)
    throw Error("tensor " + a.tensor + " has shape " + shape_text(t.shape) + " but " + env.env +
                "'s model input" +
                (env.spec.input.name.empty() ? "" : " '" + env.spec.input.name + "'") + " takes " +
                shape_text(env.spec.input.shape));
  return fs::absolute(a.tensor);
}

// Plans A and B (B on `b_model` when given: an edited or converted copy of the same network, with
// `b_spec`, else its own sidecar, else A's spec) and builds their artifacts.
std::vector<PreparedEnvironment> prepare_pair(const CampaignConfig& config, const ModelSpec& spec,
                                              const std::string& env_a, const std::string& env_b,
                                              const std::string& b_model,
                                              const std::string& b_spec) {
  std::vector<PreparedEnvironment> envs;
  envs.push_back(prepare_environment(config, spec, env_a, say));
  if (b_model.empty()) {
    envs.push_back(prepare_environment(config, spec, env_b, say));
    return envs;
  }
  CampaignConfig config_b = config;
  config_b.model = b_model;
  if (!fs::is_regular_file(config_b.model))
    throw Error("model file " + b_model + " (--b-model) does not exist");
  if (!b_spec.empty()) config_b.spec = b_spec;
  const bool own_spec =
      !b_spec.empty() || fs::exists(fs::path(b_model).replace_extension(".spec.json"));
  const ModelSpec spec_b = own_spec ? load_model_spec(config_b.model, config_b.spec) : spec;
  if (!own_spec) config_b.spec = config.spec;
  envs.push_back(prepare_environment(config_b, spec_b, env_b, say));
  return envs;
}

// Starts the environment's worker, loads its artifact, captures `tensor` into `out` and reads it.
LayerCapture capture_environment(const PreparedEnvironment& env, const fs::path& tensor,
                                 const fs::path& out, double timeout_s, double& seconds) {
  const auto start = std::chrono::steady_clock::now();
  LoadedWorker worker(env.worker, env.artifact, env.env, to_json(env.spec), timeout_s,
                      env.worker_env);
  LayerCapture capture = capture_with(worker, env, tensor, out);
  worker.quit();
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  say(env.env + ": captured " + std::to_string(capture.tensors.size()) + " tensors in " +
      std::to_string(std::lround(seconds * 1000)) + " ms");
  return capture;
}

// The --db form: the model, spec and image come from a campaign database; the image is the one
// named with --image, else the one choose_localize_image picks from the stored results.
void from_database(LocalizeArgs& a, int64_t model_id, const std::string& canonical_a,
                   const std::string& canonical_b) {
  const Store store(a.db, StoreMode::ReadOnly);
  const LocalizeImage chosen =
      choose_localize_image(store, model_id, canonical_a, canonical_b, a.image);
  if (!chosen.why.empty()) say("image " + chosen.key + ": " + chosen.why);
  a.image_key = chosen.key;
  a.image = chosen.path;
}

#ifdef DELTANN_MODEL_DIFF
// --reproduce: each candidate subgraph is run exactly as the full model was (the same
// environments planned afresh for the extracted file and its spec, the same capture, the same
// localize()), fed the candidate's input.npy as --tensor would feed it.
Reproduction reproduce_jump(const LocalizeArgs& a, const CampaignConfig& config,
                            const std::vector<PreparedEnvironment>& envs,
                            const LayerCapture& a_capture, const fs::path& a_tensor,
                            const Localization& result) {
  const LayerReport& jump = result.layers[*result.jump];
  ReproduceRequest request;
  request.model_a = config.model;
  if (!a.b_model.empty()) request.model_b = a.b_model;
  request.dir = a.reproduce;
  request.jump = jump.name;
  request.capture_a = &a_capture;
  request.input_tensor = a_tensor;
  request.input_name = envs[0].spec.input.name;
  request.env_a = envs[0].env;
  request.env_b = envs[1].env;
  request.full = jump.diff;
  request.options = a.options;
  const auto run = [&](const fs::path& model_a, const fs::path& model_b, const fs::path& tensor,
                       const std::string& output) {
    CampaignConfig trial = config;
    trial.model = model_a;
    trial.spec.reset();  // the candidate's own sidecar, repro.spec.json
    const ModelSpec spec = load_model_spec(model_a);
    // B's copy has no sidecar of its own, so it takes A's, as the written command will.
    const auto pair = prepare_pair(trial, spec, a.a, a.b, model_b.string(), "");
    LocalizeArgs fed = a;
    fed.tensor = tensor.string();
    fed.image.clear();
    PreprocessCache unused(config.cache_dir);
    CaptureDir dir("");
    std::vector<LayerCapture> captures;
    for (size_t i = 0; i < 2; ++i) {
      double seconds = 0;
      captures.push_back(capture_environment(pair[i], input_tensor(pair[i], fed, unused),
                                             dir.path() / (i == 0 ? "a" : "b"), a.timeout_s,
                                             seconds));
    }
    const Localization l = localize(captures[0], captures[1], {}, a.options);
    ReproTrial t;
    for (const auto& layer : l.layers)
      if (layer.name == output && layer.diff.comparable) {
        t.found = true;
        t.diff = layer.diff;
        t.above = layer.above;
      }
    return t;
  };
  return reproduce(request, run, say);
}
#endif

// Ends a run that printed its result: a diverging layer exits kExitNegative, with a message that
// says where.
void exit_on_divergence(const Localization& result) {
  if (!result.jump) return;
  const LayerReport& jump = result.layers[*result.jump];
  throw NegativeAnswer(result.env_a + " and " + result.env_b +
                       " diverge: " + std::to_string(result.above_count) +
                       " layer(s) above the threshold, the first jump at '" + jump.name + "'");
}

// The --captures form: read the folders (each with the index.json a worker's capture op wrote),
// label them with --a/--b/--ref when given, else with the folder names, and localise.
void from_captures(const LocalizeArgs& a) {
  if (a.captures.size() < 2) usage("--captures needs at least two folders: A and B");
  if (!a.model.empty() || !a.db.empty() || !a.image.empty() || !a.tensor.empty() ||
      !a.reproduce.empty() || !a.b_model.empty())
    usage(
        "--captures compares stored captures: it takes no --model, --db, --image, --tensor, "
        "--b-model or --reproduce");
  std::vector<LayerCapture> captures;
  for (size_t i = 0; i < a.captures.size(); ++i) {
    const fs::path dir = a.captures[i];
    std::string label = dir.filename().string();
    if (i == 0 && !a.a.empty()) label = a.a;
    if (i == 1 && !a.b.empty()) label = a.b;
    if (i >= 2 && i - 2 < a.refs.size()) label = a.refs[i - 2];
    if (!fs::is_regular_file(dir / "index.json"))
      throw Error(dir.string() + " holds no index.json (a capture folder is needed)");
    captures.push_back(read_capture(dir / "index.json", label));
  }
  const std::vector<LayerCapture> refs(captures.begin() + 2, captures.end());
  const Localization result = localize(captures[0], captures[1], refs, a.options);
  if (a.json) {
    json j = to_json(result, a.options);
    j["captures"] = a.captures;
    j["a"]["tensors"] = captures[0].tensors.size();
    j["b"]["tensors"] = captures[1].tensors.size();
    json references = json::array();
    for (const auto& ref : refs)
      references.push_back({{"env", ref.env}, {"mode", ref.mode}, {"tensors", ref.tensors.size()}});
    j["references"] = references;
    std::cout << dump(j) << '\n';
  } else {
    std::cout << terminal_safe_lines("captures " + a.captures[0] + " (A) and " + a.captures[1] +
                                     " (B)\n" + localization_text(result, a.options, a.rows));
  }
  exit_on_divergence(result);
}

// The model of a campaign database that --db localises: its only model, or the one `path` (--model,
// or --b-model for B's labels in the campaign form) names when it holds several. Refused when the
// file changed since the campaign ran: its layers would not be the ones whose outputs the database
// holds.
StoredModel campaign_model(const std::string& db, const std::string& path) {
  const auto models = Store(db, StoreMode::ReadOnly).models();
  if (models.empty()) throw Error(db + " holds no model");
  std::vector<const StoredModel*> chosen;
  std::string names;
  for (const auto& m : models) {
    names += (names.empty() ? "" : ", ") + m.path;
    std::error_code ec;
    if (path.empty() || fs::equivalent(m.path, path, ec)) chosen.push_back(&m);
  }
  if (chosen.empty()) throw Error(db + " holds no model " + path + " (it holds: " + names + ")");
  if (chosen.size() > 1)
    throw Error(db + " holds " + std::to_string(chosen.size()) +
                " models (or one file with several specs): name one with --model (" + names + ")");
  const StoredModel& model = *chosen.front();
  if (!fs::is_regular_file(model.path))
    throw Error("model file " + model.path + " of " + db + " no longer exists");
  if (const std::string now = sha256_file(model.path); now != model.sha256)
    throw Error("model file " + model.path + " has changed since the campaign in " + db +
                " ran (sha256 then " + model.sha256.substr(0, 12) + "..., now " +
                now.substr(0, 12) + "...): run the campaign again into a new database");
  return model;
}

// Usage errors: options that contradict each other or are missing.
void check_usage(const CLI::App& cmd, const LocalizeArgs& a) {
  if (!cmd.remaining().empty()) usage("unexpected argument '" + cmd.remaining().front() + "'");
  if (a.options.threshold < 0 || a.options.growth <= 0 || a.options.atol < 0 || a.rows == 0)
    usage("--threshold and --atol must not be negative, --growth and --rows must be positive");
  if (!a.captures.empty()) return;  // from_captures checks its own
  if (a.a.empty() || a.b.empty()) usage("--a ENV and --b ENV are required");
  if (a.b_model.empty() && !a.b_spec.empty()) usage("--b-spec needs --b-model");
  if (!a.tensor.empty() && !a.image.empty() && a.db.empty())
    usage("give either --image or --tensor, not both");
  if (!a.tensor.empty() && !a.db.empty()) usage("--tensor needs --model without --db");
  if (a.db.empty() && (a.model.empty() || (a.image.empty() && a.tensor.empty())))
    usage("give --model M.onnx with --image IMG or --tensor X.npy, or --db CAMPAIGN.db");
  if (!a.db.empty() && !fs::exists(a.db)) usage("database " + a.db + " does not exist");
  if (a.images.empty()) return;
  if (!parse_campaign_images(a.images)) usage("--images takes 'all' or 'disagreeing'");
  if (a.db.empty()) usage("--images localises over a campaign: it needs --db CAMPAIGN.db");
  if (!a.image.empty() || !a.tensor.empty() || !a.reproduce.empty() || !a.refs.empty() ||
      !a.keep.empty())
    usage("--images takes no --image, --tensor, --reproduce, --ref or --keep");
  if (a.max_images < 2) usage("--max-images must be at least 2");
}

// The model and spec to localise: --model/--spec, or the --db campaign's model with the spec it
// ran with, as stored, whatever the files beside the model say now.
struct ModelChoice {
  CampaignConfig config;
  ModelSpec spec;
  std::string spec_source;
  int64_t model_id = 0;  // the --db campaign's model
};

ModelChoice choose_model(const LocalizeArgs& a) {
  ModelChoice c;
  std::optional<ModelSpec> stored_spec;
  if (!a.db.empty()) {
    const StoredModel model = campaign_model(a.db, a.model);
    c.model_id = model.id;
    c.config.model = model.path;
    stored_spec =
        parse_model_spec(json::parse(model.spec_json), fs::path(model.path).parent_path());
    c.spec_source = model.spec_source.empty() ? "the spec stored in " + a.db : model.spec_source;
    const auto campaign_spec = Store(a.db, StoreMode::ReadOnly).meta("spec");
    if (campaign_spec && !campaign_spec->empty()) c.config.spec = *campaign_spec;
  } else {
    c.config.model = a.model;
    if (!a.spec.empty()) c.config.spec = a.spec;
  }
  if (!fs::is_regular_file(c.config.model))
    throw Error("model file " + c.config.model.string() + " does not exist");
  c.config.cache_dir = a.cache.empty() ? default_cache_dir() : fs::path(a.cache);
  c.config.worker_dir = default_worker_dir();
  c.config.timeout_s = a.timeout_s;
  if (stored_spec) {
    c.spec = *stored_spec;
    return c;
  }
  c.spec = load_spec_saying_default(c.config);
  c.spec_source = spec_source_text(c.config.model, c.config.spec);
  return c;
}

// What every environment captured, with the input tensor each was fed and the seconds it took.
struct Captures {
  std::vector<LayerCapture> captures;
  std::vector<fs::path> tensors;
  std::vector<double> seconds;
};

Captures capture_all(const std::vector<PreparedEnvironment>& envs, const LocalizeArgs& a,
                     PreprocessCache& cache, const fs::path& dir) {
  Captures c;
  c.seconds.assign(envs.size(), 0);
  for (size_t i = 0; i < envs.size(); ++i) {
    const std::string folder = i == 0 ? "a" : i == 1 ? "b" : "ref" + std::to_string(i - 2);
    c.tensors.push_back(input_tensor(envs[i], a, cache));
    c.captures.push_back(
        capture_environment(envs[i], c.tensors[i], dir / folder, a.timeout_s, c.seconds[i]));
  }
  return c;
}

// The second ONNX file whose parameters are compared with the model's: --b-model, else B's
// converted artifact (or what a compiling engine compiled) when it is an ONNX file other than the
// model; empty when there is none.
fs::path parameters_model(const LocalizeArgs& a, const PreparedEnvironment& b,
                          const fs::path& model) {
  if (!a.b_model.empty()) return a.b_model;
  // A compiling engine's artifact is a library: its ONNX is the file it was compiled from.
  const fs::path file = b.compiled_from.empty() ? b.artifact : b.compiled_from;
  std::error_code same_ec;
  if (file.extension() == ".onnx" && fs::is_regular_file(file) &&
      !fs::equivalent(file, model, same_ec))
    return file;
  return {};
}

// The JSON document of a run (to_json's fields and where everything came from).
json run_json(const LocalizeArgs& a, const ModelChoice& m, const Captures& c,
              const Localization& result) {
  json j = to_json(result, a.options);
  j["model"] = fs::absolute(m.config.model).string();
  j["spec"] = m.spec_source;
  if (!a.b_model.empty()) j["b_model"] = fs::absolute(a.b_model).string();
  if (a.tensor.empty())
    j["image"] = fs::absolute(a.image).string();
  else
    j["tensor"] = fs::absolute(a.tensor).string();
  j["a"]["tensors"] = c.captures[0].tensors.size();
  j["b"]["tensors"] = c.captures[1].tensors.size();
  j["a"]["capture_s"] = c.seconds[0];
  j["b"]["capture_s"] = c.seconds[1];
  json references = json::array();
  for (size_t i = 2; i < c.captures.size(); ++i)
    references.push_back({{"env", c.captures[i].env},
                          {"mode", c.captures[i].mode},
                          {"tensors", c.captures[i].tensors.size()},
                          {"capture_s", c.seconds[i]}});
  j["references"] = references;
  return j;
}

// The --images form: localises A against B on many images of the campaign, one worker per
// environment for all of them, and keeps per layer and image only the relative L2 error and max
// |a-b| (localize_campaign.h). B's labels are those of B's variant of the campaign's model, or of
// the campaign's --b-model when one is given (added to the database with `run --new-model`).
// Exit 3 when some layer's error separates the differing images from the agreeing ones.
void from_campaign(const LocalizeArgs& a, const ModelChoice& m,
                   const std::vector<PreparedEnvironment>& envs,
                   std::chrono::steady_clock::time_point start) {
  const auto mode = parse_campaign_images(a.images);
  const int64_t model_b = a.b_model.empty() ? m.model_id : campaign_model(a.db, a.b_model).id;
  CampaignSelection selection;
  {
    const Store store(a.db, StoreMode::ReadOnly);
    selection =
        select_campaign_images(paired_images(store, m.model_id, envs[0].env, model_b, envs[1].env),
                               *mode, a.max_images, a.seed);
  }
  if (selection.images.empty())
    throw Error(a.db + " has no image with results for both " + envs[0].env + " and " +
                envs[1].env);
  say("images: " + selection.description);

  PreprocessCache cache(m.config.cache_dir);
  CaptureDir dir("");
  // One worker per environment for every image: starting and loading is most of a capture's
  // cost on a small model.
  std::vector<std::unique_ptr<LoadedWorker>> workers;
  for (size_t i = 0; i < 2; ++i)
    workers.push_back(std::make_unique<LoadedWorker>(envs[i].worker, envs[i].artifact, envs[i].env,
                                                     to_json(envs[i].spec), a.timeout_s,
                                                     envs[i].worker_env));
  CampaignAccumulator accumulator;
  std::vector<std::string> skipped;
  const size_t n = selection.images.size();
  for (size_t k = 0; k < n; ++k) {
    const PairedImage& image = selection.images[k];
    std::vector<fs::path> tensors;
    try {
      for (size_t i = 0; i < 2; ++i)
        tensors.push_back(cache.prepare(image.path, envs[i].spec.input).tensor_path);
    } catch (const Error& e) {
      // An image that cannot be read any more is left out; the others still count. A worker's
      // failure below is not: it would fail every image after it.
      say("[" + std::to_string(k + 1) + "/" + std::to_string(n) + "] " + image.key +
          ": skipped: " + e.what());
      skipped.push_back(image.key);
      continue;
    }
    std::vector<LayerCapture> captures;
    for (size_t i = 0; i < 2; ++i)
      captures.push_back(
          capture_with(*workers[i], envs[i], tensors[i], dir.path() / (i ? "b" : "a")));
    const Localization l = localize(captures[0], captures[1], {}, a.options);
    accumulator.add(image, l);
    say("[" + std::to_string(k + 1) + "/" + std::to_string(n) + "] " + image.key +
        (image.differs() ? " (top-1 differs)" : "") + ": " +
        (l.jump ? "first jump '" + l.layers[*l.jump].name + "'" : "no layer above the threshold"));
  }
  for (auto& worker : workers) worker->quit();
  if (accumulator.images() == 0) throw Error("no image of " + a.db + " could be localised");
  constexpr double kConfidence = 0.95, kAlpha = 0.05;
  const CampaignLocalization result = accumulator.finish(kConfidence, kAlpha);
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  json j = to_json(result, a.options);
  j["model"] = fs::absolute(m.config.model).string();
  j["spec"] = m.spec_source;
  if (!a.b_model.empty()) j["b_model"] = fs::absolute(a.b_model).string();
  j["selection"] = {{"images", a.images},
                    {"max_images", a.max_images},
                    {"seed", a.seed},
                    {"differing_available", selection.differing_available},
                    {"agreeing_available", selection.agreeing_available},
                    {"differing_used", selection.differing_used},
                    {"agreeing_used", selection.agreeing_used},
                    {"skipped", skipped},
                    {"description", selection.description}};
  j["seconds"] = total;
  const std::string label = std::to_string(result.images.size()) + " images (campaign)";
  const int64_t stored =
      Store(a.db, StoreMode::ReadWrite)
          .add_localization({0, envs[0].env, envs[1].env, label,
                             j.dump(-1, ' ', false, json::error_handler_t::replace), ""});
  if (a.json) {
    j["stored_as"] = stored;
    std::cout << dump(j) << '\n';
  } else {
    std::ostringstream text;
    text << "model " << m.config.model.string()
         << (a.b_model.empty() ? "" : " (B: " + a.b_model + ")") << ", campaign " << a.db
         << "\nimages: " << selection.description
         << (skipped.empty() ? "" : "; " + std::to_string(skipped.size()) + " skipped") << "\n"
         << campaign_localization_text(result, a.rows) << "stored as localisation #" << stored
         << " in " << a.db << "\ntook " << std::lround(total * 1000) << " ms\n";
    std::cout << terminal_safe_lines(text.str());
  }
  if (result.first_separating)
    throw NegativeAnswer("the error of '" + result.layers[*result.first_separating].name +
                         "' and later layers is higher on the images whose top-1 differs");
}

void execute(const CLI::App& cmd, LocalizeArgs& a) {
  check_usage(cmd, a);
  if (!a.captures.empty()) return from_captures(a);

  // The --db form writes its result into the campaign: one process at a time runs engines for a
  // database (docs/STORAGE.md, "Locking").
  std::optional<DatabaseLock> lock;
  if (!a.db.empty()) lock.emplace(a.db, "deltann localize", false);
  const ModelChoice m = choose_model(a);
  if (m.spec.input.raw_tensor && a.tensor.empty())
    throw Error(m.config.model.string() + " takes a raw tensor " + shape_text(m.spec.input.shape) +
                " (spec input kind 'tensor'), not an image: give --tensor X.npy");
#ifndef DELTANN_MODEL_DIFF
  if (!a.reproduce.empty())
    throw Error("--reproduce needs ONNX's protobuf classes (libonnx-dev), absent from this build");
#endif

  const auto start = std::chrono::steady_clock::now();
  std::vector<PreparedEnvironment> envs =
      prepare_pair(m.config, m.spec, a.a, a.b, a.b_model, a.b_spec);
  if (!a.images.empty()) return from_campaign(a, m, envs, start);
  for (const auto& ref : a.refs) envs.push_back(prepare_environment(m.config, m.spec, ref, say));
  if (!a.db.empty()) from_database(a, m.model_id, envs[0].env, envs[1].env);
  if (a.tensor.empty() && !fs::is_regular_file(a.image))
    throw Error("image " + a.image + " does not exist");
  if (!a.tensor.empty() && !fs::is_regular_file(a.tensor))
    throw Error("tensor " + a.tensor + " does not exist");

  // The tensor cache is only touched for images: a --tensor is fed as it is.
  PreprocessCache cache(m.config.cache_dir);
  CaptureDir dir(a.keep);
  const Captures c = capture_all(envs, a, cache, dir.path());
  const std::vector<LayerCapture> refs(c.captures.begin() + 2, c.captures.end());
  const Localization result = localize(c.captures[0], c.captures[1], refs, a.options);

  // --reproduce: cut the smallest subgraph that still diverges (src/analysis/reproduce.cpp).
  json reproduction;
  std::string reproduction_summary;
#ifdef DELTANN_MODEL_DIFF
  if (!a.reproduce.empty()) {
    if (!result.jump) {
      reproduction = {{"reproduced", false}, {"note", "no layer diverges: nothing to reproduce"}};
      reproduction_summary = "reproducer: none: no layer diverges\n";
    } else {
      const Reproduction r = reproduce_jump(a, m.config, envs, c.captures[0], c.tensors[0], result);
      reproduction = to_json(r);
      reproduction_summary = reproduction_text(r);
    }
  }
#endif
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  json j = run_json(a, m, c, result);
  // What differs between the two model files, and what of it sits at the jump layer
  // (src/analysis/parameter_report.cpp).
  json parameters;
  const fs::path model_b = parameters_model(a, envs[1], m.config.model);
#ifdef DELTANN_MODEL_DIFF
  if (!model_b.empty()) {
    parameters = parameter_report(m.config.model, model_b, result);
    j.update(parameters);
    if (a.b_model.empty()) j["parameters_from"] = fs::absolute(model_b).string();
  }
#endif
  if (!a.reproduce.empty()) j["reproduce"] = reproduction;
  j["seconds"] = total;
  if (!a.keep.empty()) j["kept"] = dir.path().string();
  // The --db form keeps the result with the campaign: `deltann report` plots it.
  std::optional<int64_t> stored;
  if (!a.db.empty())
    stored = Store(a.db, StoreMode::ReadWrite)
                 .add_localization({0, envs[0].env, envs[1].env, a.image_key,
                                    j.dump(-1, ' ', false, json::error_handler_t::replace), ""});
  if (a.json) {
    if (stored) j["stored_as"] = *stored;
    std::cout << dump(j) << '\n';
  } else {
    // Layer, image and file names come from files: the text is made safe for the terminal as a
    // whole.
    std::ostringstream text;
    text << "model " << m.config.model.string()
         << (a.b_model.empty() ? "" : " (B: " + a.b_model + ")")
         << (a.tensor.empty() ? ", image " + a.image : ", tensor " + a.tensor) << "\nspec "
         << m.spec_source << "\n"
         << localization_text(result, a.options, a.rows);
#ifdef DELTANN_MODEL_DIFF
    if (!parameters.is_null())
      text << parameter_report_text(parameters,
                                    a.b_model.empty() ? " (B's: " + model_b.string() + ")" : "");
#endif
    text << reproduction_summary;
    if (!a.keep.empty()) text << "captures kept in " << dir.path().string() << "\n";
    if (stored)
      text << "stored as localisation #" << *stored << " in " << a.db
           << " (deltann report plots it)\n";
    text << "took " << std::lround(total * 1000) << " ms\n";
    std::cout << terminal_safe_lines(text.str());
  }
  exit_on_divergence(result);
}

}  // namespace

void add_localize(CLI::App& app) {
  auto args = std::make_shared<LocalizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "localize", "capture every layer of one image in two environments and find where they part");
  cmd->add_option(
      "--model", args->model,
      "the model (ONNX); with --db, which of the database's models when it holds several");
  cmd->add_option("--spec", args->spec, "model spec (default: <model>.spec.json when present)");
  cmd->add_option("--image", args->image,
                  "the image file; with --db, an image key of the campaign (default: the first "
                  "whose top-1 differs between A and B)");
  cmd->add_option("--tensor", args->tensor,
                  "feed this float32 C-order .npy (exactly the model input's shape) instead of "
                  "an image; no preprocessing");
  cmd->add_option("--reproduce", args->reproduce,
                  "write the smallest subgraph that still shows the divergence to this folder "
                  "(repro.onnx, input.npy, reproduce.sh)");
  cmd->add_option("--db", args->db, "take the model, spec and image from a campaign database");
  cmd->add_option("--images", args->images,
                  "with --db: localise over many images, 'disagreeing' (those whose top-1 "
                  "differs and as many agreeing ones) or 'all', and rank the layers whose error "
                  "separates them");
  cmd->add_option("--max-images", args->max_images,
                  "with --images: at most this many images (half for the differing ones)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "with --images: seed of the sample")->capture_default_str();
  cmd->add_option("--captures", args->captures,
                  "compare capture folders made earlier (A B [REF...], each with index.json; "
                  "e.g. --keep output or captures from another machine) instead of running");
  cmd->add_option("--a", args->a, "environment A, e.g. ort:opt=disable");
  cmd->add_option("--b", args->b, "environment B, e.g. opencv:opt=on");
  cmd->add_option("--b-model", args->b_model,
                  "run environment B on this model file instead (an edited or converted copy of "
                  "the same network; layers are matched by tensor name)");
  cmd->add_option("--b-spec", args->b_spec, "spec of --b-model (default: its sidecar, else A's)");
  cmd->add_option("--ref", args->refs,
                  "reference environment(s): decide which of A and B deviates (repeatable)");
  cmd->add_option("--threshold", args->options.threshold,
                  "relative L2 error above which a layer disagrees")
      ->capture_default_str();
  cmd->add_option("--growth", args->options.growth,
                  "growth of the relative error over a layer's inputs that counts as a jump")
      ->capture_default_str();
  cmd->add_option("--atol", args->options.atol,
                  "a layer whose max |a-b| is at most this agrees, whatever its relative error")
      ->capture_default_str();
  cmd->add_option("--rows", args->rows, "layers shown around the jump")->capture_default_str();
  cmd->add_option("--keep", args->keep,
                  "keep the captured tensors in this folder (a/, b/, ref0/...)");
  cmd->add_option("--cache", args->cache, "preprocessed-tensor cache folder");
  cmd->add_option("--timeout", args->timeout_s, "seconds a worker may stay silent")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print every layer as JSON");
  cmd->allow_extras();
  cmd->callback([cmd, args] { execute(*cmd, *args); });
}

const VerbRegistration kRegistered{70, add_localize};

}  // namespace deltann::cli
