// Fault localisation: the per-layer tensors two environments captured for one input are matched
// (by name, then structurally for tensors a conversion renamed) and compared layer by layer, to
// find where their difference first jumps (docs/LOCALIZE.md). Pure logic; `deltann localize`
// gathers the captures from the workers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deltann/tensor.h"

namespace deltann {

// One captured tensor as read back from a worker's capture folder.
struct LayerTensor {
  std::string name;
  std::string op;
  std::vector<int64_t> shape;
  std::vector<double> values;
  // Names of the tensors this one was computed from, when the engine's index gives them; empty
  // otherwise (then error growth is measured against the previous matched layer).
  std::vector<std::string> inputs;
};

// Everything one environment captured: the capture mode and its tensors in execution order.
struct LayerCapture {
  std::string env;
  std::string mode;
  std::vector<LayerTensor> tensors;
};

// Reads `index.json` and the float64 .npy files beside it (the worker's capture op). Throws Error
// naming the file when the index or a tensor is malformed; every size is checked before use.
LayerCapture read_capture(const std::filesystem::path& index, const std::string& env);

// read_npy_f64, the reader of the captured .npy files, is in tensor.h.

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

struct LocalizeOptions {
  double threshold = 1e-5;  // a layer's relative error above this is a disagreement
  double growth = 10;       // ...and a jump when it also grew by more than this factor
  double atol = 0;          // a layer whose max |a-b| is at most this agrees, whatever rel_l2
  bool structural = true;   // false: match by exact name only (the tensors left are unmatched)
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
                                       const LocalizeOptions& options,
                                       std::vector<std::string>* notes = nullptr);

// One reference environment's view of a layer.
struct ReferenceDistance {
  std::string env;
  std::optional<double> rel_a, rel_b;  // absent when the reference has no such tensor
};

struct LayerReport {
  size_t position = 0;  // index in A's execution order
  std::string name, op_a, op_b;
  std::string name_b;                      // B's tensor (== name when matched by name)
  std::string match = "name";              // TensorMatch::method()
  LayoutMatch layout = LayoutMatch::same;  // how B's values were read for the metrics
  std::vector<int64_t> shape_a, shape_b;
  Difference diff;
  // rel_l2 divided by the largest rel_l2 among the layer's matched inputs (or the previous
  // matched layer); +inf when that basis agreed exactly and this layer does not; absent for a
  // layer that is not comparable.
  std::optional<double> growth;
  std::string growth_basis;  // "inputs" | "previous" | "input" (the graph input: identical bytes)
  bool above = false;        // rel_l2 > threshold and max_abs > atol
  std::vector<ReferenceDistance> references;
};

struct Vote {
  std::string env;                 // the reference
  std::string at_jump;             // "a" | "b" | "tie" | "" (no jump layer or no tensor there)
  int layers_a = 0, layers_b = 0;  // above-threshold layers where A (B) is farther from it
  std::string majority;            // "a" | "b" | "tie"
};

struct Localization {
  std::string env_a, env_b, mode_a, mode_b;
  std::vector<LayerReport> layers;  // matched layers, in A's execution order
  std::vector<std::string> only_a, only_b;
  std::optional<size_t> jump;  // index into layers
  std::string jump_rule;       // "growth" | "threshold" | "" (no layer above threshold)
  size_t above_count = 0;
  std::vector<Vote> votes;
  std::string verdict;             // "a" | "b" | "undecided" | "" (no references)
  std::vector<std::string> notes;  // e.g. a stretch too large to align structurally
};

// Matched layers per method ("name", "structure", "structure+nchw<-nhwc", ...).
std::map<std::string, size_t> match_counts(const Localization& l);

// Matches A's and B's tensors (match_tensors), measures every matched layer with B read in A's
// layout, applies the first-jump rule and, with references, the vote (each reference matched with A
// the same way). A name repeated within one capture keeps its first tensor.
Localization localize(const LayerCapture& a, const LayerCapture& b,
                      const std::vector<LayerCapture>& references, const LocalizeOptions& options);

nlohmann::json to_json(const Localization& l, const LocalizeOptions& options);
// The terminal table: `rows` matched layers around the jump, then a summary.
std::string localization_text(const Localization& l, const LocalizeOptions& options,
                              size_t rows = 20);

}  // namespace deltann
