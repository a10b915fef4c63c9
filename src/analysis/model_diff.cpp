#include "model_diff.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "deltann/error.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;

onnx::ModelProto read_model(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open the model");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Protobuf parses at most 2 GiB; a larger file would be cut silently.
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw Error(path.string() + ": model larger than 2 GiB");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(path.string() + ": not a valid ONNX protobuf");
  return model;
}

// A constant tensor as float64 values, or nullopt for a type this comparison does not read.
std::optional<std::vector<double>> values_of(const onnx::TensorProto& t) {
  size_t count = 1;
  for (const auto d : t.dims()) {
    if (d < 0 || (d > 0 && count > std::numeric_limits<size_t>::max() / static_cast<size_t>(d)))
      return std::nullopt;
    count *= static_cast<size_t>(d);
  }
  std::vector<double> out;
  const std::string& raw = t.raw_data();
  const auto from_raw = [&](auto sample) {
    using T = decltype(sample);
    if (raw.size() != count * sizeof(T)) return false;
    out.resize(count);
    for (size_t i = 0; i < count; ++i) {
      T v;
      std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
      out[i] = static_cast<double>(v);
    }
    return true;
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (!raw.empty()) return from_raw(float{}) ? std::optional(out) : std::nullopt;
      out.assign(t.float_data().begin(), t.float_data().end());
      break;
    case onnx::TensorProto::DOUBLE:
      if (!raw.empty()) return from_raw(double{}) ? std::optional(out) : std::nullopt;
      out.assign(t.double_data().begin(), t.double_data().end());
      break;
    case onnx::TensorProto::INT64:
      if (!raw.empty()) return from_raw(int64_t{}) ? std::optional(out) : std::nullopt;
      out.assign(t.int64_data().begin(), t.int64_data().end());
      break;
    case onnx::TensorProto::INT32:
      if (!raw.empty()) return from_raw(int32_t{}) ? std::optional(out) : std::nullopt;
      out.assign(t.int32_data().begin(), t.int32_data().end());
      break;
    default:
      return std::nullopt;
  }
  if (out.size() != count) return std::nullopt;
  return out;
}

std::string attribute_text(const onnx::AttributeProto& a) {
  std::ostringstream s;
  const auto list = [&](const auto& items) {
    s << '[';
    for (int i = 0; i < items.size(); ++i) s << (i ? "," : "") << items.Get(i);
    s << ']';
  };
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      s << a.i();
      break;
    case onnx::AttributeProto::FLOAT:
      s << a.f();
      break;
    case onnx::AttributeProto::STRING:
      s << '"' << a.s() << '"';
      break;
    case onnx::AttributeProto::INTS:
      list(a.ints());
      break;
    case onnx::AttributeProto::FLOATS:
      list(a.floats());
      break;
    default:
      // Tensors and graphs as attributes: compared by their serialised bytes.
      s << "<" << a.ByteSizeLong() << " bytes>";
  }
  return s.str();
}

std::string node_key(const onnx::NodeProto& n) {
  if (!n.name().empty()) return n.name();
  return n.output_size() > 0 ? n.output(0) : "";
}

size_t distinct(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return static_cast<size_t>(std::unique(v.begin(), v.end()) - v.begin());
}

