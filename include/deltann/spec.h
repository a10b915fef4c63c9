// Input and output specs of a model: how an image becomes the model's input tensor and how the
// output vector maps to class ids. Read from a JSON sidecar (`model.spec.json`).
#pragma once

#include <array>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace deltann {

enum class Layout { NCHW, NHWC };
enum class ChannelOrder { RGB, BGR };
enum class OutputKind { Logits, Probabilities };

struct InputSpec {
  std::string name;  // input tensor name ("" = the model's first input)
  std::vector<int64_t> shape{1, 3, 224, 224};
  Layout layout = Layout::NCHW;
  ChannelOrder channel_order = ChannelOrder::RGB;
  int resize = 256;                        // shorter side is resized to this before the crop
  int crop = 224;                          // centre crop, square
  std::string interpolation = "bilinear";  // bilinear | nearest | area | bicubic
  float scale = 1.0f / 255.0f;             // pixel (0..255) * scale, then (x - mean) / std
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  // `"kind": "tensor"`: the model takes a raw tensor of any shape (a subgraph cut out of a
  // network by `deltann localize --reproduce`), fed from a .npy file; images cannot be
  // preprocessed for it, so the image fields above are ignored.
  bool raw_tensor = false;

  int height() const;
  int width() const;
  // Canonical text of every field that changes the preprocessed tensor; the cache key uses it.
  std::string preprocessing_key() const;
};

struct OutputSpec {
  std::string name;      // output tensor name ("" = the model's first output)
  int classes = 1000;    // number of classes the ids refer to
  int label_offset = 0;  // output index = class id + label_offset (1 for TF's background slot)
  OutputKind kind = OutputKind::Logits;
  std::optional<std::filesystem::path> class_names;  // one name per line, absolute
};

// Another form of the same model that a conversion chain can start from, such as the PyTorch
// original: `"sources": {"pytorch": {"file": "model.pth", "architecture": "mobilenet_v2"}}`.
struct ModelSource {
  std::filesystem::path file;  // absolute
  std::string architecture;  // for `pytorch`: a name known to python/deltann_tools/architectures.py
};

struct ModelSpec {
  std::string name;
  InputSpec input;
  OutputSpec output;
  std::map<std::string, ModelSource> sources;  // by format: "pytorch", "onnx", "tflite", ...
};

// The artifact format of a model file, from its extension: onnx (.onnx), tflite (.tflite),
// torchscript (.pt, .torchscript), pytorch (.pth); "" when unknown.
std::string model_format(const std::filesystem::path& file);

// Parses a spec from JSON; relative paths resolve against `base_dir`. Throws Error naming the
// offending field and its valid values.
ModelSpec parse_model_spec(const nlohmann::json& j, const std::filesystem::path& base_dir);
// Reads `<model without extension>.spec.json` when present, otherwise returns the ImageNet
// defaults with `name` from the file name. Throws Error when the sidecar is malformed.
ModelSpec load_model_spec(const std::filesystem::path& model_path,
                          const std::optional<std::filesystem::path>& spec_path = std::nullopt);
nlohmann::json to_json(const ModelSpec& spec);

// The spec file load_model_spec reads for `model_path`: `spec_path` when given, else
// `<model>.spec.json` beside the model when it exists; nullopt when the ImageNet defaults apply.
// Absolute, so that it names the same file from any working directory.
std::optional<std::filesystem::path> model_spec_file(
    const std::filesystem::path& model_path,
    const std::optional<std::filesystem::path>& spec_path = std::nullopt);

// Which spec applies, for people: the spec file's absolute path, or "ImageNet defaults (no
// <model>.spec.json beside the model)". Campaigns record it (meta `spec_source`); headers show it.
std::string spec_source_text(const std::filesystem::path& model_path,
                             const std::optional<std::filesystem::path>& spec_path = std::nullopt);

// The input and output a spec describes, in one line: shape, layout, channel order, resize, crop,
// interpolation, scale, mean, std, classes, output kind.
std::string spec_summary(const ModelSpec& spec);

// Said when no spec file applies to `model_path`, so that defaults are never taken silently:
// that the ImageNet defaults apply, which they are, and how to give a spec.
std::string default_spec_note(const std::filesystem::path& model_path);

// Reads one class name per line; returns an empty list when the path is unset.
std::vector<std::string> load_class_names(const OutputSpec& spec);

}  // namespace deltann
