// `deltann run`: with no arguments, the demo campaign; otherwise the given model, images and
// environments.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "analysis_options.h"
#include "deltann/campaign.h"
#include "deltann/campaign_file.h"
#include "deltann/compare.h"
#include "deltann/error.h"
#include "deltann/preprocess.h"
#include "deltann/store.h"
#include "deltann/text.h"
#include "run/locate.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

// The demo: every engine and every conversion chain on the real model.
// - ONNX Runtime at every graph optimisation level and OpenCV DNN with fusion on and off, each at
//   1 and 2 threads; TVM at each opt level (1 thread: its untuned CPU kernels are serial), on the
//   CPU and on a CUDA GPU when there is one.
// - LibTorch, OpenVINO and LiteRT at 1 thread, on artifacts made by the ecosystems' converters
//   from the PyTorch original or the ONNX export, including the TFLite converter's weight
//   quantisation and its silent undoing by tf2onnx (the published study's conversion fault).
std::vector<std::string> demo_environments() {
  std::vector<std::string> envs;
  for (const char* threads : {"1", "2"}) {
    for (const char* opt : {"disable", "basic", "extended", "all"})
      envs.push_back(std::string("ort:opt=") + opt + ",threads=" + threads);
    for (const char* opt : {"off", "on"})
      envs.push_back(std::string("opencv:opt=") + opt + ",threads=" + threads);
  }
  for (const char* opt : {"0", "1", "2", "3", "4"})
    envs.push_back(std::string("tvm:opt=") + opt + ",threads=1");
  // The same levels compiled for an NVIDIA GPU: run where one is present, otherwise skipped with
  // the reason (the CUDA code is still compiled only when the variant runs).
  for (const char* opt : {"0", "1", "2", "3", "4"})
    envs.push_back(std::string("tvm:opt=") + opt + ",device=cuda");
  // The float64 reference executor: every engine's error against high precision.
  envs.push_back("reference:threads=1");
  for (const char* opt : {"none", "freeze", "optimize_for_inference"})
    envs.push_back(std::string("libtorch@pytorch>torchscript:opt=") + opt + ",threads=1");
  for (const char* precision : {"f32", "bf16"})
    envs.push_back(std::string("openvino:precision=") + precision + ",threads=1");
  for (const char* opt : {"none", "xnnpack"})
    envs.push_back(std::string("tflite@onnx>tflite:opt=") + opt + ",threads=1");
  for (const std::string chain :
       {"ort@pytorch>onnx:threads=1", "libtorch@onnx>torchscript:threads=1",
        "tflite@pytorch>onnx>tflite:opset=10,threads=1", "openvino@onnx>tflite:threads=1",
        "ort@onnx>tflite>onnx:threads=1", "tflite@onnx>tflite:quantize=dynamic,threads=1",
        "ort@onnx>tflite>onnx:quantize=dynamic,threads=1"})
    envs.push_back(chain);
  return envs;
}

std::filesystem::path demo_dir() { return default_demo_dir(); }

std::string duration_text(double seconds) {
  const long s = std::lround(seconds);
  return s >= 60 ? std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s"
                 : std::to_string(s) + " s";
}

// What a person sees of a campaign on standard error: its events as lines, and a progress line
// that rewrites itself on a terminal (and appears at each tenth of the work otherwise).
class TerminalDisplay final : public MessageLines {
 public:
  explicit TerminalDisplay(bool quiet)
      : MessageLines([this](const std::string& line) { print(line); }), quiet_(quiet) {}

  void on_progress(int64_t done, int64_t total, double eta) override {
    if (quiet_) return;
    const std::string text = std::to_string(done) + "/" + std::to_string(total) + " inferences (" +
                             std::to_string(100 * done / std::max<int64_t>(total, 1)) +
                             "%), about " + duration_text(eta) + " left";
    if (tty_) {
      std::cerr << "\r\033[K" << text << std::flush;
      if (done == total) std::cerr << '\n';
    } else if (const int decile = static_cast<int>(10 * done / std::max<int64_t>(total, 1));
               decile != last_decile_) {
      last_decile_ = decile;
      std::cerr << text << '\n';
    }
  }

 private:
  void print(const std::string& line) const {
    if (tty_) std::cerr << "\r\033[K";
    std::cerr << terminal_safe(line) << '\n';  // lines name images and quote engine messages
  }

