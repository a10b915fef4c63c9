// Internal to the reference executor: how an operator sees its node, and helpers every operator
// uses to read attributes and inputs with checks that name the node.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "deltann/error.h"
#include "reference/reference.h"

namespace deltann::reference {

struct OpContext {
  const Node& node;
  int64_t opset;
  std::vector<const Value*> inputs;  // nullptr for an omitted optional input

  // Error / Unsupported whose message starts with the node's label.
  [[noreturn]] void fail(const std::string& message) const;
  [[noreturn]] void unsupported(const std::string& message) const;

  size_t input_count() const { return inputs.size(); }
  bool has_input(size_t k) const { return k < inputs.size() && inputs[k] != nullptr; }
  // The k-th input; fails when it is missing.
  const Value& input(size_t k) const;
  // The k-th input, which must be floating point (the operators here compute on real numbers).
  const Value& real_input(size_t k) const;

  bool has_attr(const std::string& name) const;
  int64_t attr_int(const std::string& name, int64_t fallback) const;
  double attr_float(const std::string& name, double fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& name,
                                 const std::vector<int64_t>& fallback = {}) const;
  std::vector<double> attr_floats(const std::string& name) const;
  const Value* attr_tensor(const std::string& name) const;

  // The values of an integer input tensor (shapes, axes, pads); fails when it is not one.
  std::vector<int64_t> int_values(size_t k) const;
  // A scalar or one-element input as a double.
  double scalar(size_t k) const;
  // Normalises a possibly negative axis against `rank`, failing when out of range.
  int64_t axis(int64_t a, int64_t rank) const;
};

using OpFn = std::vector<Value> (*)(const OpContext&);

// Each group of operators registers itself into the table.
void register_elementwise_ops(std::map<std::string, OpFn>& table);
void register_nn_ops(std::map<std::string, OpFn>& table);
void register_shape_ops(std::map<std::string, OpFn>& table);
const std::map<std::string, OpFn>& op_table();

// A tensor of `shape` and `dtype`, zero-filled in the storage that type uses.
Value make_value(DType dtype, std::vector<int64_t> shape, const std::string& where);
// Row-major strides of `shape`.
std::vector<int64_t> strides_of(const std::vector<int64_t>& shape);
// The numpy broadcast of two shapes; fails (naming the context) when they do not broadcast.
std::vector<int64_t> broadcast_shape(const OpContext& ctx, const std::vector<int64_t>& a,
                                     const std::vector<int64_t>& b);
// For every element of `out_shape`, the flat index into a tensor of `in_shape` broadcast to it.
std::vector<int64_t> broadcast_index(const std::vector<int64_t>& in_shape,
                                     const std::vector<int64_t>& out_shape);

}  // namespace deltann::reference
