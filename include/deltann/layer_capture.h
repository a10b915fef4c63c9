// Per-layer captures as a worker's capture op writes them (docs/LOCALIZE.md):
// an index.json naming every intermediate tensor in execution order, and one float64 .npy file
// per tensor beside it. Reading is bounded and checked, since the folders may come from another
// machine.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

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

}  // namespace deltann
