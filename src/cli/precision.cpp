// `deltann precision`: which quantised layers of environment B must be kept in float for B's labels
// to agree with A's again on an image set (docs/PRECISION.md). B is a dynamic-range-quantised
// TFLite conversion (`tflite@onnx>tflite:quantize=dynamic`); each candidate is B's model with the
// int8 weights of a set of layers replaced by the float conversion's (written by
// python/deltann_tools/precision_tflite.py) and run in B's worker. Delta debugging over the layers
// (delta_debug.h) finds a 1-minimal set, and the model with that set in float is written.
// Exit 0 when a set is found (or none is needed), 3 when even every layer in float does not
// agree, 1 for an error, 2 for a usage error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "deltann/classify.h"
#include "deltann/dataset.h"
#include "deltann/delta_debug.h"
#include "deltann/environment.h"
#include "deltann/error.h"
#include "deltann/json_number.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/stats.h"
#include "deltann/text.h"
#include "model_verb.h"
#include "run/builder.h"  // run_tool, ScratchDir
#include "run/locate.h"
#include "run/protocol.h"
#include "run/worker_process.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kConfidence = 0.95;  // of the agreement intervals
constexpr double kToolTimeout_s = 300;

struct PrecisionArgs {
  std::string model, spec, images, a, b, floating, out, cache;
  double agree = 1.0;
  double timeout_s = 300;
  bool json = false;
};

[[noreturn]] void usage(const std::string& message) {
  throw CLI::ValidationError(message, kExitUsage);
}

// One quantised layer as the tool lists it.
struct Layer {
  int op_index = 0;
  std::string op, name;
  int64_t int8_bytes = 0;
};

// The image set's usable images; the others are said and left out.
std::vector<fs::path> image_set(const std::string& path) {
  const Dataset dataset = load_dataset(path);
  std::vector<fs::path> images;
  for (const auto& entry : dataset.images) {
    if (entry.usable())
      images.push_back(entry.path);
    else
      say("image " + entry.key + " left out: " + entry.problem);
  }
  if (images.empty()) throw Error("image set " + path + " holds no usable image");
  return images;
}

// Runs every image once in one load of `artifact` by the environment's worker and returns the
// top-1 class of each.
std::vector<int> top1_labels(const PreparedEnvironment& env, const fs::path& artifact,
                             const std::vector<fs::path>& images, PreprocessCache& cache,
                             double timeout_s) {
  LoadedWorker worker(env.worker, artifact, env.env, to_json(env.spec), timeout_s, env.worker_env);
  std::vector<int> labels;
  for (const auto& image : images) {
    const fs::path tensor = cache.prepare(image, env.spec.input).tensor_path;
    const auto result = worker.request({{"op", "run"},
                                        {"image", image.filename().string()},
                                        {"tensor", tensor.string()},
                                        {"first", false},
                                        {"warmup", 0},
                                        {"repeat", 1}},
                                       "run", "result", "run failed");
    const auto output = protocol::decode_floats(result.at("output").get<std::string>());
    const TopK top = top_k(output, 1, env.spec.output.label_offset);
    labels.push_back(top.ids.empty() ? -1 : top.ids.front());
  }
  worker.quit();
  return labels;
}

int agreeing(const std::vector<int>& a, const std::vector<int>& b) {
  int k = 0;
  for (size_t i = 0; i < a.size(); ++i) k += a[i] == b[i] ? 1 : 0;
  return k;
}

// The tool that lists and writes candidates, run with the TensorFlow venv's Python.
class CandidateWriter {
 public:
  CandidateWriter(fs::path quantised, fs::path floating)
      : quantised_(std::move(quantised)), floating_(std::move(floating)) {
    const char* tf = std::getenv("DELTANN_TF_PYTHON");
    python_ = tf && *tf ? fs::path(tf) : tools_python();
    script_ = tools_dir() / "precision_tflite.py";
    if (!fs::is_regular_file(script_))
      throw Error("the precision tool " + script_.string() + " is missing");
  }
  std::vector<Layer> layers(int64_t& size) const {
    const json reply = call({});
    size = reply.at("size").get<int64_t>();
    std::vector<Layer> layers;
    for (const auto& l : reply.at("layers"))
      layers.push_back({l.at("op_index").get<int>(), l.at("op").get<std::string>(),
                        l.at("name").get<std::string>(), l.at("int8_bytes").get<int64_t>()});
    return layers;
  }
  // Writes the quantised model with the layers `op_indices` in float; the tool's reply (size,
  // int8_layers).
  json write(const std::vector<int>& op_indices, const fs::path& out) const {
    std::vector<std::string> keep;
    for (int i : op_indices) keep.push_back(std::to_string(i));
    return call({"--keep", joined(keep, ","), "--out", out.string()});
  }

