#include "core/onnx_model.h"

#include <fstream>
#include <system_error>
#include <vector>

#include "deltann/error.h"

namespace deltann {

std::string read_onnx_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open the model");
  // An oversized file is refused before it is read, and a stream without a size (a pipe) is
  // read only up to the limit, so that no file makes this hold more than 2 GiB.
  const auto too_large = [&] { return Error(path.string() + ": model larger than 2 GiB"); };
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxOnnxBytes) throw too_large();
  std::string bytes;
  if (!ec) bytes.reserve(static_cast<size_t>(size));
  std::vector<char> chunk(size_t{1} << 16);
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    const auto got = static_cast<size_t>(in.gcount());
    if (bytes.size() + got > kMaxOnnxBytes) throw too_large();
    bytes.append(chunk.data(), got);
  }
  if (in.bad()) throw Error(path.string() + ": cannot read the model");
  return bytes;
}

onnx::ModelProto parse_onnx_model(const std::string& bytes, const std::string& where) {
  // A file that grew after its size was checked, or bytes from elsewhere, are checked again here.
  if (bytes.size() > kMaxOnnxBytes) throw Error(where + ": model larger than 2 GiB");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(where + ": not a valid ONNX model (protobuf parse failed)");
  if (!model.has_graph()) throw Error(where + ": the model has no graph");
  return model;
}

onnx::ModelProto load_onnx_model(const std::filesystem::path& path) {
  return parse_onnx_model(read_onnx_bytes(path), path.string());
}

std::string node_key(const onnx::NodeProto& node) {
  if (!node.name().empty()) return node.name();
  return node.output_size() > 0 ? node.output(0) : std::string();
}

OnnxGraphIndex::OnnxGraphIndex(const onnx::GraphProto& graph) : graph_(graph) {
  for (const auto& init : graph.initializer()) initializers_[init.name()] = &init;
  for (int i = 0; i < graph.node_size(); ++i) {
    for (const auto& out : graph.node(i).output())
      if (!out.empty()) producer_.emplace(out, static_cast<size_t>(i));  // "" = omitted output
    by_key_.emplace(node_key(graph.node(i)), static_cast<size_t>(i));
  }
}

std::optional<size_t> OnnxGraphIndex::producer(const std::string& tensor) const {
  const auto it = producer_.find(tensor);
  return it == producer_.end() ? std::nullopt : std::optional(it->second);
}

const onnx::NodeProto* OnnxGraphIndex::producer_node(const std::string& tensor) const {
  const auto i = producer(tensor);
  return i ? &node(*i) : nullptr;
}

std::optional<size_t> OnnxGraphIndex::by_key(const std::string& key) const {
  const auto it = by_key_.find(key);
  return it == by_key_.end() ? std::nullopt : std::optional(it->second);
}

const onnx::TensorProto* OnnxGraphIndex::initializer(const std::string& name) const {
  const auto it = initializers_.find(name);
  return it == initializers_.end() ? nullptr : it->second;
}

}  // namespace deltann