// Compares the constant tensor each node input reads (weights, biases, BatchNorm statistics).
void diff_inputs(const onnx::NodeProto& na, const onnx::NodeProto& nb,
                 const std::map<std::string, const onnx::TensorProto*>& init_a,
                 const std::map<std::string, const onnx::TensorProto*>& init_b,
                 ParameterDifference base, std::vector<ParameterDifference>& out) {
  const int inputs = std::min(na.input_size(), nb.input_size());
  for (int i = 0; i < inputs; ++i) {
    const auto ta = init_a.find(na.input(i));
    const auto tb = init_b.find(nb.input(i));
    if (ta == init_a.end() || tb == init_b.end()) continue;
    ParameterDifference d = base;
    d.what = "weights " + na.input(i) + " (input " + std::to_string(i) + ")";
    const auto va = values_of(*ta->second), vb = values_of(*tb->second);
    if (!va || !vb) continue;
    if (va->size() != vb->size()) {
      d.a = std::to_string(va->size()) + " values";
      d.b = std::to_string(vb->size()) + " values";
      out.push_back(d);
      continue;
    }
    double worst = 0, largest = 0;
    for (size_t k = 0; k < va->size(); ++k) {
      worst = std::max(worst, std::fabs((*va)[k] - (*vb)[k]));
      largest = std::max(largest, std::fabs((*va)[k]));
    }
    if (worst == 0) continue;
    d.max_abs = worst;
    const size_t levels_a = distinct(*va), levels_b = distinct(*vb);
    std::ostringstream a, b;
    a << va->size() << " values, " << levels_a << " distinct, max |w| " << largest;
    b << vb->size() << " values, " << levels_b << " distinct";
    d.a = a.str();
    d.b = b.str();
    if (levels_b <= 256 && levels_a > 2 * levels_b)
      d.note = "B's weights take only " + std::to_string(levels_b) +
               " distinct values (A: " + std::to_string(levels_a) +
               "): quantised to 8 bits or fewer";
    else
      d.note = "relative change " + std::to_string(largest > 0 ? worst / largest : worst);
    out.push_back(d);
  }
}

}  // namespace

std::vector<ParameterDifference> diff_models(const fs::path& a_path, const fs::path& b_path) {
  const onnx::ModelProto a = read_model(a_path), b = read_model(b_path);
  std::map<std::string, const onnx::TensorProto*> init_a, init_b;
  for (const auto& t : a.graph().initializer()) init_a[t.name()] = &t;
  for (const auto& t : b.graph().initializer()) init_b[t.name()] = &t;
  std::map<std::string, const onnx::NodeProto*> nodes_b;
  for (const auto& n : b.graph().node()) nodes_b.emplace(node_key(n), &n);

  std::vector<ParameterDifference> out;
  std::set<std::string> matched;
  for (const auto& na : a.graph().node()) {
    ParameterDifference base;
    base.node = node_key(na);
    base.output = na.output_size() > 0 ? na.output(0) : "";
    const auto found = nodes_b.find(base.node);
    if (found == nodes_b.end()) {
      ParameterDifference d = base;
      d.what = "node missing in B";
      d.a = na.op_type();
      out.push_back(d);
      continue;
    }
    matched.insert(base.node);
    const onnx::NodeProto& nb = *found->second;
    if (na.op_type() != nb.op_type()) {
      ParameterDifference d = base;
      d.what = "op";
      d.a = na.op_type();
      d.b = nb.op_type();
      out.push_back(d);
    }
    std::map<std::string, std::string> attrs_a, attrs_b;
    for (const auto& at : na.attribute()) attrs_a[at.name()] = attribute_text(at);
    for (const auto& at : nb.attribute()) attrs_b[at.name()] = attribute_text(at);
    std::set<std::string> names;
    for (const auto& [k, v] : attrs_a) names.insert(k);
    for (const auto& [k, v] : attrs_b) names.insert(k);
    for (const auto& name : names) {
      const auto ia = attrs_a.find(name), ib = attrs_b.find(name);
      const std::string va = ia == attrs_a.end() ? "(unset)" : ia->second;
      const std::string vb = ib == attrs_b.end() ? "(unset)" : ib->second;
      if (va == vb) continue;
      ParameterDifference d = base;
      d.what = "attribute " + name;
      d.a = va;
      d.b = vb;
      out.push_back(d);
    }
    diff_inputs(na, nb, init_a, init_b, base, out);
  }
  for (const auto& nb : b.graph().node())
    if (!matched.count(node_key(nb))) {
      ParameterDifference d;
      d.node = node_key(nb);
      d.output = nb.output_size() > 0 ? nb.output(0) : "";
      d.what = "node only in B";
      d.b = nb.op_type();
      out.push_back(d);
    }
  return out;
}

}  // namespace deltann