 private:
  json call(const std::vector<std::string>& extra) const {
    std::vector<std::string> args = {script_.string(), "--quantised", quantised_.string(),
                                     "--float", floating_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const ToolRun run = run_tool(python_, args, kToolTimeout_s);
    if (!run.ok())
      throw Error("the precision tool failed on " + quantised_.string() + " (" + run.exit.detail +
                  ")" + (run.log.empty() ? "" : ": " + run.log));
    return *run.reply;
  }
  fs::path quantised_, floating_, python_, script_;
};

// The float conversion of B: the same chain with quantize=none.
std::string float_environment(const PreparedEnvironment& b) {
  Environment parsed = parse_environment(b.env);
  if (b.framework != "tflite" || parsed.conversion.empty() || parsed.knob("quantize").empty())
    throw Error("environment '" + b.env +
                "': precision search works on a quantised TFLite conversion, such as "
                "'tflite@onnx>tflite:quantize=dynamic'");
  if (parsed.knob("quantize") == "none")
    throw Error("environment '" + b.env + "' is not quantised (quantize=none)");
  parsed.knobs["quantize"] = "none";
  return parsed.to_string();
}

// One candidate run: a set of layers kept in float and how many labels agreed with A's.
struct Candidate {
  std::vector<size_t> set;
  std::vector<int> labels;  // top-1 per image
  int agree = 0;
  bool holds = false;
};

struct Search {
  std::string spec_source;
  PreparedEnvironment env_a, env_b, env_float;
  std::vector<fs::path> images;
  std::vector<Layer> layers;
  int needed = 0;  // agreeing labels the property asks for
  int before = 0;  // B's agreeing labels
  int after = 0;   // the written model's
  std::vector<int> labels_a, labels_b, labels_after;
  DeltaDebugResult result;
  std::vector<Candidate> candidates;  // in the order they ran
  int64_t size_before = 0, size_after = 0;
  int int8_layers_after = 0;
  double seconds = 0;
  std::vector<int> found_ops() const {
    std::vector<int> ops;
    for (size_t i : result.found) ops.push_back(layers[i].op_index);
    return ops;
  }
};

Search run_search(const PrecisionArgs& a, const CampaignConfig& config, const ModelSpec& spec,
                  const ScratchDir& scratch) {
  Search r;
  const auto start = std::chrono::steady_clock::now();
  r.env_a = prepare_environment(config, spec, a.a, say);
  r.env_b = prepare_environment(config, spec, a.b, say);
  r.env_float = prepare_environment(
      config, spec, a.floating.empty() ? float_environment(r.env_b) : a.floating, say);
  r.images = image_set(a.images);
  r.needed = static_cast<int>(std::ceil(a.agree * static_cast<double>(r.images.size()) - 1e-9));

  PreprocessCache cache(config.cache_dir);
  r.labels_a = top1_labels(r.env_a, r.env_a.artifact, r.images, cache, a.timeout_s);
  r.labels_b = top1_labels(r.env_b, r.env_b.artifact, r.images, cache, a.timeout_s);
  r.before = agreeing(r.labels_a, r.labels_b);
  say("B agrees with A on " + std::to_string(r.before) + "/" + std::to_string(r.images.size()) +
      " labels; wanted: " + std::to_string(r.needed));

  const CandidateWriter writer(r.env_b.artifact, r.env_float.artifact);
  r.layers = writer.layers(r.size_before);
  if (r.layers.empty())
    throw Error("environment '" + r.env_b.env + "': its model " + r.env_b.artifact.string() +
                " has no layer with int8 weights (quantize=float16 keeps float16 weights behind "
                "Dequantize operators), so there is no layer to keep in float");
  std::map<std::vector<size_t>, fs::path> written;
  r.result = delta_debug(r.layers.size(), [&](const std::vector<size_t>& set) {
    Candidate c;
    c.set = set;
    if (set.empty()) {  // B itself: already run
      c.labels = r.labels_b;
    } else {
      std::vector<int> ops;
      for (size_t i : set) ops.push_back(r.layers[i].op_index);
      const fs::path path =
          scratch.path() / ("candidate-" + std::to_string(r.candidates.size()) + ".tflite");
      writer.write(ops, path);
      written[set] = path;
      c.labels = top1_labels(r.env_b, path, r.images, cache, a.timeout_s);
    }
    c.agree = agreeing(r.labels_a, c.labels);
    c.holds = c.agree >= r.needed;
    say("candidate " + std::to_string(r.candidates.size() + 1) + ": " + std::to_string(set.size()) +
        " of " + std::to_string(r.layers.size()) + " layers in float: " + std::to_string(c.agree) +
        "/" + std::to_string(r.images.size()) + " labels agree" + (c.holds ? " (restored)" : ""));
    r.candidates.push_back(c);
    return c.holds;
  });

  if (r.result.outcome != DeltaDebugOutcome::kNotRestorable) {
    const auto agreed = std::find_if(r.candidates.begin(), r.candidates.end(),
                                     [&](const Candidate& c) { return c.set == r.result.found; });
    r.after = agreed->agree;
    r.labels_after = agreed->labels;
    fs::create_directories(fs::absolute(a.out).parent_path());
    if (r.result.found.empty()) {
      fs::copy_file(r.env_b.artifact, a.out, fs::copy_options::overwrite_existing);
    } else {
      fs::copy_file(written.at(r.result.found), a.out, fs::copy_options::overwrite_existing);
    }
    r.size_after = static_cast<int64_t>(fs::file_size(a.out));
    r.int8_layers_after = static_cast<int>(r.layers.size() - r.result.found.size());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

json interval_json(int k, size_t n) {
  const auto ci = stats::rate_interval(k, static_cast<int64_t>(n), kConfidence);
  if (!ci) return nullptr;
  return json::array({json_number(ci->low), json_number(ci->high)});
}

// The images whose top-1 label differs from A's: path, A's label and the other one.
json disagreements(const Search& r, const std::vector<int>& labels) {
  json images = json::array();
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != r.labels_a[i])
      images.push_back(
          {{"image", r.images[i].string()}, {"a", r.labels_a[i]}, {"label", labels[i]}});
  return images;
}

json search_json(const PrecisionArgs& a, const CampaignConfig& config, const Search& r) {
  json layers = json::array();
  for (size_t i : r.result.found)
    layers.push_back(
        {{"op_index", r.layers[i].op_index}, {"op", r.layers[i].op}, {"name", r.layers[i].name}});
  json candidates = json::array();
  for (const auto& c : r.candidates) {
    std::vector<int> ops;
    for (size_t i : c.set) ops.push_back(r.layers[i].op_index);
    candidates.push_back({{"kept", ops}, {"agree", c.agree}, {"restored", c.holds}});
  }
  const size_t n = r.images.size();
  json j = {{"model", fs::absolute(config.model).string()},
            {"spec", r.spec_source},
            {"a", r.env_a.env},
            {"b", r.env_b.env},
            {"float", r.env_float.env},
            {"b_artifact", r.env_b.artifact.string()},
            {"float_artifact", r.env_float.artifact.string()},
            {"images", n},
            {"agree_wanted", r.needed},
            {"agree_before", r.before},
            {"agree_before_ci", interval_json(r.before, n)},
            {"disagree_before", disagreements(r, r.labels_b)},
            {"outcome", to_string(r.result.outcome)},
            {"quantised_layers", r.layers.size()},
            {"kept_in_float", layers},
            {"candidates", candidates},
            {"candidate_runs", r.candidates.size()},
            {"size_before", r.size_before},
            {"seconds", r.seconds}};
  if (r.result.outcome != DeltaDebugOutcome::kNotRestorable) {
    j["agree_after"] = r.after;
    j["agree_after_ci"] = interval_json(r.after, n);
    j["disagree_after"] = disagreements(r, r.labels_after);
    j["output"] = fs::absolute(a.out).string();
    j["size_after"] = r.size_after;
    j["int8_layers_after"] = r.int8_layers_after;
  }
  return j;
}

std::string agreement_text(int k, size_t n) {
  std::ostringstream text;
  text << k << "/" << n;
  if (const auto ci = stats::rate_interval(k, static_cast<int64_t>(n), kConfidence)) {
    text.precision(2);
    text << std::fixed << " (" << 100.0 * k / static_cast<double>(n) << "%, 95% CI "
         << 100 * ci->low << "-" << 100 * ci->high << "%)";
  }
  return text.str();
}

std::string megabytes(int64_t bytes) {
  std::ostringstream text;
  text.precision(2);
  text << std::fixed << static_cast<double>(bytes) / 1e6 << " MB";
  return text.str();
}

std::string search_text(const PrecisionArgs& a, const Search& r) {
  const size_t n = r.images.size();
  std::ostringstream text;
  text << "A: " << r.env_a.env << "\nB: " << r.env_b.env << "\nfloat: " << r.env_float.env
       << "\nspec " << r.spec_source << "\nimages: " << n << " from " << a.images
       << "\nlabels agreeing with A before: " << agreement_text(r.before, n)
       << "; wanted: " << r.needed << "\nquantised layers of B: " << r.layers.size() << "\n";
  switch (r.result.outcome) {
    case DeltaDebugOutcome::kHoldsWithoutAny:
      text << "B already agrees with A: no layer needs to be kept in float\n";
      break;
    case DeltaDebugOutcome::kNotRestorable:
      text << "with all " << r.layers.size()
           << " layers in float the labels still disagree: reduced precision is not (only) "
              "the cause; no model written\n";
      break;
    case DeltaDebugOutcome::kMinimal:
      text << "kept in float: " << r.result.found.size() << " of " << r.layers.size()
           << " layers (none of them can be dropped)\n";
      for (size_t i : r.result.found)
        text << "  op " << r.layers[i].op_index << " " << r.layers[i].op << " " << r.layers[i].name
             << "\n";
      break;
  }
  if (r.result.outcome != DeltaDebugOutcome::kNotRestorable)
    text << "labels agreeing with A after: " << agreement_text(r.after, n) << "\nwrote " << a.out
         << ": " << megabytes(r.size_after) << " (B: " << megabytes(r.size_before) << "), "
         << r.int8_layers_after << " int8 layers\n";
  text << r.candidates.size() << " candidate runs, took " << std::lround(r.seconds * 1000)
       << " ms\n";
  return text.str();
}

void execute(const CLI::App& cmd, PrecisionArgs& a) {
  if (!cmd.remaining().empty()) usage("unexpected argument '" + cmd.remaining().front() + "'");
  if (a.model.empty() || a.images.empty() || a.a.empty() || a.b.empty() || a.out.empty())
    usage("--model M.onnx, --image-set DIR, --a ENV, --b ENV and -o OUT.tflite are required");
  if (!(a.agree > 0 && a.agree <= 1)) usage("--agree must be in (0, 1]");
  if (a.timeout_s <= 0) usage("--timeout must be positive");

  const CampaignConfig config = model_config(a.model, a.spec, a.cache, a.timeout_s);
  if (!fs::is_regular_file(config.model))
    throw Error("model file " + config.model.string() + " does not exist");
  if (!fs::exists(a.images)) throw Error("image set " + a.images + " does not exist");
  const ModelSpec spec = load_spec_saying_default(config);

  const ScratchDir scratch(config.cache_dir);  // the candidates; removed at the end
  Search r = run_search(a, config, spec, scratch);
  r.spec_source = spec_source_text(config.model, config.spec);
  if (a.json)
    std::cout << search_json(a, config, r).dump(2, ' ', false, json::error_handler_t::replace)
              << '\n';
  else  // Layer and image names come from files: the text is made safe as a whole.
    std::cout << terminal_safe_lines(search_text(a, r));
  if (r.result.outcome == DeltaDebugOutcome::kNotRestorable)
    throw NegativeAnswer("even with every quantised layer in float, " +
                         std::to_string(r.candidates.back().agree) + "/" +
                         std::to_string(r.images.size()) + " labels agree with " + r.env_a.env +
                         " (wanted " + std::to_string(r.needed) + ")");
}

}  // namespace

void add_precision(CLI::App& app) {
  auto args = std::make_shared<PrecisionArgs>();
  CLI::App* cmd = app.add_subcommand(
      "precision",
      "find the quantised layers of B that, kept in float, make B's labels agree with A's");
  cmd->add_option("--model", args->model, "the model (ONNX)");
  cmd->add_option("--spec", args->spec, "model spec (default: <model>.spec.json when present)");
  cmd->add_option("--a", args->a, "the reference environment, e.g. ort or tflite@onnx>tflite");
  cmd->add_option("--b", args->b,
                  "the quantised environment, e.g. 'tflite@onnx>tflite:quantize=dynamic'");
  cmd->add_option("--float", args->floating,
                  "the float conversion whose weights replace B's (default: B with quantize=none)");
  cmd->add_option("--image-set", args->images, "the images (a folder or a list file)");
  cmd->add_option("--agree", args->agree,
                  "share of the images whose top-1 label must agree with A's")
      ->capture_default_str();
  cmd->add_option("-o,--out", args->out, "where to write the model with the found layers in float");
  cmd->add_option("--cache", args->cache, "preprocessed-tensor and artifact cache folder");
  cmd->add_option("--timeout", args->timeout_s, "seconds a worker may stay silent")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->allow_extras();
  cmd->callback([cmd, args] { execute(*cmd, *args); });
}

const VerbRegistration kRegistered{85, add_precision};

}  // namespace deltann::cli