  bool quiet_;
  bool tty_ = ::isatty(STDERR_FILENO);
  int last_decile_ = -1;
};

struct RunOptions {
  CampaignConfig config;  // the flags' values; campaign_config() takes those that were given
  AnalysisOptions analysis;
  std::string campaign_file, model, spec, images, labels, synsets, db, cache, events;
  std::string timing_images = std::to_string(kDefaultTimingImages);
  bool json = false;
  bool quiet = false;
};

// --timing-images: a count of images, or "all".
std::optional<int64_t> parse_timing_images(const std::string& text) {
  if (text == "all") return std::nullopt;
  int64_t count = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (ec != std::errc() || end != text.data() + text.size() || count < 0)
    throw Error("--timing-images takes a number of images (0 or more) or 'all', not '" + text +
                "'");
  return count;
}

// The campaign this command line asks for: a campaign file's, the flags' alone, or (with neither
// a file nor a model, images and environments) the demo's. Each flag given beside a campaign file
// takes the place of the file's value, so that one file serves for variations of its campaign
// (`--db other.db`, `--repeat 20`); a flag that was not given leaves the file's value alone.
CampaignConfig campaign_config(const RunOptions& o, const CLI::App& cmd) {
  const auto given = [&cmd](const char* flag) { return cmd.count(flag) > 0; };
  const bool file = !o.campaign_file.empty();
  const bool demo = !file && !given("--model") && !given("--images") && !given("--env");
  CampaignConfig c;
  if (file) {
    c = read_campaign_file(o.campaign_file).config;  // its placement is for a cluster's plan
  } else if (demo) {
    const auto dir = demo_dir();
    if (!std::filesystem::exists(dir / "efficientnet-lite0.onnx"))
      throw Error("demo model not found in " + dir.string() + "; run scripts/setup first");
    c.model = dir / "efficientnet-lite0.onnx";
    c.images = dir / "images.txt";
    c.environments = demo_environments();
    c.db = "demo.db";
  }
  if (given("--model")) c.model = o.model;
  if (given("--spec")) c.spec = o.spec;
  if (given("--images")) c.images = o.images;
  if (given("--labels")) c.dataset.labels = o.labels;
  if (given("--synsets")) c.dataset.synsets = o.synsets;
  if (given("--env")) c.environments = o.config.environments;
  if (given("--db")) c.db = o.db;
  if (given("--cache")) c.cache_dir = o.cache;
  if (given("--warmup")) c.warmup = o.config.warmup;
  if (given("--repeat")) c.repeat = o.config.repeat;
  if (given("--timing-images")) c.timing_images = parse_timing_images(o.timing_images);
  if (given("--keep-outputs")) c.keep_outputs_up_to = o.config.keep_outputs_up_to;
  if (given("--timeout")) c.timeout_s = o.config.timeout_s;
  if (given("--build-timeout")) c.build_timeout_s = o.config.build_timeout_s;
  if (given("--shuffle")) c.shuffle_seed = o.config.shuffle_seed;
  if (given("--retry-failed")) c.retry_failed = o.config.retry_failed;
  if (given("--new-model")) c.new_model = o.config.new_model;
  if (given("--wait")) c.wait_for_lock = o.config.wait_for_lock;
  if (!file && !demo) {
    if (c.model.empty() || c.images.empty() || c.environments.empty())
      throw Error(
          "run needs --model, --images and at least one --env, or a campaign file (or no "
          "arguments for the demo)");
    if (c.db.empty()) throw Error("run needs --db FILE for the results");
  }
  if (c.cache_dir.empty()) c.cache_dir = default_cache_dir();
  c.worker_dir = default_worker_dir();
  return c;
}

