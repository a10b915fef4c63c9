#include "parameter_report.h"

#include <utility>
#include <vector>

#include "model_diff.h"

namespace deltann {
namespace {

using nlohmann::json;

json pair_json(const PairParameters& p) {
  json tensors = json::array();
  for (const auto& t : p.tensors)
    tensors.push_back(
        {{"a", t.a}, {"b", t.b}, {"layout", t.layout}, {"max_abs", t.max_abs}, {"note", t.note}});
  return {{"output", p.output_a}, {"output_b", p.output_b}, {"node", p.node_a},
          {"node_b", p.node_b},   {"op_a", p.op_a},         {"op_b", p.op_b},
          {"chain_b", p.chain_b}, {"status", p.status},     {"tensors", tensors}};
}

}  // namespace

json difference_json(const ParameterDifference& d) {
  json one = {{"node", d.node},
              {"output", d.output},
              {"what", d.what},
              {"a", d.a},
              {"b", d.b},
              {"max_abs", d.max_abs},
              {"note", d.note},
              {"kind", d.kind.kind},
              {"details", d.kind.details},
              {"kind_text", d.kind.text}};
  if (!d.output_b.empty()) {
    one["node_b"] = d.node_b;
    one["output_b"] = d.output_b;
  }
  return one;
}

std::vector<ParameterDifference> model_differences(const std::filesystem::path& model_a,
                                                   const std::filesystem::path& model_b,
                                                   const Localization& result,
                                                   std::vector<PairParameters>* pairs) {
  bool by_name = true;
  std::vector<std::pair<std::string, std::string>> matched_layers;
  for (const auto& layer : result.layers) {
    by_name = by_name && layer.match.rfind("name", 0) == 0;
    matched_layers.emplace_back(layer.name, layer.name_b);
  }
  if (by_name) return diff_models(model_a, model_b);
  MatchedDiff matched = diff_matched(model_a, model_b, matched_layers);
  if (pairs) *pairs = std::move(matched.pairs);
  return std::move(matched.differences);
}

json parameter_report(const std::filesystem::path& model_a, const std::filesystem::path& model_b,
                      const Localization& result) {
  const std::string jump = result.jump ? result.layers[*result.jump].name : "";
  json parameters = json::array(), cause = json::array(), parameter_pairs = json::array();
  std::vector<PairParameters> pairs;
  const std::vector<ParameterDifference> differences =
      model_differences(model_a, model_b, result, &pairs);
  for (const auto& p : pairs) parameter_pairs.push_back(pair_json(p));
  for (const auto& d : differences) {
    json one = difference_json(d);
    if (!jump.empty() && d.output == jump) cause.push_back(one);
    parameters.push_back(std::move(one));
  }
  json report = {{"parameter_differences", parameters}, {"cause", cause}};
  if (!parameter_pairs.empty()) report["parameter_pairs"] = parameter_pairs;
  return report;
}

std::string parameter_report_text(const json& report, const std::string& b_note) {
  const json& parameters = report.at("parameter_differences");
  const json& cause = report.at("cause");
  std::string text = "parameter differences between the two model files" + b_note + ": " +
                     std::to_string(parameters.size()) + "\n";
  for (const auto& d : parameters) {
    // The kind's own line, then the note where it says more (a layout, a DequantizeLinear).
    const std::string kind = d.value("kind_text", "");
    std::string note = d.at("note").get<std::string>();
    if (!kind.empty()) note = note.empty() || note == kind ? kind : kind + "; " + note;
    text += (cause.empty() || d.at("output") != cause.front().at("output") ? "   " : " > ") +
            d.at("node").get<std::string>() + " (" + d.at("output").get<std::string>() + ")" +
            (d.contains("node_b") ? " ~ B's " + d.at("node_b").get<std::string>() + " (" +
                                        d.at("output_b").get<std::string>() + ")"
                                  : "") +
            ": " + d.at("what").get<std::string>() + ": " + d.at("a").get<std::string>() + " -> " +
            d.at("b").get<std::string>() + (note.empty() ? "" : "  [" + note + "]") + "\n";
  }
  if (!cause.empty()) text += "the first diverging layer's own parameters differ (>)\n";
  return text;
}

}  // namespace deltann
