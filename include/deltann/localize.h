// Fault localisation, first slice: the per-layer tensors two environments captured for one input
// are matched by name and compared layer by layer, to find where their difference first jumps
// (docs/LOCALIZE.md). Pure logic; `deltann localize` gathers the captures from the workers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

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

// Reads a little-endian float64 C-order .npy file (format 1.0).
std::vector<double> read_npy_f64(const std::filesystem::path& path, std::vector<int64_t>& shape);

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

struct LocalizeOptions {
  double threshold = 1e-5;  // a layer's relative error above this is a disagreement
  double growth = 10;       // ...and a jump when it also grew by more than this factor
  double atol = 0;          // a layer whose max |a-b| is at most this agrees, whatever rel_l2
};

// One reference environment's view of a layer.
struct ReferenceDistance {
  std::string env;
  std::optional<double> rel_a, rel_b;  // absent when the reference has no such tensor
};

struct LayerReport {
  size_t position = 0;  // index in A's execution order
  std::string name, op_a, op_b;
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
  std::string verdict;  // "a" | "b" | "undecided" | "" (no references)
};

// Matches A's and B's tensors by exact name, measures every matched layer, applies the first-jump
// rule and, with references, the vote. A name repeated within one capture keeps its first tensor.
Localization localize(const LayerCapture& a, const LayerCapture& b,
                      const std::vector<LayerCapture>& references, const LocalizeOptions& options);

nlohmann::json to_json(const Localization& l, const LocalizeOptions& options);
// The terminal table: `rows` matched layers around the jump, then a summary.
std::string localization_text(const Localization& l, const LocalizeOptions& options,
                              size_t rows = 20);

}  // namespace deltann
