// Parameter differences between two ONNX files of one network (a model and an edited or converted
// copy), node by node: operator, attributes and the constant tensors (weights) each node reads.
// `deltann localize --b-model` uses it to say *why* the first diverging layer diverges.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cause_kind.h"

namespace onnx {
class GraphProto;
class ModelProto;
}  // namespace onnx

namespace deltann {

struct ParameterDifference {
  std::string node;      // the node's name (its first output's name when it has none)
  std::string output;    // the node's first output tensor: what localize's layers are named by
  std::string node_b;    // diff_matched: B's node (its main op) and B's matched tensor;
  std::string output_b;  // empty for diff_models, where B's names are A's
  // The matched layer (A's tensor) this difference belongs to: `output` itself, or, when B's
  // captured tensors are kernels that fused several nodes (TVM), the layer whose kernel computed
  // this node (nodes_inside_kernel); empty for a node of no matched layer (a node only in B).
  std::string layer;
  std::string what;    // "op", "attribute pads", "weights conv3_w", "node missing in B", ...
  std::string a, b;    // the two values, as text (a summary for tensors)
  double max_abs = 0;  // for tensors: max |a-b| over the elements
  std::string note;    // e.g. "B's 216 values lie on a grid of step 0.0079: quantised to int8"
  CauseKind kind;      // what kind of change it is (cause_kind.h)
  // Where the tensor sits, for an edit that undoes the change (analysis/repair.h): the input of
  // A's node that reads it (-1 for op, attribute and node differences), B's stored constant it
  // was paired with (diff_matched; diff_models' B reads it at the same input) and the layout B
  // holds it in (LayoutFit::layout; empty means A's order).
  int input = -1;
  std::string tensor_b;
  std::string layout;
};

// Throws Error naming the file when either model cannot be read. Nodes are matched by name, or by
// their first output when unnamed; tensors by the position of the input that reads them.
std::vector<ParameterDifference> diff_models(const std::filesystem::path& a,
                                             const std::filesystem::path& b);

// Reading B's constant in A's layout. Converters store the same weights in another order (TFLite
// keeps Conv kernels OHWI, MatMul takes Gemm's transB=1 weight transposed), so values are compared
// after B is permuted back; `layout` names B's order: "same" (A's order; "reshaped" when only
// the shapes differ), "transposed" (2-D), or B's axes in A's rank-4 OIHW terms: "OHWI", "HWIO",
// "IHWO".
struct LayoutFit {
  std::string layout;
  double max_abs = 0;  // max |a - b| with B read that way
};
// The reading B's shape allows that is closest to A (the first of equals, "same" first); nullopt
// when the element counts differ. Pure: the unit tests call it directly.
std::optional<LayoutFit> best_weight_layout(const std::vector<double>& a,
                                            const std::vector<int64_t>& shape_a,
                                            const std::vector<double>& b,
                                            const std::vector<int64_t>& shape_b);
// The permutation that reads A in a LayoutFit's layout (A's axis perm[k] is B's axis k); empty
// for "same" and "reshaped", where the flat order is kept.
std::vector<int64_t> layout_permutation(const std::string& layout);
// `values` (C order, `shape`) transposed as ONNX's Transpose does: output axis k is input axis
// perm[k]. Empty when perm is not a permutation of the axes or the sizes do not fit.
std::vector<double> permute_values(const std::vector<double>& values,
                                   const std::vector<int64_t>& shape,
                                   const std::vector<int64_t>& perm);

// A constant as a node reading `tensor` sees it: an initialiser or a Constant node's value, read
// through the Identity, Cast, Transpose and DequantizeLinear nodes converters put in front of
// weights (dequantised), as both comparisons read it. `stored` names the initialiser or Constant
// output at the end of that chain; `shape` and `values` are what the reading node gets. nullopt
// when `tensor` is computed, or of a type that is not read.
struct ConstantView {
  std::string stored;
  std::vector<int64_t> shape;
  std::vector<double> values;
  bool floating = false;  // float values (weights), not shapes or axes
};
std::optional<ConstantView> read_constant(const onnx::ModelProto& model, const std::string& tensor);

// One constant of a matched pair: A's tensor and the B constant it was paired with.
struct TensorComparison {
  std::string a, b;    // initialiser names; b empty when B has no counterpart
  std::string layout;  // LayoutFit::layout
  double max_abs = 0;
  std::string note;  // "int8 weights (DequantizeLinear)", "quantised: 16 distinct values", ...
};

// The parameters of one matched layer: A's node producing the tensor against B's main node.
struct PairParameters {
  std::string output_a, output_b, node_a, node_b, op_a, op_b;
  std::vector<std::string> chain_b;  // B's nodes walked from the tensor to node_b, node_b last
  std::string status;                // "same" | "differs" | "unmatched-parameters"
  std::vector<TensorComparison> tensors;
};

struct MatchedDiff {
  std::vector<ParameterDifference> differences;
  std::vector<PairParameters> pairs;  // in the order of `pairs`; graph inputs are left out
};

// Compares two ONNX files of one network whose names differ (a converter's round trip), driven
// by localize's layer matching: `pairs` are (A tensor, B tensor). For each, A's producing node is
// compared with B's main node, found by walking back from B's producer through at most four
// layout or bias nodes (Add, Relu, Clip, Transpose, Reshape, Identity, Squeeze, Unsqueeze,
// Flatten, Cast, DequantizeLinear) until an op sharing a family with A's (localize's op
// families). Compared: the op family, the attributes that change the result (Conv pads, strides,
// dilations, group, kernel_shape; BatchNormalization epsilon; Clip min/max; Gemm
// transA/transB/alpha/beta) and A's float constants, each paired with B's constant (the main
// node's and the walked Adds') of the same element count in the closest layout. Throws Error
// naming the file when either model cannot be read.
MatchedDiff diff_matched(const std::filesystem::path& a, const std::filesystem::path& b,
                         const std::vector<std::pair<std::string, std::string>>& pairs);

// The ONNX nodes one captured tensor of a fusing engine stands for. An engine that captures one
// tensor per compiled kernel (TVM) never materialises the tensors inside a kernel, so the kernel
// matched with A's `tensor` computed every node between the tensors B did materialise and it: the
// nodes found walking back from `tensor`'s producer through every input until a tensor in
// `boundary` (the other matched layers, which B computed as kernel outputs of their own), a graph
// input or an initialiser. Node keys (node_key), in graph order; empty when nothing produces
// `tensor`.
std::vector<std::string> nodes_inside_kernel(const onnx::GraphProto& graph,
                                             const std::string& tensor,
                                             const std::set<std::string>& boundary);

// The operators a kernel's symbol lists, as the compiler named them: TVM's
// "fused_conv2d17_add13_maximum7_minimum7#2" -> {"conv2d", "add", "maximum", "minimum"} (the
// `fused_` prefix, numbering suffixes and the capture's `#N` dropped). A symbol without
// underscores is one operator ("pad7" -> {"pad"}).
std::vector<std::string> kernel_ops(const std::string& symbol);

// Whether an ONNX operator is among a kernel's operators (kernel_ops) under the names compilers
// lower it to: Conv as conv2d (its bias as add), Clip as clip or maximum/minimum, Gemm as matmul
// or dense, GlobalAveragePool as mean, ... A check of nodes_inside_kernel, not a requirement:
// layout ops (Reshape, Flatten) may be VM builtins that no kernel names.
bool op_in_kernel(const std::string& onnx_op, const std::vector<std::string>& ops);

}  // namespace deltann
