#include "core/onnx_batch.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "deltann/error.h"

namespace deltann {
namespace {

constexpr const char* kBatchParam = "batch";

// Makes a value's first dimension the symbolic batch when it is a fixed 1; returns false when it
// is another fixed size (left alone).
bool open_first_dimension(onnx::ValueInfoProto& value) {
  if (!value.type().has_tensor_type() || !value.type().tensor_type().has_shape()) return true;
  auto* shape = value.mutable_type()->mutable_tensor_type()->mutable_shape();
  if (shape->dim_size() == 0) return true;
  auto* first = shape->mutable_dim(0);
  if (!first->has_dim_value()) return true;  // already symbolic or unknown
  if (first->dim_value() != 1) return false;
  first->set_dim_param(kBatchParam);
  return true;
}

// The int64 values of a shape constant.
std::vector<int64_t> int64_values(const onnx::TensorProto& tensor) {
  if (tensor.data_type() != onnx::TensorProto::INT64) return {};
  if (tensor.int64_data_size() > 0) return {tensor.int64_data().begin(), tensor.int64_data().end()};
  std::vector<int64_t> values(tensor.raw_data().size() / sizeof(int64_t));
  if (!values.empty()) std::memcpy(values.data(), tensor.raw_data().data(), values.size() * 8);
  return values;
}

onnx::TensorProto int64_tensor(const std::string& name, const std::vector<int64_t>& values) {
  onnx::TensorProto tensor;
  tensor.set_name(name);
  tensor.set_data_type(onnx::TensorProto::INT64);
  tensor.add_dims(static_cast<int64_t>(values.size()));
  for (const int64_t v : values) tensor.add_int64_data(v);
  return tensor;
}

// The constant tensors of the main graph by name: initialisers and Constant nodes' values.
std::map<std::string, const onnx::TensorProto*> constants(const onnx::GraphProto& graph) {
  std::map<std::string, const onnx::TensorProto*> found;
  for (const auto& init : graph.initializer()) found[init.name()] = &init;
  for (const auto& node : graph.node())
    if (node.op_type() == "Constant" && node.output_size() == 1)
      for (const auto& attribute : node.attribute())
        if (attribute.name() == "value" && attribute.has_t())
          found[node.output(0)] = &attribute.t();
  return found;
}

bool allows_zero(const onnx::NodeProto& node) {
  for (const auto& attribute : node.attribute())
    if (attribute.name() == "allowzero") return attribute.i() != 0;
  return false;
}

// Drops the replaced shape constants (`replaced`) that no node reads any more, Constant nodes
// and initialisers, which engines would otherwise warn about at load.
void remove_unused_constants(onnx::GraphProto& graph, const std::set<std::string>& replaced) {
  std::set<std::string> used;
  for (const auto& node : graph.node())
    for (const auto& input : node.input()) used.insert(input);
  for (const auto& output : graph.output()) used.insert(output.name());
  auto* nodes = graph.mutable_node();
  for (int i = nodes->size() - 1; i >= 0; --i) {
    const auto& node = nodes->Get(i);
    if (node.op_type() == "Constant" && node.output_size() == 1 && replaced.count(node.output(0)) &&
        !used.count(node.output(0)))
      nodes->DeleteSubrange(i, 1);
  }
  auto* inits = graph.mutable_initializer();
  std::set<std::string> removed;
  for (int i = inits->size() - 1; i >= 0; --i)
    if (replaced.count(inits->Get(i).name()) && !used.count(inits->Get(i).name())) {
      removed.insert(inits->Get(i).name());
      inits->DeleteSubrange(i, 1);
    }
  auto* inputs = graph.mutable_input();
  for (int i = inputs->size() - 1; i >= 0; --i)
    if (removed.count(inputs->Get(i).name())) inputs->DeleteSubrange(i, 1);
}

}  // namespace

void open_batch_dimension(onnx::ModelProto& model, const std::string& where) {
  auto* graph = model.mutable_graph();
  std::set<std::string> weights;
  for (const auto& init : graph->initializer()) weights.insert(init.name());
  for (auto& input : *graph->mutable_input()) {
    if (weights.count(input.name())) continue;
    if (!open_first_dimension(input))
      throw Error(where + ": input '" + input.name() + "' has a fixed batch of " +
                  std::to_string(input.type().tensor_type().shape().dim(0).dim_value()) +
                  "; only a batch of 1 can be opened");
  }
  for (auto& output : *graph->mutable_output()) open_first_dimension(output);
  graph->clear_value_info();

  const auto shapes = constants(*graph);
  std::vector<onnx::TensorProto> added;
  std::set<std::string> replaced;
  for (auto& node : *graph->mutable_node()) {
    if (node.op_type() != "Reshape" || node.input_size() < 2) continue;
    const auto constant = shapes.find(node.input(1));
    if (constant == shapes.end()) continue;
    std::vector<int64_t> shape = int64_values(*constant->second);
    if (shape.empty() || shape.front() != 1) continue;
    if (allows_zero(node))
      throw Error(where + ": Reshape '" + node.name() +
                  "' fixes the batch at 1 with allowzero set, so its batch cannot be kept");
    shape.front() = 0;
    const std::string name = node.input(1) + "/open_batch";
    if (!shapes.count(name) &&
        std::none_of(added.begin(), added.end(), [&](const auto& t) { return t.name() == name; }))
      added.push_back(int64_tensor(name, shape));
    replaced.insert(node.input(1));
    node.set_input(1, name);
  }
  remove_unused_constants(*graph, replaced);
  for (auto& tensor : added) {
    // Before IR version 4 every initialiser must also be a graph input.
    if (model.ir_version() < 4) {
      auto* input = graph->add_input();
      input->set_name(tensor.name());
      auto* type = input->mutable_type()->mutable_tensor_type();
      type->set_elem_type(onnx::TensorProto::INT64);
      type->mutable_shape()->add_dim()->set_dim_value(tensor.dims(0));
    }
    *graph->add_initializer() = std::move(tensor);
  }
}

}  // namespace deltann
