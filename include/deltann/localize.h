// Fault localisation: the per-layer tensors two environments captured for one input are matched
// (by name, then structurally for tensors a conversion renamed; tensor_match.h) and compared layer
// by layer, to find where their difference first jumps (docs/LOCALIZE.md). Pure logic; `deltann
// localize` gathers the captures from the workers (layer_capture.h reads them) and
// localize_format.h writes the result.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "deltann/layer_capture.h"
#include "deltann/tensor_match.h"

namespace deltann {

struct LocalizeOptions : MatchOptions {
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

}  // namespace deltann
