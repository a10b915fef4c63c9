// Counting the floating-point operations of one inference of an ONNX model, from its graph: the
// numerator of the achieved GFLOP/s that `compare` shows per variant (docs/ANALYSIS.md, "FLOPs
// and peak"). Shapes come from ONNX's own shape inference (libonnx), seeded with the input shape
// the spec feeds, so every standard operator is covered. Linked as the `deltann_onnx_flops`
// library, built only where ONNX's classes and its shape inference are found.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace deltann {

struct FlopCount {
  int64_t total = 0;
  std::map<std::string, int64_t> by_op;  // per operator type, for the curious and the tests
};

// The convention (one multiply-add is 2 operations; bias additions are not counted):
//   Conv, ConvInteger, QLinearConv   2 * (weight elements / output channels) * output elements
//                                    = 2 * K*K * Cin/group * Cout * Hout*Wout (per batch item)
//   ConvTranspose                    2 * (weight elements / input channels) * input elements
//   Gemm, MatMul, MatMulInteger,     2 * output elements * K (the reduced dimension)
//   QLinearMatMul                    = 2 * M * N * K (per batch matrix)
//   every other operator             the element count of its outputs
// Only the main graph's nodes are counted (not the bodies of If, Loop or Scan).
//
// `input_shapes` gives the shape of graph inputs by name; it replaces the dimensions the model
// leaves open (a symbolic batch size). Throws Error naming the node when a shape the count needs
// is still unknown after shape inference, or when the model fails shape inference.
FlopCount count_flops(onnx::ModelProto model,
                      const std::map<std::string, std::vector<int64_t>>& input_shapes = {},
                      const std::string& where = "model");

// Reads the model file (bounded, docs/FUZZING.md) and counts it; `input_name` "" means the first
// graph input that is not an initialiser. Throws Error naming the file.
FlopCount count_model_flops(const std::filesystem::path& path, const std::string& input_name,
                            const std::vector<int64_t>& input_shape);

}  // namespace deltann
