#include "artifacts.h"

#include "deltann/hash.h"

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
  made.file = built.artifact;
  made.sha = sha256_file(made.file);
  return std::nullopt;
}

}  // namespace

std::optional<ArtifactFailure> build_artifact(const PlannedVariant& variant,
                                              const CampaignConfig& config, const ModelSpec& spec,
                                              const std::string& model_sha, VariantArtifact& made,
                                              CampaignObserver& events) {
  made = {config.model, model_sha, spec, json::object(), 0};
  if (!variant.chain.empty())
    if (auto failed = convert_chain(variant, config, spec, made, events)) return failed;
  if (variant.builder)
    if (auto failed = compile(variant, config, made, events)) return failed;
  return std::nullopt;
}

}  // namespace deltann
