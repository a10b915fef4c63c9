// Loading an ONNX model into the executor's own structures, and running it node by node.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "core/onnx_model.h"
#include "deltann/error.h"
#include "reference/ops.h"
#include "reference/reference.h"

namespace deltann::reference {

std::string dtype_name(DType t) {
  switch (t) {
    case DType::Float:
      return "float32";
    case DType::Uint8:
      return "uint8";
    case DType::Int8:
      return "int8";
    case DType::Uint16:
      return "uint16";
    case DType::Int16:
      return "int16";
    case DType::Int32:
      return "int32";
    case DType::Int64:
      return "int64";
    case DType::Bool:
      return "bool";
    case DType::Double:
      return "float64";
    case DType::Uint32:
      return "uint32";
    case DType::Uint64:
      return "uint64";
  }
  return "type " + std::to_string(static_cast<int>(t));
}

bool is_floating(DType t) { return t == DType::Float || t == DType::Double; }

int64_t checked_count(const std::vector<int64_t>& shape, const std::string& where) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    if (d < 0) throw Error(where + ": negative dimension " + std::to_string(d));
    if (d != 0 && n > kMaxElements / d)
      throw Error(where + ": tensor of more than 2^31 elements refused");
    n *= d;
  }
  return n;
}

int64_t Value::count() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

std::vector<double> Value::as_doubles() const {
  if (floating()) return f;
  return std::vector<double>(i.begin(), i.end());
}

std::string Node::label() const {
  const std::string shown = !name.empty() ? name : (!outputs.empty() ? outputs.front() : "?");
  return "node '" + shown + "' (" + op + ")";
}

