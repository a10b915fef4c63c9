// `deltann precision`: which reduced-precision layers of environment B must be kept in float for
// B's labels to agree with A's again on an image set (docs/PRECISION.md). B is either a
// dynamic-range-quantised TFLite conversion (`tflite@onnx>tflite:quantize=dynamic`: a candidate is
// B's model with the int8 weights of a set of layers replaced by the float conversion's, written
// by python/deltann_tools/precision_tflite.py) or OpenVINO with a reduced inference precision
// (`openvino:precision=bf16`: a candidate is B's model as OpenVINO IR with a set of layers marked
// to stay f32, written by python/deltann_tools/precision_openvino.py). Each candidate runs in B's
// worker. Delta debugging over the layers (delta_debug.h) finds a 1-minimal set, and the model with
// that set in float is written.
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

// One reduced-precision layer as the tool lists it.
struct Layer {
  int op_index = 0;
  std::string op, name;
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

// The layers of B that can be kept in float, B's size, and what the tool could not offer.
struct Listing {
  std::vector<Layer> layers;
  int64_t size = 0;
  std::vector<std::string> not_keepable;  // "name (why)"
};

// What the search changes in B: the tool that lists B's reduced-precision layers and writes a
// candidate with a set of them in float. One per kind of B.
class CandidateWriter {
 public:
  virtual ~CandidateWriter() = default;
  virtual Listing list() const = 0;
  // Writes B with the layers `op_indices` in float to `out`; the written size.
  int64_t write(const std::vector<int>& op_indices, const fs::path& out) const {
    std::vector<std::string> keep;
    for (int i : op_indices) keep.push_back(std::to_string(i));
    return tool({"--keep", joined(keep, ","), "--out", out.string()}).at("size").get<int64_t>();
  }
  // Writes the final model when no layer needs to be kept.
  virtual int64_t write_unchanged(const fs::path& out) const = 0;
  virtual std::string extension() const = 0;
  virtual std::string reduced_name() const = 0;  // what the other layers stay in, e.g. "int8"
  // Every file of a written model (OpenVINO IR is two).
  virtual std::vector<fs::path> files(const fs::path& model) const { return {model}; }

 protected:
  static json call(const fs::path& python, const std::string& script,
                   const std::vector<std::string>& args, const fs::path& subject) {
    const fs::path tool = tools_dir() / script;
    if (!fs::is_regular_file(tool))
      throw Error("the precision tool " + tool.string() + " is missing");
    std::vector<std::string> argv = {tool.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const ToolRun run = run_tool(python, argv, kToolTimeout_s);
    if (!run.ok())
      throw Error("the precision tool failed on " + subject.string() + " (" + run.exit.detail +
                  ")" + (run.log.empty() ? "" : ": " + run.log));
    return *run.reply;
  }
  static std::vector<Layer> parse_layers(const json& reply) {
    std::vector<Layer> layers;
    for (const auto& l : reply.at("layers"))
      layers.push_back({l.at("op_index").get<int>(), l.at("op").get<std::string>(),
                        l.at("name").get<std::string>()});
    return layers;
  }
  // The kind's tool with B's arguments and `extra`; its JSON reply.
  virtual json tool(const std::vector<std::string>& extra) const = 0;
};

// A dynamic-range-quantised TFLite model and its float conversion, with the TensorFlow venv's
// Python (LiteRT's flatbuffer tools).
class TfliteWriter final : public CandidateWriter {
 public:
  TfliteWriter(fs::path quantised, fs::path floating)
      : quantised_(std::move(quantised)), floating_(std::move(floating)) {
    const char* tf = std::getenv("DELTANN_TF_PYTHON");
    python_ = tf && *tf ? fs::path(tf) : tools_python();
  }
  Listing list() const override {
    const json reply = tool({});
    return {parse_layers(reply), reply.at("size").get<int64_t>(), {}};
  }
  int64_t write_unchanged(const fs::path& out) const override {
    fs::copy_file(quantised_, out, fs::copy_options::overwrite_existing);
    return static_cast<int64_t>(fs::file_size(out));
  }
  std::string extension() const override { return ".tflite"; }
  std::string reduced_name() const override { return "int8"; }

