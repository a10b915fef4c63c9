// Minimal reproducer extraction for `deltann localize --reproduce DIR` (docs/LOCALIZE.md): after
// localisation names the first diverging tensor, cut the smallest subgraph of the model that still
// shows the divergence when fed A's captured values, and write it with its input and a one-line
// command. The ONNX side uses ONNX's protobuf classes (libonnx-dev), like model_diff.cpp; running
// a candidate is left to the caller, which re-runs localize's own capture machinery on it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deltann/localize.h"

namespace deltann {

// What the caller measured when it ran A and B on one extracted candidate.
struct ReproTrial {
  bool found = false;  // the subgraph's output tensor was captured on both sides
  Difference diff;     // at the subgraph's output
  bool above = false;  // rel_l2 > threshold and max_abs > atol: the divergence is reproduced
};

// Runs A on `model_a` and B on `model_b` (empty: B on `model_a` too), both fed the float32 .npy
// `tensor`, and measures the tensor named `output`.
using ReproRunner = std::function<ReproTrial(
    const std::filesystem::path& model_a, const std::filesystem::path& model_b,
    const std::filesystem::path& tensor, const std::string& output)>;

struct ReproduceRequest {
  std::filesystem::path model_a, model_b;   // model_b empty without --b-model
  std::filesystem::path dir;                // where the reproducer is written
  std::string jump;                         // the first diverging tensor (a node output)
  const LayerCapture* capture_a = nullptr;  // A's capture of the full model
  std::filesystem::path input_tensor;       // the full model's input tensor (.npy, float32)
  std::string input_name;                   // the full model's input ("" = its first)
  std::string env_a, env_b;
  Difference full;  // A against B at the jump layer of the full model
  LocalizeOptions options;
};

struct ReproNode {
  std::string name, op, output;
};

struct Reproduction {
  bool reproduced = false;
  std::vector<ReproNode> nodes;  // kept, in the model's (topological) order
  std::string input;             // the tensor the subgraph is fed
  std::vector<int64_t> input_shape;
  std::string output;  // = the jump tensor
  ReproTrial trial;    // the last candidate run
  Difference full;
  size_t windows = 0, trials = 0;  // windows looked at, of which run
  std::string note;                // why it did not reproduce, or what was special
  std::filesystem::path dir;
  std::string command;  // the one-line command written to reproduce.sh
};

// Grows a window of nodes backwards from the node producing `request.jump` until it has a single
// non-constant input that A's capture (or the model's input) provides and running it reproduces
// the divergence, up to the whole graph. Writes DIR/repro.onnx (+ repro_b.onnx),
// repro.spec.json, input.npy, reproduce.sh and README.txt. Throws Error for unreadable models, a
// jump tensor no node produces, or a node of the window that B's model lacks.
Reproduction reproduce(const ReproduceRequest& request, const ReproRunner& run,
                       const std::function<void(const std::string&)>& say);

nlohmann::json to_json(const Reproduction& r);
std::string reproduction_text(const Reproduction& r);

}  // namespace deltann
