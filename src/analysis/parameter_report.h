// The parameter part of a localisation between two ONNX files (`deltann localize --b-model`, or a
// conversion whose artifact is another ONNX file): what differs between the two files, and what of
// it belongs to the first diverging layer (docs/LOCALIZE.md). Built on
// model_diff.h; needs ONNX's protobuf classes like it.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/localize.h"
#include "model_diff.h"

namespace deltann {

// One ONNX node of A's file inside the kernel B captured for a layer.
struct KernelNode {
  std::string node, op;
};

// What differs between the two files, in A's graph order, each difference with the matched layer
// it belongs to (ParameterDifference::layer):
// - every layer matched by name (an edited copy run by an engine that keeps ONNX names): node by
//   node (diff_models), each node's difference belongs to its output;
// - B's captured tensors are not tensors of B's file (TVM's fused kernels) while the two files
//   share their node names: node by node too, each difference belonging to the layer whose B
//   kernel computed its node (nodes_inside_kernel; `kernels` lists them per layer);
// - otherwise (a renaming conversion): through localize's matching (diff_matched, whose pairs go
//   to `pairs`), each difference belonging to its pair's layer.
struct ModelDifferences {
  std::vector<ParameterDifference> differences;
  std::vector<PairParameters> pairs;
  std::map<std::string, std::vector<KernelNode>> kernels;  // A's layer -> nodes of its kernel
};
ModelDifferences compare_model_files(const std::filesystem::path& model_a,
                                     const std::filesystem::path& model_b,
                                     const Localization& result);
// compare_model_files' differences.
std::vector<ParameterDifference> model_differences(const std::filesystem::path& model_a,
                                                   const std::filesystem::path& model_b,
                                                   const Localization& result);

// One difference as parameter_report lists it (node, output, what, a, b, max_abs, note, kind,
// details, kind_text; node_b and output_b through the matching).
nlohmann::json difference_json(const ParameterDifference& d);

// {"parameter_differences": [...], "cause": [...], and "parameter_pairs": [...] when layers were
// matched structurally}, the fields `deltann localize --json` adds. Names that all match (an
// edited copy) are compared node by node (diff_models); renamed layers through localize's matching
// (diff_matched). "cause" holds the differences that belong to the jump layer (the node whose
// output it is, or every node of B's fused kernel there); with kernels, "jump_kernel" names B's
// kernel at the jump, its operators and the nodes of A's file inside it.
// Throws Error naming the file when either model cannot be read.
nlohmann::json parameter_report(const std::filesystem::path& model_a,
                                const std::filesystem::path& model_b, const Localization& result);

// The terminal lines for parameter_report's JSON; `b_note` follows the heading (e.g. which file B
// was, when the caller did not name it).
std::string parameter_report_text(const nlohmann::json& report, const std::string& b_note);

}  // namespace deltann
