// Repairing a converted model: for each parameter or attribute difference between a source model
// A and its converted copy B (model_diff.h), the edit of B's ONNX graph that undoes it (restore a
// missing bias, copy A's weights back through B's layout, which also undoes a permutation, a
// rescale or a rounding, and dequantises int8 weights; restore an attribute or an operator), and
// the greedy search `deltann repair` runs: try the edits in graph order, keep one only when it
// brings B's outputs closer to A's, stop once they agree within a tolerance
// (docs/LOCALIZE.md, "Repairing a conversion"). Pure graph edits on ONNX's protobuf classes; the
// divergence is measured by the caller, so the unit tests drive the search with a function.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model_diff.h"

namespace deltann {

// One inverse edit. Not applied: `action` says why no fix was found ("no fix found: ...").
struct EditResult {
  bool applied = false;
  std::string action;  // what was done to B, one sentence
  std::string node_b;  // B's node the edit changed (or would have)
};

// Applies to `b`, in place, the edit that undoes difference `d` of `a` (a difference diff_models
// or diff_matched found between a and b). B's constants are written as float32 initialisers;
// nodes and initialisers the edit leaves unread (a DequantizeLinear and its int8 weights) are
// removed. Leaves `b` as it was when no fix is found.
EditResult apply_inverse_edit(const onnx::ModelProto& a, onnx::ModelProto& b,
                              const ParameterDifference& d);

// One difference as the search met it.
struct RepairStep {
  ParameterDifference difference;
  EditResult edit;
  bool tried = false;  // the edited model was measured
  bool kept = false;   // it reduced the divergence and stays
  double before = 0;   // the divergence before this edit (the best so far)
  double after = 0;    // with the edit (tried only)
  std::string note;    // why it was not tried or not kept
};

// The edits the first pass rejected, tried again all at once: changes that only act together
// (the quantisation of every layer, whose rounding errors partly cancel) lower the divergence
// only when all are undone.
struct TogetherTry {
  std::vector<size_t> steps;  // indices into RepairSearch::steps, those that applied
  double before = 0, after = 0;
  bool kept = false;
};

struct RepairSearch {
  onnx::ModelProto repaired;  // B with the kept edits
  std::vector<RepairStep> steps;
  double initial = 0;   // B's divergence before any edit
  double final = 0;     // the repaired model's
  bool within = false;  // final <= tolerance
  size_t evaluations = 0;
  std::optional<TogetherTry> together;  // when two or more edits were tried again together
};

// The divergence of a candidate B from A (`deltann repair`: the largest max |out_B - out_A| over
// the search images); smaller is better.
using Divergence = std::function<double(const onnx::ModelProto&)>;

// Tries the inverse edit of each difference in order, each on top of the edits kept so far, and
// keeps it when the divergence drops strictly below the best so far; stops trying once the
// divergence is at most `tolerance` (the remaining steps say so). When that pass ends above the
// tolerance with two or more edits tried and not kept, those are tried once more all together
// and kept together when that lowers the divergence (`together`). `initial` is B's divergence.
RepairSearch search_repair(const onnx::ModelProto& a, const onnx::ModelProto& b,
                           const std::vector<ParameterDifference>& differences, double initial,
                           double tolerance, const Divergence& divergence);

// A seeded split of n images into `search` images for the search and the rest, held out to verify
// the repair: the indices are shuffled (Fisher-Yates driven by mt19937_64, the same on every
// platform) and the first `search` taken; each part is returned in ascending order.
struct ImageSplit {
  std::vector<size_t> search, held_out;
};
ImageSplit split_images(size_t n, size_t search, uint64_t seed);

// Nodes of the pass-through kinds that read weights (Identity, Cast, Transpose, DequantizeLinear,
// Constant) whose outputs nothing reads, and initialisers nothing reads, removed repeatedly.
// Exposed for the unit tests.
void remove_unread_constants(onnx::GraphProto& graph);

}  // namespace deltann
