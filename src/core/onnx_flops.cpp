#include "core/onnx_flops.h"

#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <exception>
#include <optional>

#include "core/onnx_model.h"
#include "deltann/error.h"

namespace deltann {
namespace {

using Shape = std::vector<int64_t>;  // -1 for a dimension shape inference left open

// The shape a value info declares, or nullopt when it declares none.
std::optional<Shape> declared_shape(const onnx::ValueInfoProto& info) {
  if (!info.type().has_tensor_type() || !info.type().tensor_type().has_shape()) return std::nullopt;
  Shape shape;
  for (const auto& dim : info.type().tensor_type().shape().dim())
    shape.push_back(dim.has_dim_value() && dim.dim_value() >= 0 ? dim.dim_value() : -1);
  return shape;
}

// Replaces the declared shape of the graph inputs named in `input_shapes`: the spec's shape is
// what every engine was fed, whatever the model leaves open.
void seed_inputs(onnx::GraphProto& graph, const std::map<std::string, Shape>& input_shapes) {
  for (auto& input : *graph.mutable_input()) {
    const auto it = input_shapes.find(input.name());
    if (it == input_shapes.end()) continue;
    auto* shape = input.mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    for (const int64_t d : it->second) shape->add_dim()->set_dim_value(d);
  }
}

class FlopCounter {
 public:
  FlopCounter(const onnx::GraphProto& graph, std::string where) : where_(std::move(where)) {
    for (const auto& init : graph.initializer())
      shapes_[init.name()] = Shape(init.dims().begin(), init.dims().end());
    for (const auto* infos : {&graph.input(), &graph.value_info(), &graph.output()})
      for (const auto& info : *infos)
        if (auto shape = declared_shape(info)) shapes_[info.name()] = *shape;
  }

  int64_t node_flops(const onnx::NodeProto& node) const {
    const std::string& op = node.op_type();
    if (op == "Conv" || op == "ConvInteger" || op == "QLinearConv") {
      // 2 * K*K * Cin/group per output element: the weight's elements per output channel.
      const Shape& weight = shape(node, op == "QLinearConv" ? 3 : 1, true);
      return product({2, count(node, weight) / std::max<int64_t>(weight.at(0), 1),
                      count(node, shape(node, 0, false))});
    }
    if (op == "ConvTranspose") {
      // Each input element is spread over Cout/group * K*K outputs.
      const Shape& weight = shape(node, 1, true);
      return product({2, count(node, weight) / std::max<int64_t>(weight.at(0), 1),
                      count(node, shape(node, 0, true))});
    }
    if (op == "Gemm" || op == "MatMul" || op == "MatMulInteger" || op == "QLinearMatMul")
      return product({2, count(node, shape(node, 0, false)), reduced_dimension(node)});
    int64_t total = 0;
    for (int k = 0; k < node.output_size(); ++k) {
      if (node.output(k).empty()) continue;  // an omitted optional output
      // A secondary output (a mask, running statistics) may stay unknown: it counts nothing.
      if (k > 0 && !known(node.output(k))) continue;
      total = sum(total, count(node, shape(node, k, false)));
    }
    return total;
  }

 private:
  // The K of M x K times K x N: the last dimension of A (its first for a transposed Gemm).
  int64_t reduced_dimension(const onnx::NodeProto& node) const {
    const Shape& a = shape(node, 0, true);
    if (a.empty()) fail(node, "its first input is a scalar");
    int64_t k = a.back();
    if (node.op_type() == "Gemm")
      for (const auto& attribute : node.attribute())
        if (attribute.name() == "transA" && attribute.i() != 0) k = a.front();
    if (k < 0) fail(node, "the reduced dimension of '" + node.input(0) + "' is unknown");
    return k;
  }

  bool known(const std::string& name) const {
    const auto it = shapes_.find(name);
    return it != shapes_.end();
  }

  // The shape of the node's k-th input (or output), which the count needs.
  const Shape& shape(const onnx::NodeProto& node, int k, bool input) const {
    const auto& names = input ? node.input() : node.output();
    if (k >= names.size() || names.Get(k).empty())
      fail(node, std::string("has no ") + (input ? "input " : "output ") + std::to_string(k));
    const auto it = shapes_.find(names.Get(k));
    if (it == shapes_.end())
      fail(node, "the shape of '" + names.Get(k) + "' is unknown after shape inference");
    return it->second;
  }

  int64_t count(const onnx::NodeProto& node, const Shape& shape) const {
    int64_t n = 1;
    for (const int64_t d : shape) {
      if (d < 0) fail(node, "a dimension is unknown after shape inference");
      n = product({n, d});
    }
    return n;
  }

  int64_t product(std::initializer_list<int64_t> factors) const {
    int64_t n = 1;
    for (const int64_t f : factors)
      if (__builtin_mul_overflow(n, f, &n)) throw Error(where_ + ": FLOP count overflows 64 bits");
    return n;
  }
  int64_t sum(int64_t a, int64_t b) const {
    int64_t n = 0;
    if (__builtin_add_overflow(a, b, &n)) throw Error(where_ + ": FLOP count overflows 64 bits");
    return n;
  }

  [[noreturn]] void fail(const onnx::NodeProto& node, const std::string& why) const {
    throw Error(where_ + ": cannot count the FLOPs of node '" + node_key(node) + "' (" +
                node.op_type() + "): " + why);
  }

  std::string where_;
  std::map<std::string, Shape> shapes_;
};

}  // namespace

FlopCount count_flops(onnx::ModelProto model, const std::map<std::string, Shape>& input_shapes,
                      const std::string& where) {
  seed_inputs(*model.mutable_graph(), input_shapes);
  try {
    // Node-level inference errors are tolerated (error_mode 0): a node ONNX cannot infer leaves
    // its outputs unknown, and the count fails only if it needs them. Data propagation resolves
    // the Shape -> Gather -> Concat -> Reshape chains exporters write.
    const onnx::ShapeInferenceOptions options(false, 0, true);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    throw Error(where + ": shape inference failed (" + e.what() + ")");
  }
  const FlopCounter counter(model.graph(), where);
  FlopCount flops;
  for (const auto& node : model.graph().node()) {
    const int64_t n = counter.node_flops(node);
    flops.by_op[node.op_type()] += n;
    if (__builtin_add_overflow(flops.total, n, &flops.total))
      throw Error(where + ": FLOP count overflows 64 bits");
  }
  return flops;
}

FlopCount count_model_flops(const std::filesystem::path& path, const std::string& input_name,
                            const std::vector<int64_t>& input_shape) {
  onnx::ModelProto model = load_onnx_model(path);
  const auto& graph = model.graph();
  std::string name = input_name;
  if (name.empty()) {
    for (const auto& input : graph.input()) {
      const bool initialiser =
          std::any_of(graph.initializer().begin(), graph.initializer().end(),
                      [&](const onnx::TensorProto& init) { return init.name() == input.name(); });
      if (!initialiser) {
        name = input.name();
        break;
      }
    }
  }
  return count_flops(std::move(model), {{name, input_shape}}, path.string());
}

}  // namespace deltann
