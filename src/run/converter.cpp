#include "converter.h"

#include <cstdlib>
#include <fstream>

#include "builder.h"
#include "deltann/error.h"
#include "deltann/hash.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

Converter::Converter(fs::path python, fs::path script,
                     std::shared_ptr<const DescribeCache> describe_cache)
    : python_(std::move(python)),
      script_(std::move(script)),
      describe_cache_(std::move(describe_cache)) {}

std::optional<Converter> Converter::find(std::shared_ptr<const DescribeCache> describe_cache) {
  const fs::path script = tools_dir() / "convert.py";
  if (!fs::is_regular_file(script)) return std::nullopt;
  return Converter(tools_python(), script, std::move(describe_cache));
}

std::string Converter::tool_fingerprint() const {
  return tools_fingerprint(script_.parent_path(),
                           {"convert", "architectures", "environment", "keras_files"});
}

const json& Converter::describe() {
  if (!description_) {
    const auto run_describe = [&] {
      const ToolRun run = run_tool(python_, {script_.string(), "--describe"}, 120);
      if (!run.reply)
        throw Error("the conversion tool (" + script_.string() + ") cannot describe itself (" +
                    std::string(to_string(run.exit.symptom)) + ", " + run.exit.detail +
                    "): " + run.log);
      return *run.reply;
    };
    // The reply lists the converters' versions in both venvs: the TensorFlow venv's interpreter
    // (DELTANN_TF_PYTHON, which deltann sets for its tools) is asked too.
    std::vector<fs::path> interpreters{python_};
    if (const char* tf = std::getenv("DELTANN_TF_PYTHON"); tf && *tf) interpreters.emplace_back(tf);
    description_ =
        describe_cache_
            ? describe_cache_->get(
                  {"converter", {}, interpreters, {script_.string(), tool_fingerprint()}},
                  run_describe)
            : run_describe();
  }
  return *description_;
}

std::vector<ConversionStep> Converter::steps() {
  std::vector<ConversionStep> steps;
  for (const auto& s : describe().value("steps", json::array()))
    steps.push_back({s.at("from").get<std::string>(), s.at("to").get<std::string>(),
                     s.value("tool", ""), s.value("tool_version", ""),
                     s.value("knobs", std::vector<std::string>{}), s.value("unavailable", "")});
  return steps;
}

std::vector<Knob> Converter::knobs() {
  std::vector<Knob> knobs;
  for (const auto& k : describe().value("knobs", json::array()))
    knobs.push_back({k.at("name").get<std::string>(),
                     k.at("values").get<std::vector<std::string>>(),
                     k.at("default").get<std::string>(), k.value("help", ""), false});
  return knobs;
}

std::optional<ConversionStep> Converter::step(const std::string& from, const std::string& to) {
  for (auto& s : steps())
    if (s.from == from && s.to == to) return s;
  return std::nullopt;
}

ConversionResult Converter::convert(const ConversionStep& step, const fs::path& input,
                                    const std::string& input_sha, const ModelSpec& spec,
                                    const std::map<std::string, std::string>& knobs,
                                    const fs::path& cache_dir, double timeout_s) {
  // Only the knobs this step reads go into its identity and onto its command line, so that
  // `quantize=dynamic` on a chain does not re-run its pytorch>onnx step.
  std::string knob_text;
  for (const auto& name : step.knobs)
    if (const auto it = knobs.find(name); it != knobs.end())
      knob_text += (knob_text.empty() ? "" : ",") + name + "=" + it->second;
  const std::string tool = tool_fingerprint();
  const std::string key = sha256_text(input_sha + "|" + step.name() + "|" + step.tool_version +
                                      "|" + tool + "|" + knob_text + "|" + to_json(spec).dump());
  const std::string extension =
      describe().value("formats", json::object()).value(step.to, std::string(".bin"));
  const fs::path folder = cache_dir / "artifacts" / "convert";
  ConversionResult result;
  result.artifact = folder / (key + extension);
  const fs::path report = folder / (key + ".json");

  const auto accept = [&](const json& saved) {
    result.report = saved;
    result.spec = parse_model_spec(saved.at("spec"), fs::path("/"));
    result.ok = true;
  };
  if (fs::exists(result.artifact) && fs::exists(report)) {
    std::ifstream in(report);
    const json saved = json::parse(in, nullptr, false);
    if (!saved.is_discarded() && saved.contains("spec")) {
      try {
        accept(saved);
        result.cached = true;
        return result;
      } catch (const std::exception&) {
        // An unreadable report: convert again and overwrite it.
      }
    }
  }
  // The tool writes into a scratch folder (its own temporary folder and the TensorFlow side's
  // files included); the cache gets the artifact only once it is complete.
  try {
    fs::create_directories(folder);
    const ScratchDir scratch(cache_dir);
    const fs::path spec_file = scratch.path() / "spec.json";
    const fs::path converted = scratch.path() / ("artifact" + extension);
    {
      std::ofstream out(spec_file);
      out << to_json(spec).dump();
    }
    std::vector<std::string> args = {script_.string(),  "--step", step.name(),        "--in",
                                     input.string(),    "--spec", spec_file.string(), "--out",
                                     converted.string()};
    if (!knob_text.empty()) {
      args.push_back("--knobs");
      args.push_back(knob_text);
    }
    const ToolRun run = run_tool(python_, args, timeout_s, scratch.path());
    if (!run.ok() || !fs::exists(converted) || !run.reply->contains("spec")) {
      result.symptom = run.symptom();
      result.message = "conversion " + step.name() + " (" + step.tool + ") failed (" +
                       run.exit.detail + ")" + (run.log.empty() ? "" : ": " + run.log);
      return result;
    }
    try {
      accept(*run.reply);
    } catch (const std::exception& e) {
      result.ok = false;
      result.symptom = FailureSymptom::error;
      result.message = "conversion " + step.name() + " gave an unusable spec: " + e.what();
      return result;
    }
    publish_cache_entry(converted, result.artifact, *run.reply, report);
  } catch (const std::exception& e) {  // the cache folder: unwritable, full, ...
    result.ok = false;
    result.symptom = FailureSymptom::error;
    result.message = "conversion " + step.name() + " (" + step.tool + ") failed: " + e.what();
  }
  return result;
}

}  // namespace deltann
