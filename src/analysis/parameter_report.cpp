#include "parameter_report.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "core/onnx_model.h"
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
  if (!d.layer.empty() && d.layer != d.output) one["layer"] = d.layer;
  if (!d.output_b.empty()) {
    one["node_b"] = d.node_b;
    one["output_b"] = d.output_b;
  }
  return one;
}

namespace {

// A name B's file knows as a value: produced by a node, a graph input or an initialiser.
bool is_value_of(const onnx::GraphProto& graph, const OnnxGraphIndex& index,
                 const std::string& name) {
  if (index.producer(name) || index.initializer(name)) return true;
  return std::any_of(graph.input().begin(), graph.input().end(),
                     [&](const auto& in) { return in.name() == name; });
}

// Whether B's capture holds tensors its file does not name (TVM's kernels, TorchScript's value
// names): then B's tensors cannot be paired with nodes of B's file, and each difference between
// the files is attributed to the kernel that computed its node instead.
bool captured_kernels(const onnx::ModelProto& b, const Localization& result) {
  const OnnxGraphIndex index_b(b.graph());
  return std::any_of(result.layers.begin(), result.layers.end(),
                     [&](const auto& l) { return !is_value_of(b.graph(), index_b, l.name_b); });
}

// Whether the two files share node names (B's file is an edited copy of A's, or the network that
// B's engine compiled): at least half of A's nodes have a namesake in B.
bool shared_node_names(const onnx::ModelProto& a, const onnx::ModelProto& b) {
  const OnnxGraphIndex index_b(b.graph());
  const auto shared = std::count_if(a.graph().node().begin(), a.graph().node().end(),
                                    [&](const auto& n) { return index_b.by_key(node_key(n)); });
  return shared > 0 && 2 * shared >= a.graph().node_size();
}

// Whether `name` is constant: an initialiser, a Constant's output, or computed from constants
// only within a few nodes (tf2onnx's DequantizeLinear or Transpose of an initialiser).
bool constant_value(const OnnxGraphIndex& index, const std::string& name, int depth = 3) {
  if (index.initializer(name)) return true;
  const onnx::NodeProto* node = index.producer_node(name);
  if (!node || depth == 0) return false;
  if (node->op_type() == "Constant") return true;
  return node->input_size() > 0 &&
         std::all_of(node->input().begin(), node->input().end(), [&](const std::string& in) {
           return in.empty() || constant_value(index, in, depth - 1);
         });
}

// A node that carries a layer's weights, in graph order: its output, its family (a Gemm and a
// MatMul are one: converters turn one into the other) and its weight's element count (-1 when
// the weight is computed, not stored).
struct WeightedNode {
  std::string output, family;
  int64_t weights = -1;
};

std::vector<WeightedNode> weighted_nodes(const onnx::GraphProto& graph) {
  const OnnxGraphIndex index(graph);
  std::vector<WeightedNode> nodes;
  for (const auto& n : graph.node()) {
    const std::string& op = n.op_type();
    const bool conv = op == "Conv" || op == "ConvTranspose";
    if (!(conv || op == "Gemm" || op == "MatMul") || n.input_size() < 2 || n.output_size() < 1)
      continue;
    if (!constant_value(index, n.input(1))) continue;
    WeightedNode w{n.output(0), conv ? op : "MatMul", -1};
    if (const onnx::TensorProto* t = index.initializer(n.input(1))) {
      w.weights = 1;
      for (const auto d : t->dims()) w.weights *= d;
    }
    nodes.push_back(std::move(w));
  }
  return nodes;
}

// Without shared node names, the files are aligned by their weighted layers in graph order: the
// i-th Conv/ConvTranspose/Gemm-or-MatMul of A with the i-th of B, when both have as many, each
// pair of the same family and, where both are stored, as many weights (converters keep the order
// of a chain's layers and the count of each layer's weights, though not its layout). Empty when
// the files do not align so.
std::vector<std::pair<std::string, std::string>> aligned_weighted_layers(
    const onnx::ModelProto& a, const onnx::ModelProto& b) {
  const auto wa = weighted_nodes(a.graph()), wb = weighted_nodes(b.graph());
  if (wa.empty() || wa.size() != wb.size()) return {};
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 0; i < wa.size(); ++i) {
    if (wa[i].family != wb[i].family) return {};
    if (wa[i].weights >= 0 && wb[i].weights >= 0 && wa[i].weights != wb[i].weights) return {};
    pairs.emplace_back(wa[i].output, wb[i].output);
  }
  return pairs;
}

// Per matched layer, the nodes of A's file its B tensor computed (nodes_inside_kernel), each node
// given to the first layer, in A's order, whose kernel holds it.
std::map<std::string, std::vector<KernelNode>> kernel_spans(const onnx::ModelProto& a,
                                                            const Localization& result) {
  std::set<std::string> boundary;
  for (const auto& layer : result.layers) boundary.insert(layer.name);
  const OnnxGraphIndex index(a.graph());
  std::set<std::string> taken;
  std::map<std::string, std::vector<KernelNode>> spans;
  for (const auto& layer : result.layers) {
    auto& span = spans[layer.name];
    for (const auto& key : nodes_inside_kernel(a.graph(), layer.name, boundary)) {
      if (!taken.insert(key).second) continue;
      const auto at = index.by_key(key);
      span.push_back({key, at ? index.node(*at).op_type() : ""});
    }
  }
  return spans;
}

}  // namespace

