// The parameter part of a localisation between two ONNX files (`deltann localize --b-model`, or a
// conversion whose artifact is another ONNX file): what differs between the two files, and what of
// it belongs to the first diverging layer (docs/LOCALIZE.md). Built on
// model_diff.h; needs ONNX's protobuf classes like it.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "deltann/localize.h"
#include "model_diff.h"

namespace deltann {

// The differences between the two files that parameter_report lists, in A's graph order: node by
// node (diff_models) when every matched layer was matched by name, else through localize's
// matching (diff_matched, whose pairs go to `pairs` when given).
std::vector<ParameterDifference> model_differences(const std::filesystem::path& model_a,
                                                   const std::filesystem::path& model_b,
                                                   const Localization& result,
                                                   std::vector<PairParameters>* pairs = nullptr);

// One difference as parameter_report lists it (node, output, what, a, b, max_abs, note, kind,
// details, kind_text; node_b and output_b through the matching).
nlohmann::json difference_json(const ParameterDifference& d);

// {"parameter_differences": [...], "cause": [...], and "parameter_pairs": [...] when layers were
// matched structurally}, the fields `deltann localize --json` adds. Names that all match (an
// edited copy) are compared node by node (diff_models); renamed layers through localize's matching
// (diff_matched). "cause" holds the differences of the node whose output is the jump layer.
// Throws Error naming the file when either model cannot be read.
nlohmann::json parameter_report(const std::filesystem::path& model_a,
                                const std::filesystem::path& model_b, const Localization& result);

// The terminal lines for parameter_report's JSON; `b_note` follows the heading (e.g. which file B
// was, when the caller did not name it).
std::string parameter_report_text(const nlohmann::json& report, const std::string& b_note);

}  // namespace deltann
