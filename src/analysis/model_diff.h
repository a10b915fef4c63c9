// Parameter differences between two ONNX files of one network (a model and an edited or converted
// copy), node by node: operator, attributes and the constant tensors (weights) each node reads.
// `deltann localize --b-model` uses it to say *why* the first diverging layer diverges.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace deltann {

struct ParameterDifference {
  std::string node;    // the node's name (its first output's name when it has none)
  std::string output;  // the node's first output tensor: what localize's layers are named by
  std::string what;    // "op", "attribute pads", "weights conv3_w", "node missing in B", ...
  std::string a, b;    // the two values, as text (a summary for tensors)
  double max_abs = 0;  // for tensors: max |a-b| over the elements
  std::string note;    // e.g. "B's 216 values lie on a grid of step 0.0079: quantised to int8"
};

// Throws Error naming the file when either model cannot be read. Nodes are matched by name, or by
// their first output when unnamed; tensors by the position of the input that reads them.
std::vector<ParameterDifference> diff_models(const std::filesystem::path& a,
                                             const std::filesystem::path& b);

}  // namespace deltann
