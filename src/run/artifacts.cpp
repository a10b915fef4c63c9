#include "artifacts.h"

#include <chrono>
#include <fstream>

#include "builder.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#ifdef DELTANN_ONNX_BATCH
#include "core/onnx_batch.h"
#include "core/onnx_model.h"
#endif

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Runs the variant's conversion steps one after another from the model's source form.
std::optional<ArtifactFailure> convert_chain(const PlannedVariant& variant,
                                             const CampaignConfig& config, const ModelSpec& spec,
                                             VariantArtifact& made, CampaignObserver& events) {
  const std::string& first = variant.chain.front().from;
  if (model_format(config.model) != first) {
    const fs::path source = spec.sources.at(first).file;
    if (!fs::is_regular_file(source))
      return ArtifactFailure{
          FailureStage::convert, FailureSymptom::error,
          "the model's " + first + " source " + source.string() + " does not exist"};
    made.file = source;
    made.sha = sha256_file(source);
  }
  json steps = json::array();
  for (const auto& step : variant.chain) {
    const ConversionResult r =
        variant.converter->convert(step, made.file, made.sha, made.spec, variant.env.knobs,
                                   config.cache_dir, config.build_timeout_s);
    if (!r.ok) return ArtifactFailure{FailureStage::convert, r.symptom, r.message};
    const double seconds = r.report.value("convert_s", 0.0);
    events.on_artifact({variant.text, step.name(), r.report.value("tool", step.tool), r.cached,
                        static_cast<int64_t>(seconds * 1e9)});
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
  return std::nullopt;
}

// Runs the engine's compile step on what the conversions (if any) made.
std::optional<ArtifactFailure> compile(const PlannedVariant& variant, const CampaignConfig& config,
                                       VariantArtifact& made, CampaignObserver& events) {
  const BuildResult built = variant.builder->build(made.file, made.sha, made.spec, variant.env,
                                                   config.cache_dir, config.build_timeout_s);
  if (!built.ok) return ArtifactFailure{FailureStage::compile, built.symptom, built.message};
  events.on_artifact({variant.text, "compile", "", built.cached, built.compile_ns});
  const json conversion = made.report.value("conversion", json::array());
  made.report = json::parse(built.report_json, nullptr, false);
  if (!made.report.is_object()) made.report = json::object();
  if (!conversion.empty()) made.report["conversion"] = conversion;
  made.build_ns += built.compile_ns;
  made.compiled_from = made.file;
  made.file = built.artifact;
  made.sha = sha256_file(made.file);
  return std::nullopt;
}

// The version of open_batch_dimension's rewrite, part of its artifacts' key: a change to the
// rewrite makes new artifacts instead of reusing the old ones.
constexpr const char* kOpenBatchVersion = "1";

// Writes `model` with its batch dimension opened to `out` (docs/ENVIRONMENTS.md, "Batches").
void write_open_batch_model(const fs::path& model, const fs::path& out) {
#ifdef DELTANN_ONNX_BATCH
  onnx::ModelProto proto = load_onnx_model(model);
  open_batch_dimension(proto, model.string());
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  if (!proto.SerializeToOstream(&file) || !file.flush())
    throw Error("cannot write the model with an open batch dimension to " + out.string());
#else
  (void)out;
  throw Error(model.string() + ": this deltann was built without ONNX's protobuf classes " +
              "(libonnx-dev), so it cannot open the model's batch dimension for batch > 1");
#endif
}

// A variant of batch > 1 on an ONNX artifact runs the same model with its batch dimension open,
// made once per model and cached by content hash like a conversion step.
std::optional<ArtifactFailure> open_batch(const PlannedVariant& variant,
                                          const CampaignConfig& config, VariantArtifact& made,
                                          CampaignObserver& events) {
  const std::string step = "open-batch";
  const std::string key = sha256_text(made.sha + "|" + step + "|" + kOpenBatchVersion);
  const fs::path folder = config.cache_dir / "artifacts" / "batch";
  const fs::path artifact = folder / (key + ".onnx");
  const fs::path report_path = folder / (key + ".json");
  json report;
  const bool cached = fs::exists(artifact) && fs::exists(report_path);
  try {
    if (cached) {
      std::ifstream in(report_path);
      report = json::parse(in, nullptr, false);
    } else {
      const auto start = std::chrono::steady_clock::now();
      fs::create_directories(folder);
      const ScratchDir scratch(config.cache_dir);
      const fs::path written = scratch.path() / "artifact.onnx";
      write_open_batch_model(made.file, written);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      report = {{"tool", "deltann"}, {"convert_s", seconds}};
      publish_cache_entry(written, artifact, report, report_path);
    }
  } catch (const std::exception& e) {
    return ArtifactFailure{FailureStage::convert, FailureSymptom::error,
                           "opening the batch dimension failed: " + std::string(e.what())};
  }
  if (!report.is_object()) report = json::object();
  const double seconds = report.value("convert_s", 0.0);
  events.on_artifact({variant.text, step, "deltann", cached, static_cast<int64_t>(seconds * 1e9)});
  made.build_ns += static_cast<int64_t>(seconds * 1e9);
  made.report["open_batch"] = {{"from_sha256", made.sha}, {"cached", cached}};
  made.file = artifact;
  made.sha = sha256_file(artifact);
  return std::nullopt;
}

}  // namespace

std::optional<ArtifactFailure> build_artifact(const PlannedVariant& variant,
                                              const CampaignConfig& config, const ModelSpec& spec,
                                              const std::string& model_sha, VariantArtifact& made,
                                              CampaignObserver& events) {
  made = {config.model, model_sha, spec, json::object(), 0, {}};
  if (!variant.chain.empty())
    if (auto failed = convert_chain(variant, config, spec, made, events)) return failed;
  if (variant.builder)
    if (auto failed = compile(variant, config, made, events)) return failed;
  if (batch_size(variant.env) > 1 && model_format(made.file) == "onnx")
    if (auto failed = open_batch(variant, config, made, events)) return failed;
  return std::nullopt;
}

}  // namespace deltann
