// Reading ONNX files with ONNX's protobuf classes (Debian's libonnx-dev), in one place for every
// C++ reader: the reference executor, the OpenCV DNN and ONNX Runtime workers, the model
// comparison and the reproducer of `deltann localize`. Model files come from users and other
// machines, so reading is bounded and every failure is an Error naming the file
// (tests/fuzz/fuzz_onnx_model.cpp drives this through the reference executor). Linked as the
// `deltann_onnx` library, built only where ONNX's classes are found.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace deltann {

// Protobuf parses at most 2 GiB and would cut a larger message silently.
inline constexpr size_t kMaxOnnxBytes = 2147483647;

// The bytes of a model file. Throws Error "<path>: cannot open the model", "... is larger than
// 2 GiB" (checked before anything is read) or "... cannot read the model".
std::string read_onnx_bytes(const std::filesystem::path& path);

// Parses a serialised ModelProto; `where` names it in errors (a path). Throws Error when it is
// larger than 2 GiB, is not a valid protobuf ModelProto, or has no graph.
onnx::ModelProto parse_onnx_model(const std::string& bytes, const std::string& where);

// read_onnx_bytes then parse_onnx_model.
onnx::ModelProto load_onnx_model(const std::filesystem::path& path);

// A node's identity across an edited copy of a model: its name, or its first output when it has
// none ("" when it has neither).
std::string node_key(const onnx::NodeProto& node);

// The main graph of a model indexed for walking it backwards from a tensor: which node produces a
// tensor, the node of a key (node_key), and the initialisers by name. The index points into
// `graph`, which must outlive it. In a valid model every tensor has one producer and every
// initialiser one name; in an invalid one the first producer and the last initialiser win.
class OnnxGraphIndex {
 public:
  explicit OnnxGraphIndex(const onnx::GraphProto& graph);

  const onnx::GraphProto& graph() const { return graph_; }
  const onnx::NodeProto& node(size_t i) const { return graph_.node(static_cast<int>(i)); }
  // The index of the node that produces `tensor`; nullopt for a graph input, an initialiser or an
  // unknown name.
  std::optional<size_t> producer(const std::string& tensor) const;
  // The node that produces `tensor`, or nullptr.
  const onnx::NodeProto* producer_node(const std::string& tensor) const;
  // The index of the first node whose node_key is `key`.
  std::optional<size_t> by_key(const std::string& key) const;
  // The initialiser named `name`, or nullptr.
  const onnx::TensorProto* initializer(const std::string& name) const;

 private:
  const onnx::GraphProto& graph_;
  std::map<std::string, size_t> producer_;
  std::map<std::string, size_t> by_key_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
};

}  // namespace deltann