 private:
  json tool(const std::vector<std::string>& extra) const override {
    std::vector<std::string> args = {"--quantised", quantised_.string(), "--float",
                                     floating_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return call(python_, "precision_tflite.py", args, quantised_);
  }
  fs::path quantised_, floating_, python_;
};

// B's model under OpenVINO with a reduced inference precision, with the project venv's Python
// (the openvino wheel). The candidates are OpenVINO IR (.xml and .bin).
class OpenvinoWriter final : public CandidateWriter {
 public:
  OpenvinoWriter(fs::path model, std::string precision)
      : model_(std::move(model)), precision_(std::move(precision)) {}
  Listing list() const override {
    const json reply = tool({});
    Listing listing{parse_layers(reply), reply.at("size").get<int64_t>(), {}};
    for (const auto& l : reply.at("not_keepable"))
      listing.not_keepable.push_back(l.at("name").get<std::string>() + " (runs in " +
                                     l.at("runs_in").get<std::string>() + " even when marked)");
    return listing;
  }
  int64_t write_unchanged(const fs::path& out) const override { return write({}, out); }
  std::string extension() const override { return ".xml"; }
  std::string reduced_name() const override { return precision_; }
  std::vector<fs::path> files(const fs::path& model) const override {
    return {model, fs::path(model).replace_extension(".bin")};
  }