ModelDifferences compare_model_files(const std::filesystem::path& model_a,
                                     const std::filesystem::path& model_b,
                                     const Localization& result) {
  ModelDifferences out;
  bool by_name = true;
  std::vector<std::pair<std::string, std::string>> matched_layers;
  for (const auto& layer : result.layers) {
    by_name = by_name && layer.match.rfind("name", 0) == 0;
    matched_layers.emplace_back(layer.name, layer.name_b);
  }
  if (by_name) {
    out.differences = diff_models(model_a, model_b);
  } else if (const onnx::ModelProto a = load_onnx_model(model_a), b = load_onnx_model(model_b);
             captured_kernels(b, result)) {
    // Node by name where the files share names, else layer by layer along the aligned weighted
    // layers; either way each difference goes to the kernel whose span holds its node of A.
    if (shared_node_names(a, b)) {
      out.differences = diff_models(model_a, model_b);
    } else if (const auto aligned = aligned_weighted_layers(a, b); !aligned.empty()) {
      MatchedDiff matched = diff_matched(model_a, model_b, aligned);
      out.pairs = std::move(matched.pairs);
      out.differences = std::move(matched.differences);
    }
    out.kernels = kernel_spans(a, result);
    std::map<std::string, std::string> layer_of;
    for (const auto& [layer, nodes] : out.kernels)
      for (const auto& n : nodes) layer_of[n.node] = layer;
    for (auto& d : out.differences)
      if (const auto it = layer_of.find(d.node); it != layer_of.end()) d.layer = it->second;
    return out;
  } else {
    MatchedDiff matched = diff_matched(model_a, model_b, matched_layers);
    out.pairs = std::move(matched.pairs);
    out.differences = std::move(matched.differences);
  }
  // Node by name, or each matched pair: a difference belongs to the layer its node outputs.
  for (auto& d : out.differences) d.layer = d.output;
  return out;
}

std::vector<ParameterDifference> model_differences(const std::filesystem::path& model_a,
                                                   const std::filesystem::path& model_b,
                                                   const Localization& result) {
  return compare_model_files(model_a, model_b, result).differences;
}

json parameter_report(const std::filesystem::path& model_a, const std::filesystem::path& model_b,
                      const Localization& result) {
  const std::string jump = result.jump ? result.layers[*result.jump].name : "";
  json parameters = json::array(), cause = json::array(), parameter_pairs = json::array();
  const ModelDifferences found = compare_model_files(model_a, model_b, result);
  for (const auto& p : found.pairs) parameter_pairs.push_back(pair_json(p));
  for (const auto& d : found.differences) {
    json one = difference_json(d);
    if (!jump.empty() && d.layer == jump) cause.push_back(one);
    parameters.push_back(std::move(one));
  }
  json report = {{"parameter_differences", parameters}, {"cause", cause}};
  if (!parameter_pairs.empty()) report["parameter_pairs"] = parameter_pairs;
  if (const auto span = found.kernels.find(jump); span != found.kernels.end()) {
    // Which of A's nodes B's kernel at the jump computed, checked against the kernel's name.
    const std::string& symbol = result.layers[*result.jump].name_b;
    const std::vector<std::string> ops = kernel_ops(symbol);
    json nodes = json::array();
    for (const auto& n : span->second)
      nodes.push_back({{"node", n.node}, {"op", n.op}, {"op_in_name", op_in_kernel(n.op, ops)}});
    report["jump_kernel"] = {{"kernel", symbol}, {"ops", ops}, {"nodes", nodes}};
  }
  return report;
}

std::string parameter_report_text(const json& report, const std::string& b_note) {
  const json& parameters = report.at("parameter_differences");
  const json& cause = report.at("cause");
  std::string text = "parameter differences between the two model files" + b_note + ": " +
                     std::to_string(parameters.size()) + "\n";
  // A difference's layer: its output's, or the layer whose kernel computed its node.
  const auto layer_of = [](const json& d) {
    return d.value("layer", d.at("output").get<std::string>());
  };
  for (const auto& d : parameters) {
    // The kind's own line, then the note where it says more (a layout, a DequantizeLinear).
    const std::string kind = d.value("kind_text", "");
    std::string note = d.at("note").get<std::string>();
    if (!kind.empty()) note = note.empty() || note == kind ? kind : kind + "; " + note;
    text += (cause.empty() || layer_of(d) != layer_of(cause.front()) ? "   " : " > ") +
            d.at("node").get<std::string>() + " (" + d.at("output").get<std::string>() + ")" +
            (d.contains("node_b") ? " ~ B's " + d.at("node_b").get<std::string>() + " (" +
                                        d.at("output_b").get<std::string>() + ")"
                                  : "") +
            (d.contains("layer") ? " in layer " + d.at("layer").get<std::string>() : "") + ": " +
            d.at("what").get<std::string>() + ": " + d.at("a").get<std::string>() + " -> " +
            d.at("b").get<std::string>() + (note.empty() ? "" : "  [" + note + "]") + "\n";
  }
  if (report.contains("jump_kernel")) {
    // The kernel B computed the jump layer with, and the nodes of the model inside it.
    const json& k = report.at("jump_kernel");
    text += "B's kernel at the first jump, " + k.at("kernel").get<std::string>() + ", computes";
    const char* separator = " ";
    for (const auto& n : k.at("nodes")) {
      text += separator + n.at("node").get<std::string>() + " (" + n.at("op").get<std::string>() +
              (n.at("op_in_name").get<bool>() ? "" : ", not in the kernel's name") + ")";
      separator = ", ";
    }
    text += "\n";
  }
  if (!cause.empty()) text += "the first diverging layer's own parameters differ (>)\n";
  return text;
}

}  // namespace deltann
