// The options that shape a campaign's results, declared once for `run` and `plan` (a plan folder
// is the same campaign run as shards, docs/SCALE_OUT.md): a campaign file (docs/CAMPAIGN_FILE.md),
// flags, or both, the flags given taking the place of the file's values; and the demo campaign
// that both take when given neither.
#pragma once

#include <charconv>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "deltann/campaign.h"
#include "deltann/campaign_file.h"
#include "deltann/error.h"
#include "deltann/preprocess.h"
#include "run/locate.h"

namespace deltann::cli {

struct CampaignOptions {
  CampaignConfig config;  // the flags' values; resolve_campaign() makes it the campaign's
  std::string campaign_file, model, spec, images, labels, synsets, cache, db;
  std::string timing_images = std::to_string(kDefaultTimingImages);
  std::optional<CampaignFile> file;  // read by resolve_campaign() when one was given
};

// The demo's timing: how many images are timed, and the untimed runs before each one's repeats.
inline constexpr int64_t kDemoTimingImages = 20;
inline constexpr int kDemoWarmup = 2;

// The demo: every engine and every conversion chain on the real model.
// - ONNX Runtime at every graph optimisation level and OpenCV DNN with fusion on and off, each at
//   1 and 2 threads; TVM at opt levels 1-4 on the CPU (1 thread: its untuned CPU kernels are
//   serial) and 0-4 on a CUDA GPU when there is one.
// - LibTorch, OpenVINO and LiteRT at 1 thread, on artifacts made by the ecosystems' converters
//   from the PyTorch original or the ONNX export, including the TFLite converter's weight
//   quantisation and its silent undoing by tf2onnx (the published study's conversion fault).
inline std::vector<std::string> demo_environments() {
  std::vector<std::string> envs;
  for (const char* threads : {"1", "2"}) {
    for (const char* opt : {"disable", "basic", "extended", "all"})
      envs.push_back(std::string("ort:opt=") + opt + ",threads=" + threads);
    for (const char* opt : {"off", "on"})
      envs.push_back(std::string("opencv:opt=") + opt + ",threads=" + threads);
  }
  // Not opt=0 on the CPU: LLVM -O0 without fusion runs about 240x slower than ONNX Runtime (1.2 s
  // an image), and over the demo's 225 images it alone would take longer than the rest of the
  // demo together; `--env tvm:opt=0` runs it.
  for (const char* opt : {"1", "2", "3", "4"})
    envs.push_back(std::string("tvm:opt=") + opt + ",threads=1");
  // Every level compiled for an NVIDIA GPU: run where one is present, otherwise skipped with
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

// --timing-images: a count of images, or "all".
inline std::optional<int64_t> parse_timing_images(const std::string& text) {
  if (text == "all") return std::nullopt;
  int64_t count = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (ec != std::errc() || end != text.data() + text.size() || count < 0)
    throw Error("--timing-images takes a number of images (0 or more) or 'all', not '" + text +
                "'");
  return count;
}

inline void add_campaign_options(CLI::App* cmd, CampaignOptions& o) {
  cmd->add_option("campaign", o.campaign_file,
                  "campaign file (TOML, docs/CAMPAIGN_FILE.md); a flag given beside it takes the "
                  "place of the file's value");
  cmd->add_option("--model", o.model, "ONNX image classifier");
  cmd->add_option("--spec", o.spec,
                  "input/output spec JSON (default: <model>.spec.json, else ImageNet defaults)");
  cmd->add_option("--images", o.images,
                  "folder, list file (path [label] per line), one image file or ImageNet val "
                  "layout");
  cmd->add_option("--labels", o.labels, "list file with ground-truth labels for a plain folder");
  cmd->add_option("--synsets", o.synsets, "synset order for the ImageNet layout");
  // One environment per --env, so that a campaign file after it is not taken for a second one.
  cmd->add_option("--env", o.config.environments,
                  "environment, e.g. ort:opt=all,threads=2 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--cache", o.cache, "preprocessed-tensor cache folder")->capture_default_str();
  cmd->add_option("--warmup", o.config.warmup, "untimed runs after the first inference")
      ->capture_default_str();
  cmd->add_option("--repeat", o.config.repeat, "timed runs per image")->capture_default_str();
  cmd->add_option("--timing-images", o.timing_images,
                  "how many images are timed (warm-up and repeats), chosen by content hash; the "
                  "others run once for their outputs ('all': every image)")
      ->capture_default_str();
  cmd->add_option("--keep-outputs", o.config.keep_outputs_up_to,
                  "store full output vectors when the dataset has at most this many images")
      ->capture_default_str();
  cmd->add_option("--timeout", o.config.timeout_s,
                  "seconds a worker may stay silent before it counts as hung")
      ->capture_default_str();
  cmd->add_option("--build-timeout", o.config.build_timeout_s,
                  "seconds a conversion step or compile may take before it is stopped")
      ->capture_default_str();
  cmd->add_option("--shuffle", o.config.shuffle_seed,
                  "run the variants in a random order drawn from this seed");
}

// The demo's images: the expanded photo set scripts/setup makes (each demo photo as it is and
// under a few ImageNet-C corruptions, docs/DATASETS.md), enough images for a label-difference rate
// of a few percent to be told from none; the 9 photos alone where it has not been made yet.
inline std::filesystem::path demo_images(const std::filesystem::path& dir) {
  const auto expanded = dir / "expanded" / "images.txt";
  if (std::filesystem::exists(expanded)) return expanded;
  std::cerr << "deltann: note: " << expanded.string()
            << " does not exist (scripts/setup makes it); the demo runs on the photos of "
            << (dir / "images.txt").string() << " alone\n";
  return dir / "images.txt";
}

// Makes o.config the campaign the command line asks for: a campaign file's, the flags' alone, or
// (with neither a file nor environments) the demo's. The demo's environments run on the demo model
// and images unless --model or --images name others (`--model
// assets/demo/efficientnet-lite1.onnx --db lite1.db`: the demo campaign on another model). Each
// flag given beside a campaign file takes the place of the file's value, so that one file serves
// for variations of its campaign (`--db other.db`, `--repeat 20`); a flag that was not given
// leaves the file's value alone. `verb` names the command in messages. Returns whether it is the
// demo on its own model (whose database may default to demo.db). The database is left to the
// verb (o.db, the file's `db`): `plan` has none of its own.
inline bool resolve_campaign(CampaignOptions& o, const CLI::App& cmd, const std::string& verb) {
  const auto given = [&cmd](const char* flag) {
    const CLI::Option* option = cmd.get_option_no_throw(flag);
    return option != nullptr && option->count() > 0;
  };
  const bool from_file = !o.campaign_file.empty();
  const bool demo = !from_file && !given("--env");
  CampaignConfig c;
  if (from_file) {
    o.file = read_campaign_file(o.campaign_file);
    c = o.file->config;
  } else if (demo) {
    const auto dir = default_demo_dir();
    if (!given("--model") && !std::filesystem::exists(dir / "efficientnet-lite0.onnx"))
      throw Error("demo model not found in " + dir.string() + "; run scripts/setup first");
    c.model = dir / "efficientnet-lite0.onnx";
    if (!given("--images")) c.images = demo_images(dir);
    c.environments = demo_environments();
    // 20 of the 225 images timed (100 samples per variant), the others run once for their
    // outputs: the demo stays near 10 minutes on 2 cores (README.md, "What the demo shows").
    c.timing_images = kDemoTimingImages;
    c.warmup = kDemoWarmup;
  }
  const CampaignConfig& flags = o.config;
  if (given("--model")) c.model = o.model;
  if (given("--spec")) c.spec = o.spec;
  if (given("--images")) c.images = o.images;
  if (given("--labels")) c.dataset.labels = o.labels;
  if (given("--synsets")) c.dataset.synsets = o.synsets;
  if (given("--env")) c.environments = flags.environments;
  if (given("--db")) c.db = o.db;
  if (given("--cache")) c.cache_dir = o.cache;
  if (given("--warmup")) c.warmup = flags.warmup;
  if (given("--repeat")) c.repeat = flags.repeat;
  if (given("--timing-images")) c.timing_images = parse_timing_images(o.timing_images);
  if (given("--keep-outputs")) c.keep_outputs_up_to = flags.keep_outputs_up_to;
  if (given("--timeout")) c.timeout_s = flags.timeout_s;
  if (given("--build-timeout")) c.build_timeout_s = flags.build_timeout_s;
  if (given("--shuffle")) c.shuffle_seed = flags.shuffle_seed;
  // Options of `run` alone (how it runs, not what): switches only turn things on.
  if (given("--jobs")) c.jobs = flags.jobs;
  if (given("--retry-failed")) c.retry_failed = true;
  if (given("--new-model")) c.new_model = true;
  if (given("--wait")) c.wait_for_lock = true;
  if (!from_file && !demo && (c.model.empty() || c.images.empty() || c.environments.empty()))
    throw Error(verb +
                " needs --model, --images and at least one --env, or a campaign file (or no "
                "arguments for the demo)");
  if (c.cache_dir.empty()) c.cache_dir = default_cache_dir();
  c.worker_dir = default_worker_dir();
  o.config = c;
  return demo && !given("--model");
}

}  // namespace deltann::cli