 private:
  json tool(const std::vector<std::string>& extra) const override {
    std::vector<std::string> args = {"--model", model_.string(), "--precision", precision_};
    args.insert(args.end(), extra.begin(), extra.end());
    return call(tools_python(), "precision_openvino.py", args, model_);
  }
  fs::path model_;
  std::string precision_;
};

// Whether B is OpenVINO at a reduced inference precision (else it must be a quantised TFLite
// conversion).
bool is_openvino_reduced(const PreparedEnvironment& b) {
  if (b.framework != "openvino") return false;
  if (parse_environment(b.env).knob("precision", "f32") == "f32")
    throw Error("environment '" + b.env +
                "' runs OpenVINO in f32: there is nothing to keep in float; name a reduced "
                "precision, such as 'openvino:precision=bf16'");
  return true;
}

// The float conversion of B: the same chain with quantize=none.
std::string float_environment(const PreparedEnvironment& b) {
  Environment parsed = parse_environment(b.env);
  if (b.framework != "tflite" || parsed.conversion.empty() || parsed.knob("quantize").empty())
    throw Error("environment '" + b.env +
                "': precision search works on a quantised TFLite conversion, such as "
                "'tflite@onnx>tflite:quantize=dynamic', or on OpenVINO at a reduced precision, "
                "such as 'openvino:precision=bf16'");
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
  PreparedEnvironment env_a, env_b;
  std::optional<PreparedEnvironment> env_float;  // TFLite only
  std::string reduced;                           // what B's layers run in: int8, bf16
  std::vector<fs::path> images;
  std::vector<Layer> layers;
  std::vector<std::string> not_keepable;
  int needed = 0;  // agreeing labels the property asks for
  int before = 0;  // B's agreeing labels
  int after = 0;   // the written model's
  std::vector<int> labels_a, labels_b, labels_after;
  DeltaDebugResult result;
  std::vector<Candidate> candidates;  // in the order they ran
  int64_t size_before = 0, size_after = 0;
  int reduced_layers_after = 0;
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
  std::unique_ptr<CandidateWriter> writer;
  if (is_openvino_reduced(r.env_b)) {
    if (!a.floating.empty())
      throw Error(
          "--float names the float conversion of a quantised TFLite B; OpenVINO keeps "
          "layers in f32 itself");
    writer = std::make_unique<OpenvinoWriter>(r.env_b.artifact,
                                              parse_environment(r.env_b.env).knob("precision"));
  } else {
    r.env_float = prepare_environment(
        config, spec, a.floating.empty() ? float_environment(r.env_b) : a.floating, say);
    writer = std::make_unique<TfliteWriter>(r.env_b.artifact, r.env_float->artifact);
  }
  if (fs::path(a.out).extension() != writer->extension())
    throw Error("-o " + a.out + ": the model written for " + r.env_b.env + " is a " +
                writer->extension() + " file");
  r.reduced = writer->reduced_name();
  r.images = image_set(a.images);
  r.needed = static_cast<int>(std::ceil(a.agree * static_cast<double>(r.images.size()) - 1e-9));

  PreprocessCache cache(config.cache_dir);
  r.labels_a = top1_labels(r.env_a, r.env_a.artifact, r.images, cache, a.timeout_s);
  r.labels_b = top1_labels(r.env_b, r.env_b.artifact, r.images, cache, a.timeout_s);
  r.before = agreeing(r.labels_a, r.labels_b);
  say("B agrees with A on " + std::to_string(r.before) + "/" + std::to_string(r.images.size()) +
      " labels; wanted: " + std::to_string(r.needed));

  Listing listing = writer->list();
  r.layers = std::move(listing.layers);
  r.size_before = listing.size;
  r.not_keepable = std::move(listing.not_keepable);
  for (const auto& layer : r.not_keepable) say("cannot be kept in float: " + layer);
  if (r.layers.empty())
    throw Error("environment '" + r.env_b.env + "': its model " + r.env_b.artifact.string() +
                (r.env_float ? " has no layer with int8 weights (quantize=float16 keeps float16 "
                               "weights behind Dequantize operators)"
                             : " has no layer that OpenVINO keeps in f32 when marked") +
                ", so there is no layer to keep in float");
  std::map<std::vector<size_t>, fs::path> written;
  r.result = delta_debug(r.layers.size(), [&](const std::vector<size_t>& set) {
    Candidate c;
    c.set = set;
    if (set.empty()) {  // B itself: already run
      c.labels = r.labels_b;
    } else {
      std::vector<int> ops;
      for (size_t i : set) ops.push_back(r.layers[i].op_index);
      const fs::path path = scratch.path() / ("candidate-" + std::to_string(r.candidates.size()) +
                                              writer->extension());
      writer->write(ops, path);
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
      r.size_after = writer->write_unchanged(a.out);
    } else {
      const auto from = writer->files(written.at(r.result.found));
      const auto to = writer->files(a.out);
      r.size_after = 0;
      for (size_t i = 0; i < from.size(); ++i) {
        fs::copy_file(from[i], to[i], fs::copy_options::overwrite_existing);
        r.size_after += static_cast<int64_t>(fs::file_size(to[i]));
      }
    }
    r.reduced_layers_after = static_cast<int>(r.layers.size() - r.result.found.size());
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
            {"float", r.env_float ? json(r.env_float->env) : json(nullptr)},
            {"b_artifact", r.env_b.artifact.string()},
            {"float_artifact", r.env_float ? json(r.env_float->artifact.string()) : json(nullptr)},
            {"reduced_precision", r.reduced},
            {"not_keepable", r.not_keepable},
            {"images", n},
            {"agree_wanted", r.needed},
            {"agree_before", r.before},
            {"agree_before_ci", interval_json(r.before, n)},
            {"disagree_before", disagreements(r, r.labels_b)},
            {"outcome", to_string(r.result.outcome)},
            {"reduced_layers", r.layers.size()},
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
    j["reduced_layers_after"] = r.reduced_layers_after;
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
  text << "A: " << r.env_a.env << "\nB: " << r.env_b.env << "\n";
  if (r.env_float) text << "float: " << r.env_float->env << "\n";
  text << "spec " << r.spec_source << "\nimages: " << n << " from " << a.images
       << "\nlabels agreeing with A before: " << agreement_text(r.before, n)
       << "; wanted: " << r.needed << "\n"
       << r.reduced << " layers of B: " << r.layers.size() << "\n";
  for (const auto& layer : r.not_keepable) text << "  cannot be kept in float: " << layer << "\n";
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
         << r.reduced_layers_after << " " << r.reduced << " layers\n";
  text << r.candidates.size() << " candidate runs, took " << std::lround(r.seconds * 1000)
       << " ms\n";
  return text.str();
}

void execute(const CLI::App& cmd, PrecisionArgs& a) {
  if (!cmd.remaining().empty()) usage("unexpected argument '" + cmd.remaining().front() + "'");
  if (a.model.empty() || a.images.empty() || a.a.empty() || a.b.empty() || a.out.empty())
    usage("--model M.onnx, --image-set DIR, --a ENV, --b ENV and -o OUT are required");
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
      "find the reduced-precision layers of B that, kept in float, make B's labels agree with "
      "A's");
  cmd->add_option("--model", args->model, "the model (ONNX)");
  cmd->add_option("--spec", args->spec, "model spec (default: <model>.spec.json when present)");
  cmd->add_option("--a", args->a, "the reference environment, e.g. ort or tflite@onnx>tflite");
  cmd->add_option("--b", args->b,
                  "the reduced-precision environment, e.g. "
                  "'tflite@onnx>tflite:quantize=dynamic' or 'openvino:precision=bf16'");
  cmd->add_option("--float", args->floating,
                  "TFLite: the float conversion whose weights replace B's (default: B with "
                  "quantize=none)");
  cmd->add_option("--image-set", args->images, "the images (a folder or a list file)");
  cmd->add_option("--agree", args->agree,
                  "share of the images whose top-1 label must agree with A's")
      ->capture_default_str();
  cmd->add_option("-o,--out", args->out,
                  "where to write the model with the found layers in float (.tflite for a "
                  "TFLite B, .xml (and .bin beside it) for OpenVINO)");
  cmd->add_option("--cache", args->cache, "preprocessed-tensor and artifact cache folder");
  cmd->add_option("--timeout", args->timeout_s, "seconds a worker may stay silent")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->allow_extras();
  cmd->callback([cmd, args] { execute(*cmd, *args); });
}

const VerbRegistration kRegistered{85, add_precision};

}  // namespace deltann::cli
