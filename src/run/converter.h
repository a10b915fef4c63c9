// Conversion chains: `tflite@pytorch>onnx>tflite` runs the artifact made by converting the model's
// PyTorch source to ONNX and that to TFLite, each step with the ecosystem's own converter. The
// steps are done by one tool, `convert.py` in the tools folder (docs/CONVERSIONS.md); each step's
// output is cached by a content hash, so a chain shared by several variants is converted once.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/outcomes.h"
#include "deltann/spec.h"
#include "describe_cache.h"

namespace deltann {

struct ConversionStep {
  std::string from, to;            // formats: pytorch, onnx, torchscript, tflite, keras
  std::string tool;                // "onnx2tf + tf.lite.TFLiteConverter"
  std::string tool_version;        // "onnx2tf 1.29.24, tensorflow 2.19.0"
  std::vector<std::string> knobs;  // conversion knobs the step reads (quantize)
  std::string unavailable;         // why the step cannot run here ("" = it can)
  std::string name() const { return from + ">" + to; }
};

struct ConversionResult {
  bool ok = false;
  bool cached = false;
  std::filesystem::path artifact;
  ModelSpec spec;         // the converted artifact's spec (layout and names may change)
  nlohmann::json report;  // what the tool said: tool, tool_version, convert_s, notes
  FailureSymptom symptom =
      FailureSymptom::error;  // when it failed: error | crash | abort | hang | killed
  std::string message;
};

class Converter {
 public:
  // The conversion tool of the tools folder, or nullopt when there is none. Its `--describe`
  // reply is kept in `describe_cache` when there is one.
  static std::optional<Converter> find(
      std::shared_ptr<const DescribeCache> describe_cache = nullptr);

  // Runs `--describe` once (or finds its reply in the describe cache); throws Error with the
  // tool's output when it fails.
  const nlohmann::json& describe();
  std::vector<ConversionStep> steps();
  // Knobs of the conversions (quantize), in the form engines use for theirs.
  std::vector<Knob> knobs();
  // The step from>to, or nullopt when the tool has none.
  std::optional<ConversionStep> step(const std::string& from, const std::string& to);

  // Converts `input` (content hash `input_sha`, spec `spec`) by one step with the given knobs, or
  // finds the result in `cache_dir`.
  ConversionResult convert(const ConversionStep& step, const std::filesystem::path& input,
                           const std::string& input_sha, const ModelSpec& spec,
                           const std::map<std::string, std::string>& knobs,
                           const std::filesystem::path& cache_dir, double timeout_s);

 private:
  Converter(std::filesystem::path python, std::filesystem::path script,
            std::shared_ptr<const DescribeCache> describe_cache);
  // The hash of convert.py and the modules it imports (architectures.py, environment.py,
  // keras_files.py): part of the describe key and of every converted artifact's key.
  std::string tool_fingerprint() const;
  std::filesystem::path python_, script_;
  std::shared_ptr<const DescribeCache> describe_cache_;
  std::optional<nlohmann::json> description_;
};

}  // namespace deltann