namespace {

// The element types the loader accepts, with the width of one element in raw_data.
bool known_dtype(int32_t t, size_t& width) {
  switch (static_cast<DType>(t)) {
    case DType::Float:
      width = 4;
      return true;
    case DType::Double:
      width = 8;
      return true;
    case DType::Int64:
      width = 8;
      return true;
    case DType::Uint64:
      width = 8;
      return true;
    case DType::Int32:
      width = 4;
      return true;
    case DType::Uint32:
      width = 4;
      return true;
    case DType::Int16:
      width = 2;
      return true;
    case DType::Uint16:
      width = 2;
      return true;
    case DType::Int8:
      width = 1;
      return true;
    case DType::Uint8:
      width = 1;
      return true;
    case DType::Bool:
      width = 1;
      return true;
  }
  return false;
}

// Little-endian element `k` of raw_data as the type's value (the format stores every type LE).
template <typename T>
T raw_at(const std::string& raw, size_t k) {
  T v;
  std::memcpy(&v, raw.data() + k * sizeof(T), sizeof(T));
  return v;
}

Value from_proto(const onnx::TensorProto& t, const std::string& where) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0)
    throw Unsupported(where +
                      ": keeps its data in an external file; the reference executor "
                      "reads self-contained models only");
  if (t.has_segment()) throw Unsupported(where + ": segmented tensors are not supported");
  size_t width = 0;
  if (!known_dtype(t.data_type(), width))
    throw Unsupported(where + ": element type " + std::to_string(t.data_type()) +
                      " (float16, bfloat16, string, complex, float8 or int4) is not supported");
  Value v;
  v.dtype = static_cast<DType>(t.data_type());
  v.shape.assign(t.dims().begin(), t.dims().end());
  const int64_t n = checked_count(v.shape, where);
  const auto count = static_cast<size_t>(n);
  // The data's size is checked against the shape before anything is allocated for it: a model of
  // a few bytes may declare 2^31 elements.
  const auto allocate = [&] {
    if (v.floating())
      v.f.resize(count);
    else
      v.i.resize(count);
  };

  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (raw.size() != count * width)
      throw Error(where + ": raw_data holds " + std::to_string(raw.size()) + " bytes but " +
                  std::to_string(n) + " " + dtype_name(v.dtype) + " elements need " +
                  std::to_string(count * width));
    allocate();
    for (size_t k = 0; k < count; ++k) {
      switch (v.dtype) {
        case DType::Float:
          v.f[k] = raw_at<float>(raw, k);
          break;
        case DType::Double:
          v.f[k] = raw_at<double>(raw, k);
          break;
        case DType::Int64:
          v.i[k] = raw_at<int64_t>(raw, k);
          break;
        case DType::Uint64: {
          const auto u = raw_at<uint64_t>(raw, k);
          if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw Unsupported(where + ": uint64 value above 2^63 cannot be held as int64");
          v.i[k] = static_cast<int64_t>(u);
          break;
        }
        case DType::Int32:
          v.i[k] = raw_at<int32_t>(raw, k);
          break;
        case DType::Uint32:
          v.i[k] = raw_at<uint32_t>(raw, k);
          break;
        case DType::Int16:
          v.i[k] = raw_at<int16_t>(raw, k);
          break;
        case DType::Uint16:
          v.i[k] = raw_at<uint16_t>(raw, k);
          break;
        case DType::Int8:
          v.i[k] = raw_at<int8_t>(raw, k);
          break;
        case DType::Uint8:
          v.i[k] = raw_at<uint8_t>(raw, k);
          break;
        case DType::Bool:
          v.i[k] = raw_at<uint8_t>(raw, k) != 0;
          break;
      }
    }
    return v;
  }

  // Typed fields: which one holds the data depends on the element type (onnx.proto).
  auto check_size = [&](int got, const char* field) {
    if (static_cast<size_t>(got) != count)
      throw Error(where + ": " + field + " holds " + std::to_string(got) +
                  " values but the shape " + shape_text_of(v.shape) + " needs " +
                  std::to_string(n));
    allocate();
  };
  switch (v.dtype) {
    case DType::Float:
      check_size(t.float_data_size(), "float_data");
      for (size_t k = 0; k < count; ++k) v.f[k] = t.float_data(static_cast<int>(k));
      break;
    case DType::Double:
      check_size(t.double_data_size(), "double_data");
      for (size_t k = 0; k < count; ++k) v.f[k] = t.double_data(static_cast<int>(k));
      break;
    case DType::Int64:
      check_size(t.int64_data_size(), "int64_data");
      for (size_t k = 0; k < count; ++k) v.i[k] = t.int64_data(static_cast<int>(k));
      break;
    case DType::Uint32:
    case DType::Uint64:
      check_size(t.uint64_data_size(), "uint64_data");
      for (size_t k = 0; k < count; ++k) {
        const uint64_t u = t.uint64_data(static_cast<int>(k));
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          throw Unsupported(where + ": uint64 value above 2^63 cannot be held as int64");
        v.i[k] = static_cast<int64_t>(u);
      }
      break;
    default:  // int32, int16, uint16, int8, uint8, bool: all in int32_data
      check_size(t.int32_data_size(), "int32_data");
      for (size_t k = 0; k < count; ++k) v.i[k] = t.int32_data(static_cast<int>(k));
      if (v.dtype == DType::Bool)
        for (auto& x : v.i) x = x != 0;
      break;
  }
  return v;
}

Attribute from_proto(const onnx::AttributeProto& a, const std::string& where) {
  Attribute r;
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      r.kind = Attribute::Kind::Int;
      r.i = a.i();
      break;
    case onnx::AttributeProto::FLOAT:
      r.kind = Attribute::Kind::Float;
      r.f = a.f();
      break;
    case onnx::AttributeProto::STRING:
      r.kind = Attribute::Kind::String;
      r.s = a.s();
      break;
    case onnx::AttributeProto::TENSOR:
      r.kind = Attribute::Kind::Tensor;
      r.t = from_proto(a.t(), where + " attribute '" + a.name() + "'");
      break;
    case onnx::AttributeProto::INTS:
      r.kind = Attribute::Kind::Ints;
      r.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::FLOATS:
      r.kind = Attribute::Kind::Floats;
      r.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::STRINGS:
      r.kind = Attribute::Kind::Strings;
      r.strings.assign(a.strings().begin(), a.strings().end());
      break;
    default:
      // Graphs (If, Loop), sparse tensors, type protos: no operator here takes them, so keep the
      // attribute as Other and let the operator refuse it if it ever reads it.
      r.kind = Attribute::Kind::Other;
      break;
  }
  return r;
}