void execute(const RunOptions& o, const CLI::App& cmd) {
  const CampaignConfig c = campaign_config(o, cmd);

  TerminalDisplay terminal(o.quiet);
  CampaignEventFanout events;
  events.subscribe(terminal);
  std::ofstream event_file;
  std::optional<JsonEventLog> event_log;
  if (!o.events.empty()) {
    event_file.open(o.events, std::ios::trunc);
    if (!event_file) throw Error("cannot write the event log " + o.events);
    events.subscribe(event_log.emplace(event_file));
  }
  const CampaignOutcome outcome = run_campaign(c, events);
  std::cerr << "campaign: " << outcome.variants_run << " variants run, " << outcome.variants_failed
            << " failed, " << outcome.variants_skipped << " skipped or already complete; "
            << outcome.images_ok << " images ready, " << outcome.images_bad << " unusable, "
            << outcome.images_duplicate << " duplicate entries run once as their first copy; "
            << outcome.images_timed << " images timed; " << outcome.results_written
            << " results written to " << c.db.string() << "\n";
  Store store(c.db, StoreMode::ReadOnly);
  const Comparison comparison = compare_variants(store, o.analysis);
  print(comparison, o.json);
  // A campaign that produced nothing must not pass for one that did: a pipeline stops here.
  const bool any_result = std::any_of(comparison.variants.begin(), comparison.variants.end(),
                                      [](const VariantSummary& v) { return v.images > 0; });
  if (!any_result)
    throw NegativeAnswer(
        "no variant produced a result: " + std::to_string(comparison.variants.size()) +
        " variant(s), " + std::to_string(outcome.variants_failed) + " failed, " +
        std::to_string(outcome.variants_skipped) + " skipped" +
        (outcome.images_ok == 0 ? ", and no image was usable" : "") + " (reasons above)");
}

}  // namespace

void add_run(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* run = app.add_subcommand(
      "run", "run a campaign (no arguments: the demo campaign; FILE: a campaign file)");
  run->add_option("campaign", options->campaign_file,
                  "campaign file (TOML, docs/CAMPAIGN_FILE.md); a flag given beside it takes the "
                  "place of the file's value");
  run->add_option("--model", options->model, "ONNX image classifier");
  run->add_option("--spec", options->spec,
                  "input/output spec JSON (default: <model>.spec.json, else ImageNet defaults)");
  run->add_option("--images", options->images,
                  "folder, list file (path [label] per line), one image file or ImageNet val "
                  "layout");
  run->add_option("--labels", options->labels,
                  "list file with ground-truth labels for a plain folder");
  run->add_option("--synsets", options->synsets, "synset order for the ImageNet layout");
  // One environment per --env, so that a campaign file after it is not taken for a second one.
  run->add_option("--env", options->config.environments,
                  "environment, e.g. ort:opt=all,threads=2 (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--db", options->db, "campaign database (demo: demo.db)");
  run->add_option("--cache", options->cache, "preprocessed-tensor cache folder")
      ->capture_default_str();
  run->add_option("--warmup", options->config.warmup, "untimed runs after the first inference")
      ->capture_default_str();
  run->add_option("--repeat", options->config.repeat, "timed runs per image")
      ->capture_default_str();
  run->add_option("--timing-images", options->timing_images,
                  "how many images are timed (warm-up and repeats), chosen by content hash; the "
                  "others run once for their outputs ('all': every image)")
      ->capture_default_str();
  run->add_option("--keep-outputs", options->config.keep_outputs_up_to,
                  "store full output vectors when the dataset has at most this many images")
      ->capture_default_str();
  run->add_option("--timeout", options->config.timeout_s,
                  "seconds a worker may stay silent before it counts as hung")
      ->capture_default_str();
  run->add_option("--build-timeout", options->config.build_timeout_s,
                  "seconds a conversion step or compile may take before it is stopped")
      ->capture_default_str();
  run->add_option("--shuffle", options->config.shuffle_seed,
                  "run the variants in a random order drawn from this seed");
  run->add_flag("--retry-failed", options->config.retry_failed,
                "run variants and images that failed before again");
  run->add_flag("--new-model", options->config.new_model,
                "add the model to a database that holds results of another model file or spec "
                "(refused otherwise)");
  run->add_flag("--wait", options->config.wait_for_lock,
                "wait for another campaign using the same --db instead of refusing to start");
  add_analysis_options(run, options->analysis);
  run->add_flag("--json", options->json, "print the summary as JSON");
  run->add_flag("--quiet", options->quiet, "no progress line");
  run->add_option("--events", options->events,
                  "also write the campaign's events to this file, one JSON object per line");
  run->callback([options, run] { execute(*options, *run); });
}

const VerbRegistration kRegistered{10, add_run};

}  // namespace deltann::cli
