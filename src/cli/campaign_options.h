// The options that shape a campaign's results, declared once for `run` and `plan` (a plan folder
// is the same campaign run as shards, docs/SCALE_OUT.md), and the demo campaign that both take
// when given none.
#pragma once

#include <charconv>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "deltann/campaign.h"
#include "deltann/error.h"
#include "deltann/preprocess.h"
#include "run/locate.h"

namespace deltann::cli {

struct CampaignOptions {
  CampaignConfig config;
  std::string model, spec, images, labels, synsets, cache;
  std::string timing_images = std::to_string(kDefaultTimingImages);
};

// The demo: every engine and every conversion chain on the real model.
// - ONNX Runtime at every graph optimisation level and OpenCV DNN with fusion on and off, each at
//   1 and 2 threads; TVM at each opt level (1 thread: its untuned CPU kernels are serial), on the
//   CPU and on a CUDA GPU when there is one.
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
  cmd->add_option("--model", o.model, "ONNX image classifier");
  cmd->add_option("--spec", o.spec,
                  "input/output spec JSON (default: <model>.spec.json, else ImageNet defaults)");
  cmd->add_option("--images", o.images,
                  "folder, list file (path [label] per line), one image file or ImageNet val "
                  "layout");
  cmd->add_option("--labels", o.labels, "list file with ground-truth labels for a plain folder");
  cmd->add_option("--synsets", o.synsets, "synset order for the ImageNet layout");
  cmd->add_option("--env", o.config.environments,
                  "environment, e.g. ort:opt=all,threads=2 (repeatable)");
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

// Fills in o.config from the options (the demo campaign when no model, images or environment is
// given); `verb` names the command in messages. Returns whether it is the demo.
inline bool resolve_campaign(CampaignOptions& o, const std::string& verb) {
  CampaignConfig& c = o.config;
  c.timing_images = parse_timing_images(o.timing_images);
  const bool demo = o.model.empty() && o.images.empty() && c.environments.empty();
  if (demo) {
    const auto dir = default_demo_dir();
    if (!std::filesystem::exists(dir / "efficientnet-lite0.onnx"))
      throw Error("demo model not found in " + dir.string() + "; run scripts/setup first");
    c.model = dir / "efficientnet-lite0.onnx";
    c.images = dir / "images.txt";
    c.environments = demo_environments();
  } else {
    if (o.model.empty() || o.images.empty() || c.environments.empty())
      throw Error(verb +
                  " needs --model, --images and at least one --env (or no arguments for the demo)");
    c.model = o.model;
    c.images = o.images;
  }
  if (!o.spec.empty()) c.spec = o.spec;
  if (!o.labels.empty()) c.dataset.labels = o.labels;
  if (!o.synsets.empty()) c.dataset.synsets = o.synsets;
  c.cache_dir = o.cache.empty() ? default_cache_dir() : std::filesystem::path(o.cache);
  c.worker_dir = default_worker_dir();
  return demo;
}

}  // namespace deltann::cli
