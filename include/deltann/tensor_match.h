// Matching two environments' captures tensor by tensor (docs/LOCALIZE.md, "Matching"): how far
// two tensors are apart, in which layouts they can be compared, the op families of structural
// matching, and the matching itself (exact names, then an order-preserving alignment).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "deltann/layer_capture.h"

namespace deltann {

// How far `a` is from `b` (b is the side relative errors are measured against).
struct Difference {
  bool comparable = true;  // false: the shapes differ beyond size-1 dimensions
  double max_abs = 0;
  double mean_abs = 0;
  // ||a-b|| / ||b||; 0 when both are zero, +inf when only b is zero. NaN on one side only is an
  // infinite difference; NaN on both sides counts as equal.
  double rel_l2 = 0;
};
Difference difference(const LayerTensor& a, const LayerTensor& b);

// Shapes that differ only by dimensions of size 1 ([1,1000] and [1,1000,1,1]) hold the same
// values in the same order, so they are compared; other differences are not.
bool same_layout(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

// How B's tensor is read in A's layout. Converters to TFLite (onnx2tf) keep activations NHWC while
// ONNX keeps them NCHW, so a rank-4 pair may hold the same values with C moved.
enum class LayoutMatch {
  same,            // same order of values (shapes equal up to size-1 dimensions)
  nchw_from_nhwc,  // A is [N,C,H,W], B is [N,H,W,C]: B is transposed into A's NCHW
  nhwc_from_nchw,  // A is [N,H,W,C], B is [N,C,H,W]: B is transposed into A's NHWC
};
// "" for LayoutMatch::same, "nchw<-nhwc", "nhwc<-nchw".
std::string layout_name(LayoutMatch layout);
// The layouts under which B's tensor can be compared with A's, plain first; empty when none.
std::vector<LayoutMatch> compatible_layouts(const std::vector<int64_t>& shape_a,
                                            const std::vector<int64_t>& shape_b);
// difference(a, b) with B read in A's layout (not comparable when the layout does not fit).
Difference difference(const LayerTensor& a, const LayerTensor& b, LayoutMatch layout);

// Op families for structural matching (docs/LOCALIZE.md has the table): the families an op type
// belongs to, from a table of ONNX and TFLite op names and from substrings of fused kernel names
// ("conv", "relu", "matmul", ...). Empty for an op the table does not know.
std::vector<std::string> op_families(const std::string& op);

// The costs of the structural alignment (docs/LOCALIZE.md, "Matching"). A pair costs
// min(rel_l2, 1) plus the penalties below; leaving a tensor unmatched costs `gap`. Because a pair
// never costs more than 2 * gap, any two compatible tensors left over between the same anchors
// are paired rather than both skipped: a skip happens only where one side has more tensors.
struct MatchCosts {
  double gap = 1.0;              // per tensor left unmatched
  double op_mismatch = 0.3;      // the op types share no family
  double op_unknown = 0.1;       // either op type is empty (the engine did not say)
  double transpose = 0.01;       // B must be transposed (prefer the plain layout on a tie)
  size_t max_cells = 4'000'000;  // larger stretches (unmatched A x unmatched B) are not aligned
};

struct MatchOptions {
  bool structural = true;  // false: match by exact name only (the tensors left are unmatched)
  MatchCosts costs;
};

// One matched pair of tensors: indices into A's and B's capture.
struct TensorMatch {
  size_t a = 0, b = 0;
  bool by_name = true;  // false: found by the structural alignment
  LayoutMatch layout = LayoutMatch::same;
  bool output = false;  // the two captures' last tensors: the model outputs, paired by definition
  // "name" | "output" | "structure", with "+nchw<-nhwc" / "+nhwc<-nchw" when B is transposed.
  std::string method() const;
};
// Matches A's tensors with B's: exact names first (the first tensor of a repeated name; later ones
// are ignored), then, with options.structural, the order-preserving alignment of the tensors
// left between consecutive name matches. Sorted by A's index. Notes about stretches too large to
// align are appended to `notes` when given.
std::vector<TensorMatch> match_tensors(const LayerCapture& a, const LayerCapture& b,
                                       const MatchOptions& options,
                                       std::vector<std::string>* notes = nullptr);

// For each tensor of `c`, whether it is the first of its name (later ones take no part in
// matching).
std::vector<bool> first_of_each_name(const LayerCapture& c);

// B's values rearranged into A's layout (and given A's shape `shape_a`), for comparisons with a
// third tensor. `layout` must be one of compatible_layouts(shape_a, b.shape).
LayerTensor in_layout_of(const LayerTensor& b, LayoutMatch layout,
                         const std::vector<int64_t>& shape_a);

}  // namespace deltann
