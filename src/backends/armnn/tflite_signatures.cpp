#include "tflite_signatures.h"

#include <fstream>
#include <iterator>

#include "deltann/error.h"

namespace deltann::armnn_engine {
namespace {

// Field offsets in the vtables of TFLite's schema (schema.fbs): 4 + 2 * field number.
constexpr uint16_t kModelSubgraphs = 8;
constexpr uint16_t kModelSignatureDefs = 18;
constexpr uint16_t kSubGraphTensors = 4;
constexpr uint16_t kTensorName = 10;
constexpr uint16_t kSignatureInputs = 4;
constexpr uint16_t kSignatureOutputs = 6;
constexpr uint16_t kSignatureSubgraphIndex = 12;
constexpr uint16_t kTensorMapName = 4;
constexpr uint16_t kTensorMapTensorIndex = 6;

// Just enough of the flatbuffer wire format to walk tables, vectors and strings, with every
// read checked against the buffer (little-endian, as flatbuffers always are).
class FlatReader {
 public:
  FlatReader(const std::vector<uint8_t>& bytes, std::string where)
      : bytes_(bytes), where_(std::move(where)) {}

  size_t root() const { return deref(0); }

  // Position of a field's value in the table at `table`, or 0 when the field is absent.
  size_t field(size_t table, uint16_t vtable_offset) const {
    const int64_t vtable = static_cast<int64_t>(table) - i32(table);
    if (vtable < 0) fail("vtable before the buffer");
    const auto v = static_cast<size_t>(vtable);
    if (vtable_offset + 2u > u16(v)) return 0;  // the vtable is shorter: field absent
    const uint16_t offset = u16(v + vtable_offset);
    return offset == 0 ? 0 : table + offset;
  }

  // The table, vector or string a field points to, or 0 when the field is absent.
  size_t child(size_t table, uint16_t vtable_offset) const {
    const size_t at = field(table, vtable_offset);
    return at == 0 ? 0 : deref(at);
  }

  // The tables of a vector of tables.
  std::vector<size_t> tables(size_t vector) const {
    std::vector<size_t> out;
    if (vector == 0) return out;
    const uint32_t n = u32(vector);
    check(vector + 4, static_cast<size_t>(n) * 4);
    for (uint32_t i = 0; i < n; ++i) out.push_back(deref(vector + 4 + 4 * static_cast<size_t>(i)));
    return out;
  }

  std::string string(size_t at) const {
    if (at == 0) return "";
    const uint32_t n = u32(at);
    check(at + 4, n);
    return std::string(reinterpret_cast<const char*>(bytes_.data() + at + 4), n);
  }

  uint32_t u32(size_t at) const {
    check(at, 4);
    return static_cast<uint32_t>(bytes_[at]) | static_cast<uint32_t>(bytes_[at + 1]) << 8 |
           static_cast<uint32_t>(bytes_[at + 2]) << 16 |
           static_cast<uint32_t>(bytes_[at + 3]) << 24;
  }

 private:
  int32_t i32(size_t at) const { return static_cast<int32_t>(u32(at)); }
  uint16_t u16(size_t at) const {
    check(at, 2);
    return static_cast<uint16_t>(bytes_[at] | bytes_[at + 1] << 8);
  }
  size_t deref(size_t at) const {
    const size_t target = at + u32(at);
    check(target, 1);
    return target;
  }
  void check(size_t at, size_t n) const {
    if (at > bytes_.size() || n > bytes_.size() - at) fail("offset out of range");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": malformed TFLite flatbuffer (" + what + ") in its signatures");
  }

  const std::vector<uint8_t>& bytes_;
  std::string where_;
};

}  // namespace

SignatureNames read_signature_names(const std::vector<uint8_t>& model, const std::string& where) {
  SignatureNames names;
  const FlatReader r(model, where);
  const size_t root = r.root();
  const auto subgraphs = r.tables(r.child(root, kModelSubgraphs));
  if (subgraphs.empty()) return names;
  const auto tensors = r.tables(r.child(subgraphs.front(), kSubGraphTensors));
  const auto map_names = [&](size_t vector, std::map<std::string, std::string>& into) {
    for (size_t entry : r.tables(vector)) {
      const size_t index_at = r.field(entry, kTensorMapTensorIndex);
      const uint32_t index = index_at == 0 ? 0 : r.u32(index_at);
      if (index >= tensors.size()) continue;  // not a tensor of subgraph 0
      into.emplace(r.string(r.child(entry, kTensorMapName)),
                   r.string(r.child(tensors[index], kTensorName)));
    }
  };
  for (size_t signature : r.tables(r.child(root, kModelSignatureDefs))) {
    const size_t subgraph_at = r.field(signature, kSignatureSubgraphIndex);
    if (subgraph_at != 0 && r.u32(subgraph_at) != 0) continue;
    map_names(r.child(signature, kSignatureInputs), names.inputs);
    map_names(r.child(signature, kSignatureOutputs), names.outputs);
  }
  return names;
}

SignatureNames read_signature_names(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open it");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  return read_signature_names(bytes, path.string());
}

}  // namespace deltann::armnn_engine