ValueInfo from_proto(const onnx::ValueInfoProto& info, const std::string& where) {
  ValueInfo r;
  r.name = info.name();
  if (!info.has_type()) return r;  // type unknown: unchecked
  if (!info.type().has_tensor_type())
    throw Unsupported(where + " '" + info.name() +
                      "' is not a tensor (a sequence, map or optional); the reference executor "
                      "handles tensors only");
  const auto& tt = info.type().tensor_type();
  size_t width = 0;
  if (tt.elem_type() != 0 && !known_dtype(tt.elem_type(), width))
    throw Unsupported(where + " '" + info.name() + "' has element type " +
                      std::to_string(tt.elem_type()) + ", which the reference executor lacks");
  if (tt.elem_type() != 0) r.dtype = static_cast<DType>(tt.elem_type());
  if (tt.has_shape()) {
    r.has_shape = true;
    for (const auto& d : tt.shape().dim())
      r.shape.push_back(d.has_dim_value() && d.dim_value() >= 0 ? d.dim_value() : -1);
  }
  return r;
}

std::string read_file(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open the " + what);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path.string() + ": cannot read the " + what);
  return bytes;
}

}  // namespace

std::string shape_text_of(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? "," : "") + std::to_string(shape[k]);
  return s + "]";
}

Value read_tensor_file(const std::filesystem::path& path) {
  const std::string bytes = read_file(path, "tensor file");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw Error(path.string() + ": tensor file larger than 2 GiB");
  onnx::TensorProto t;
  if (!t.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(path.string() + ": not a serialised ONNX TensorProto");
  return from_proto(t, path.string());
}

Model Model::load(const std::filesystem::path& path) {
  return parse(read_onnx_bytes(path), path.string());
}

Model Model::parse(const std::string& bytes, const std::string& where) {
  const onnx::ModelProto proto = parse_onnx_model(bytes, where);

  Model m;
  m.where_ = where;
  for (const auto& op : proto.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") m.opset_ = op.version();
  // IR version 3 and later must declare the default domain's opset; without it the operators'
  // semantics are unknown, so refuse rather than guess.
  if (m.opset_ <= 0) {
    if (proto.opset_import_size() > 0)
      throw Unsupported(where + ": the model imports only other domains than the default one (" +
                        proto.opset_import(0).domain() + ")");
    throw Error(where + ": the model imports no version of the default opset");
  }

  const auto& g = proto.graph();
  for (const auto& init : g.initializer()) {
    if (init.name().empty()) throw Error(where + ": an initializer has no name");
    m.initializers_[init.name()] = from_proto(init, where + ": initializer '" + init.name() + "'");
  }
  if (g.sparse_initializer_size() > 0)
    throw Unsupported(where + ": sparse initializers are not supported");

  std::set<std::string> defined;
  for (const auto& [name, value] : m.initializers_) defined.insert(name);
  for (const auto& in : g.input()) {
    // Older exporters list initializers among the inputs too; those are not fed by the caller.
    if (m.initializers_.count(in.name())) continue;
    if (in.name().empty()) throw Error(where + ": a graph input has no name");
    m.inputs_.push_back(from_proto(in, where + ": graph input"));
    defined.insert(in.name());
  }

  const auto& table = op_table();
  for (int k = 0; k < g.node_size(); ++k) {
    const auto& p = g.node(k);
    Node n;
    n.name = p.name();
    n.op = p.op_type();
    n.inputs.assign(p.input().begin(), p.input().end());
    n.outputs.assign(p.output().begin(), p.output().end());
    const std::string label = where + ": " + n.label();
    if (!p.domain().empty() && p.domain() != "ai.onnx")
      throw Unsupported(label + " is in domain '" + p.domain() +
                        "'; the reference executor implements the default ONNX domain only");
    if (!table.count(n.op))
      throw Unsupported(label + ": operator '" + n.op +
                        "' is not implemented by the reference "
                        "executor (docs/REFERENCE.md lists those that are)");
    for (const auto& a : p.attribute()) n.attributes[a.name()] = from_proto(a, label);
    // ONNX requires nodes in topological order; checking it here means run() never meets an
    // undefined value.
    for (const auto& in : n.inputs)
      if (!in.empty() && !defined.count(in))
        throw Error(label + ": input '" + in +
                    "' is not produced by an earlier node, an initializer or a graph input "
                    "(the graph is not in topological order, or the name is wrong)");
    for (const auto& out : n.outputs) {
      if (out.empty()) continue;  // an omitted optional output
      if (!defined.insert(out).second)
        throw Error(label + ": output '" + out + "' is already defined (ONNX graphs are SSA)");
    }
    m.nodes_.push_back(std::move(n));
  }
  for (const auto& out : g.output()) {
    if (!defined.count(out.name()))
      throw Error(where + ": graph output '" + out.name() + "' is produced by no node");
    m.outputs_.push_back(from_proto(out, where + ": graph output"));
  }
  if (m.outputs_.empty()) throw Error(where + ": the graph has no outputs");

  // Liveness: the node after which each intermediate value is no longer needed.
  std::map<std::string, size_t> last;
  for (size_t k = 0; k < m.nodes_.size(); ++k)
    for (const auto& in : m.nodes_[k].inputs)
      if (!in.empty()) last[in] = k;
  std::set<std::string> keep;
  for (const auto& out : m.outputs_) keep.insert(out.name);
  m.last_uses_.resize(m.nodes_.size());
  for (const auto& [name, k] : last)
    if (!keep.count(name) && !m.initializers_.count(name)) m.last_uses_[k].push_back(name);
  return m;
}

std::vector<std::string> Model::op_types() const {
  std::set<std::string> ops;
  for (const auto& n : nodes_) ops.insert(n.op);
  return {ops.begin(), ops.end()};
}

std::vector<Value> Model::run(const std::map<std::string, Value>& feeds,
                              std::vector<Captured>* captured) const {
  std::map<std::string, Value> values;
  for (const auto& in : inputs_) {
    const auto it = feeds.find(in.name);
    if (it == feeds.end()) throw Error(where_ + ": no value fed for graph input '" + in.name + "'");
    const Value& v = it->second;
    if (v.dtype != in.dtype)
      throw Error(where_ + ": graph input '" + in.name + "' is " + dtype_name(in.dtype) +
                  " but the value fed is " + dtype_name(v.dtype));
    if (in.has_shape) {
      bool ok = in.shape.size() == v.shape.size();
      for (size_t d = 0; ok && d < in.shape.size(); ++d)
        ok = in.shape[d] < 0 || in.shape[d] == v.shape[d];
      if (!ok)
        throw Error(where_ + ": graph input '" + in.name + "' has shape " +
                    shape_text_of(in.shape) + " but the value fed has shape " +
                    shape_text_of(v.shape));
    }
    const size_t stored = v.floating() ? v.f.size() : v.i.size();
    if (static_cast<int64_t>(stored) != checked_count(v.shape, "input '" + in.name + "'"))
      throw Error(where_ + ": the value fed for '" + in.name + "' has " + std::to_string(stored) +
                  " elements but its shape " + shape_text_of(v.shape) + " says otherwise");
    values[in.name] = v;
  }

  const auto& table = op_table();
  for (size_t k = 0; k < nodes_.size(); ++k) {
    const Node& node = nodes_[k];
    OpContext ctx{node, opset_, {}};
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        ctx.inputs.push_back(nullptr);
        continue;
      }
      const auto it = values.find(name);
      if (it != values.end()) {
        ctx.inputs.push_back(&it->second);
      } else {
        ctx.inputs.push_back(&initializers_.at(name));  // load() checked every name is defined
      }
    }
    std::vector<Value> results = table.at(node.op)(ctx);
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      if (node.outputs[o].empty()) continue;
      if (o >= results.size())
        throw Unsupported(where_ + ": " + node.label() + ": output " + std::to_string(o) +
                          " is not produced by the reference executor");
      if (captured && results[o].floating())
        captured->push_back({node.outputs[o], node.op, results[o]});
      values[node.outputs[o]] = std::move(results[o]);
    }
    if (!captured)
      for (const auto& name : last_uses_[k]) values.erase(name);
  }

  std::vector<Value> outs;
  for (const auto& out : outputs_) {
    const auto it = values.find(out.name);
    outs.push_back(it != values.end() ? it->second : initializers_.at(out.name));
  }
  return outs;
}

}  // namespace deltann::reference
