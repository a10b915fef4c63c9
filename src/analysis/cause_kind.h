// The *kind* of a parameter change between two models: what B did to one of A's constant tensors
// (zeroed it, rearranged it, rescaled it, quantised it, rounded it to a narrower float, or
// something else) or to one of A's attributes (shifted a padding window, changed a stride, an
// epsilon, a Clip bound, replaced the operator). `deltann localize --b-model` names it for every
// parameter difference, so that the cause of the first diverging layer says what happened, not
// only that something did. Pure functions on values: the unit tests call them directly, and the
// tests, their order and their tolerances are documented in docs/LOCALIZE.md ("Kinds of change").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltann {

struct CauseKind {
  // Tensors: "same", "missing", "zeroed", "rearranged", "rescaled", "offset", "affine",
  // "precision-reduced", "quantised", "resized", "changed".
  // Attributes: "op-replaced", "padding-shifted", "padding-changed", "stride-changed",
  // "dilation-changed", "epsilon-changed", "bounds-changed", "attribute-changed",
  // "node-missing", "node-added".
  std::string kind;
  nlohmann::json details = nlohmann::json::object();  // the evidence: k, c, step, bits, perm, ...
  std::string text;                                   // one line for the terminal
};

// How close "close" is. Values of B are float32 (or narrower) copies, so the fits allow float32
// rounding of B's largest value and nothing more; a quantised B must lie on its grid to the same
// precision.
struct CauseTolerances {
  // A fitted B ~ k*A (or A + c) is accepted when max |B - fit| <= fit_rtol * max |B|: float32
  // rounding is 6e-8 relative, fp16 rounding 5e-4, so 1e-5 accepts the first and not the second.
  double fit_rtol = 1e-5;
  // A value lies on a grid when it is within grid_rtol * max |B| of a grid point.
  double grid_rtol = 1e-6;
  int max_grid_bits = 16;         // wider grids are not called quantised
  size_t min_channel_values = 4;  // per-channel grids need this many values per channel
};

// What B is with respect to A. `b` is in `shape_b`'s C order, already read in A's layout where
// a converter stored it otherwise (model_diff.h's best_weight_layout); `b_present` false means B
// has no such tensor at all (kind "missing"). Shapes may be empty when unknown (then only flat
// tests apply).
CauseKind classify_tensor_change(const std::vector<double>& a, const std::vector<int64_t>& shape,
                                 const std::vector<double>& b, const std::vector<int64_t>& shape_b,
                                 bool b_present = true, const CauseTolerances& tolerances = {});

// What changed in one attribute of an `op` node (ONNX's names; values as the text model_diff
// prints: "[1,1,1,1]", "1e-05", "6"). A Pad node's "pads" and a Conv's "pads" are padding;
// Clip's "min"/"max" are bounds (also when they are inputs, opset >= 11).
CauseKind classify_attribute_change(const std::string& op, const std::string& attribute,
                                    const std::string& a, const std::string& b);

// An operator replaced by another.
CauseKind classify_op_change(const std::string& op_a, const std::string& op_b);

// `values` (C order, `shape`) with output axis k taken from input axis perm[k] (as ONNX's
// Transpose), then reversed along every output axis k whose flip[k] is set. Empty when perm is
// not a permutation of the axes or the sizes do not fit.
std::vector<double> transform_values(const std::vector<double>& values,
                                     const std::vector<int64_t>& shape,
                                     const std::vector<int64_t>& perm,
                                     const std::vector<bool>& flip);

// Building blocks, exposed for the unit tests.
// x rounded to the nearest IEEE half (fp16) or bfloat16 value, ties to even; x is first rounded to
// float32, as every model stores it.
double round_to_fp16(double x);
double round_to_bf16(double x);
// A compact description of a permutation of 0..n-1: "identity", "reversed", "rotated by k",
// "swaps (i j)(k l)" for at most four disjoint swaps, else "m of n positions moved".
std::string describe_permutation(const std::vector<int64_t>& perm);

}  // namespace deltann
