// The signature names of a TFLite flatbuffer (`input` for the tensor `serving_default_input:0`).
// Arm NN 20.08's parser predates TFLite signatures and knows only tensor names, but a model spec
// written for LiteRT or for the original ONNX model uses the signature's names; reading them
// here lets one spec serve both TFLite engines.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace deltann::armnn_engine {

struct SignatureNames {
  std::map<std::string, std::string> inputs;   // signature name -> tensor name
  std::map<std::string, std::string> outputs;  // signature name -> tensor name
};

// The names of the signatures of subgraph 0 (empty when the model has none). The file is
// untrusted: every offset is checked, and a malformed table throws Error naming the file.
SignatureNames read_signature_names(const std::vector<uint8_t>& model, const std::string& where);
SignatureNames read_signature_names(const std::filesystem::path& path);

}  // namespace deltann::armnn_engine
