#include "planner.h"

#include <algorithm>

#include "deltann/error.h"
#include "deltann/text.h"

namespace deltann {
namespace fs = std::filesystem;

namespace {

// `knob=each` on a set knob stands for one variant per member, e.g. each pass of an opt level
// switched off in turn.
std::vector<Environment> expand_each(const Environment& env, const EngineEntry& engine) {
  if (!engine.info) return {env};
  for (const auto& knob : engine.info->knobs) {
    if (!knob.subset || env.knob(knob.name) != "each") continue;
    const std::vector<std::string> members = engine.each_members(knob.name, env);
    if (members.empty())
      throw Error("environment '" + env.to_string() + "': knob '" + knob.name +
                  "' has no members to take in turn");
    std::vector<Environment> expanded;
    for (const auto& member : members) {
      Environment one = env;
      one.knobs[knob.name] = member;
      expanded.push_back(one);
    }
    return expanded;
  }
  return {env};
}

// The formats the model is available in: its own file's and those of its spec's sources.
std::vector<std::string> available_formats(const fs::path& model, const ModelSpec& spec) {
  std::vector<std::string> formats;
  if (const std::string own = model_format(model); !own.empty()) formats.push_back(own);
  for (const auto& [format, source] : spec.sources)
    if (std::find(formats.begin(), formats.end(), format) == formats.end())
      formats.push_back(format);
  return formats;
}

bool accepts(const std::vector<std::string>& formats, const std::string& format) {
  return formats.empty() || std::find(formats.begin(), formats.end(), "any") != formats.end() ||
         std::find(formats.begin(), formats.end(), format) != formats.end();
}

// Checks a variant's conversion chain against the steps the tool offers and the formats the
// model has. A chain that can never work (an unknown step, an end the engine cannot load) is the
// user's mistake and throws; one that cannot run *here* (missing source, missing converter)
// returns the reason to skip it.
std::string plan_chain(PlannedVariant& v, const EngineEntry& engine,
                       const std::vector<std::string>& have, EngineRegistry& registry) {
  const auto& chain = v.env.conversion;
  const std::string where = "environment '" + v.env.to_string() + "'";
  if (chain.size() < 2)
    throw Error(where + ": a conversion chain needs at least two formats, e.g. onnx>tflite");
  const auto formats = engine.input_formats();
  if (engine.info && !accepts(formats, chain.back()))
    throw Error(where + ": the chain ends in " + chain.back() + " but " + v.env.framework +
                " loads " + joined(formats));
  const std::shared_ptr<Converter> converter = registry.converter();
  if (!converter)
    return "this deltann has no conversion tool (" + (tools_dir() / "convert.py").string() + ")";
  std::vector<std::string> known;
  for (const auto& s : converter->steps()) known.push_back(s.name());
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    auto step = converter->step(chain[i], chain[i + 1]);
    if (!step)
      throw Error(where + ": no conversion " + chain[i] + ">" + chain[i + 1] +
                  " (known: " + joined(known) + ")");
    v.chain.push_back(*step);
  }
  v.converter = converter;
  if (std::find(have.begin(), have.end(), chain.front()) == have.end())
    return "the model has no " + chain.front() + " form (it has: " + joined(have) +
           "); add \"sources\": {\"" + chain.front() + "\": {\"file\": ...}} to its spec";
  for (const auto& step : v.chain)
    if (!step.unavailable.empty()) return "conversion " + step.name() + ": " + step.unavailable;
  return "";
}

// The engine's description plus the knobs of the chain's conversion steps (quantize), which only
// chained variants accept.
BackendInfo with_conversion_knobs(BackendInfo info, const PlannedVariant& v) {
  if (!v.converter) return info;
  for (const auto& knob : v.converter->knobs())
    for (const auto& step : v.chain)
      if (std::find(step.knobs.begin(), step.knobs.end(), knob.name) != step.knobs.end()) {
        info.knobs.push_back(knob);
        break;
      }
  return info;
}

// Fills in a variant of an engine that can start here: its skip reason (another version, a chain
// that cannot run here, a format the engine does not load) or its resolved environment.
void plan_variant(PlannedVariant& v, const EngineEntry& engine, const fs::path& model,
                  const std::vector<std::string>& have, EngineRegistry& registry) {
  const BackendInfo& info = *engine.info;
  const Environment& env = v.env;
  const std::string own = model_format(model);
  const std::vector<std::string> formats = engine.input_formats();
  if (!env.version.empty() && env.version != info.version)
    v.skip_reason = "version " + env.version + " of " + env.framework + " is not installed (have " +
                    info.version + ")";
  else if (!env.conversion.empty())
    v.skip_reason = plan_chain(v, engine, have, registry);
  else if (!own.empty() && !accepts(formats, own))
    v.skip_reason = env.framework + " loads " + joined(formats) + ", not " + own +
                    "; name a conversion chain, e.g. " + env.framework + "@" + own + ">" +
                    formats.front();
  if (!v.skip_reason.empty()) return;
  try {
    v.env = resolve_environment(env, with_conversion_knobs(info, v));
    v.text = v.env.to_string();
  } catch (const Unsupported& e) {
    v.skip_reason = e.what();
  }
}

}  // namespace

std::vector<PlannedVariant> plan(const CampaignConfig& config, const ModelSpec& spec,
                                 EngineRegistry& registry) {
  std::vector<PlannedVariant> planned;
  const std::vector<std::string> have = available_formats(config.model, spec);
  for (const auto& text : config.environments) {
    const Environment parsed = parse_environment(text);
    const EngineEntry& engine = registry.engine(parsed.framework);
    for (const auto& env : expand_each(parsed, engine)) {
      PlannedVariant v{
          env, env.to_string(), engine.worker, engine.unavailable, engine.info, engine.builder,
          {},  nullptr};
      if (engine.info) plan_variant(v, engine, config.model, have, registry);
      const bool duplicate = std::any_of(planned.begin(), planned.end(),
                                         [&](const PlannedVariant& p) { return p.text == v.text; });
      if (!duplicate) planned.push_back(std::move(v));
    }
  }
  return planned;
}

ResumeDecision decide_resume(const PlannedVariant& variant, VariantStatus stored_status,
                             bool retry_failed) {
  ResumeDecision d;
  if (!variant.skip_reason.empty()) {
    d.action = VariantAction::kSkip;
    return d;
  }
  if (stored_status == VariantStatus::failed && !retry_failed) {
    d.action = VariantAction::kSkipFailed;
    return d;
  }
  d.clear_failures = retry_failed || stored_status == VariantStatus::skipped;
  d.failed_images_done = !retry_failed;
  return d;
}

}  // namespace deltann
