#include "model_diff.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "cause_kind.h"
#include "core/onnx_model.h"
#include "deltann/compare_tensors.h"
#include "deltann/error.h"
#include "deltann/tensor_match.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;

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
    // int8 and uint8 are the stored form of quantised weights (read through DequantizeLinear).
    case onnx::TensorProto::INT8:
      if (!raw.empty()) return from_raw(int8_t{}) ? std::optional(out) : std::nullopt;
      out.assign(t.int32_data().begin(), t.int32_data().end());
      break;
    case onnx::TensorProto::UINT8:
      if (!raw.empty()) return from_raw(uint8_t{}) ? std::optional(out) : std::nullopt;
      out.assign(t.int32_data().begin(), t.int32_data().end());
      break;
    case onnx::TensorProto::FLOAT16: {
      // Converters store float16 weights (TFLite's quantize=float16); decoded bit by bit.
      if (raw.size() != count * 2) return std::nullopt;
      out.resize(count);
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, raw.data() + i * 2, 2);
        const int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
        double v = exponent == 0    ? std::ldexp(mantissa, -24)
                   : exponent == 31 ? (mantissa ? std::nan("") : INFINITY)
                                    : std::ldexp(mantissa + 1024, exponent - 25);
        out[i] = (h & 0x8000) ? -v : v;
      }
      break;
    }
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

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

size_t distinct(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return static_cast<size_t>(std::unique(v.begin(), v.end()) - v.begin());
}

std::string values_summary(const std::vector<double>& v) {
  double largest = 0;
  for (const double x : v) largest = std::max(largest, std::fabs(x));
  std::ostringstream s;
  s << v.size() << " values, " << distinct(v) << " distinct, max |w| " << largest;
  return s.str();
}

// Compares the constant tensor each input of A's node reads (weights, biases, BatchNorm
// statistics) with the one B's node reads at the same position, and names the kind of change.
void diff_inputs(const onnx::NodeProto& na, const onnx::NodeProto& nb,
                 const OnnxGraphIndex& graph_a, const OnnxGraphIndex& graph_b,
                 ParameterDifference base, std::vector<ParameterDifference>& out) {
  for (int i = 0; i < na.input_size(); ++i) {
    const onnx::TensorProto* ta = graph_a.initializer(na.input(i));
    if (!ta) continue;
    const auto va = values_of(*ta);
    if (!va) continue;
    const bool absent = i >= nb.input_size() || nb.input(i).empty();
    const onnx::TensorProto* tb = absent ? nullptr : graph_b.initializer(nb.input(i));
    if (!absent && !tb) continue;  // B computes this input: not a parameter to compare
    const auto vb = tb ? values_of(*tb) : std::optional<std::vector<double>>(std::vector<double>{});
    if (!vb) continue;
    ParameterDifference d = base;
    d.what = "weights " + na.input(i) + " (input " + std::to_string(i) + ")";
    d.input = i;
    // Opset 11 made Clip's bounds inputs: they are bounds, not weights.
    if (na.op_type() == "Clip" && (i == 1 || i == 2) && va->size() == 1 && vb->size() == 1) {
      if ((*va)[0] == (*vb)[0]) continue;
      const std::string name = i == 1 ? "min" : "max";
      d.what = "input " + name;
      d.a = number_text((*va)[0]);
      d.b = number_text((*vb)[0]);
      d.kind = classify_attribute_change("Clip", name, d.a, d.b);
      out.push_back(d);
      continue;
    }
    const std::vector<int64_t> shape_a(ta->dims().begin(), ta->dims().end());
    const std::vector<int64_t> shape_b =
        tb ? std::vector<int64_t>(tb->dims().begin(), tb->dims().end()) : std::vector<int64_t>{};
    const bool zero_a = std::all_of(va->begin(), va->end(), [](double v) { return v == 0; });
    if (absent && zero_a) continue;  // an all-zero input (a bias) dropped changes nothing
    d.kind = classify_tensor_change(*va, shape_a, *vb, shape_b, !absent);
    if (d.kind.kind == "same") continue;
    // A missing tensor is as far from A as A is from zero.
    d.max_abs = absent ? compare_tensors(*va, std::vector<double>(va->size(), 0.0)).max_abs
                : va->size() != vb->size() ? 0
                                           : compare_tensors(*va, *vb).max_abs;
    d.a = values_summary(*va);
    d.b = absent ? "(none)" : values_summary(*vb);
    d.note = d.kind.text;
    out.push_back(d);
  }
}

}  // namespace

std::vector<ParameterDifference> diff_models(const fs::path& a_path, const fs::path& b_path) {
  const onnx::ModelProto a = load_onnx_model(a_path), b = load_onnx_model(b_path);
  const OnnxGraphIndex graph_a(a.graph()), graph_b(b.graph());

  std::vector<ParameterDifference> out;
  std::set<std::string> matched;
  for (const auto& na : a.graph().node()) {
    ParameterDifference base;
    base.node = node_key(na);
    base.output = na.output_size() > 0 ? na.output(0) : "";
    const auto found = graph_b.by_key(base.node);
    if (!found) {
      ParameterDifference d = base;
      d.what = "node missing in B";
      d.a = na.op_type();
      d.kind = {"node-missing", {{"op", na.op_type()}}, "node-missing: B has no " + na.op_type()};
      out.push_back(d);
      continue;
    }
    matched.insert(base.node);
    const onnx::NodeProto& nb = graph_b.node(*found);
    if (na.op_type() != nb.op_type()) {
      ParameterDifference d = base;
      d.what = "op";
      d.a = na.op_type();
      d.b = nb.op_type();
      d.kind = classify_op_change(d.a, d.b);
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
      d.kind = classify_attribute_change(na.op_type(), name, va, vb);
      out.push_back(d);
    }
    diff_inputs(na, nb, graph_a, graph_b, base, out);
  }
  for (const auto& nb : b.graph().node())
    if (!matched.count(node_key(nb))) {
      ParameterDifference d;
      d.node = node_key(nb);
      d.output = nb.output_size() > 0 ? nb.output(0) : "";
      d.what = "node only in B";
      d.b = nb.op_type();
      d.kind = {"node-added", {{"op", nb.op_type()}}, "node-added: B has an extra " + nb.op_type()};
      out.push_back(d);
    }
  return out;
}

std::vector<double> permute_values(const std::vector<double>& values,
                                   const std::vector<int64_t>& shape,
                                   const std::vector<int64_t>& perm) {
  return transform_values(values, shape, perm, std::vector<bool>(perm.size(), false));
}

std::optional<LayoutFit> best_weight_layout(const std::vector<double>& a,
                                            const std::vector<int64_t>& shape_a,
                                            const std::vector<double>& b,
                                            const std::vector<int64_t>& shape_b) {
  if (a.size() != b.size()) return std::nullopt;
  const auto squeezed = [](const std::vector<int64_t>& shape) {
    std::vector<int64_t> out;
    for (const auto d : shape)
      if (d != 1) out.push_back(d);
    return out;
  };
  const auto max_abs = [](const std::vector<double>& x, const std::vector<double>& y) {
    return compare_tensors(x, y).max_abs;  // NaN on one side only is as far as values get
  };
  // Flat order always fits equal counts: a reshaped copy (Gemm's [5] bias as [1,5]) keeps it.
  std::optional<LayoutFit> best =
      LayoutFit{squeezed(shape_a) == squeezed(shape_b) ? "same" : "reshaped", max_abs(a, b)};
  const auto consider = [&](const std::string& name, const std::vector<int64_t>& perm) {
    std::vector<int64_t> expected(perm.size());
    for (size_t k = 0; k < perm.size(); ++k) expected[k] = shape_a[perm[k]];
    if (expected != shape_b) return;
    const double d = max_abs(permute_values(a, shape_a, perm), b);
    if (d < best->max_abs) best = LayoutFit{name, d};
  };
  if (shape_a.size() == 2 && shape_b.size() == 2)
    consider("transposed", layout_permutation("transposed"));
  if (shape_a.size() == 4 && shape_b.size() == 4)
    for (const char* layout : {"OHWI", "HWIO", "IHWO"})
      consider(layout, layout_permutation(layout));
  return best;
}

std::vector<int64_t> layout_permutation(const std::string& layout) {
  // A is ONNX's OIHW; TFLite's CONV_2D keeps OHWI, TensorFlow HWIO, DEPTHWISE_CONV_2D IHWO.
  if (layout == "transposed") return {1, 0};
  if (layout == "OHWI") return {0, 2, 3, 1};
  if (layout == "HWIO") return {2, 3, 1, 0};
  if (layout == "IHWO") return {1, 2, 3, 0};
  return {};
}

namespace {

// A constant as an operator sees it: an initialiser or Constant node, possibly read through the
// Identity, Cast, Transpose or DequantizeLinear nodes converters put in front of weights.
struct Constant {
  std::string name;  // the stored tensor's name
  std::vector<int64_t> shape;
  std::vector<double> values;
  bool floating = false;  // float weights (not shapes or axes)
  std::string note;       // "int8 weights (DequantizeLinear)"
};

bool is_float_type(int type) {
  return type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::DOUBLE ||
         type == onnx::TensorProto::FLOAT16 || type == onnx::TensorProto::BFLOAT16;
}

const onnx::AttributeProto* attribute(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

// One model's graph for the walk: producers through the shared index, and the constants a node
// reads, followed through the ops converters put in front of weights.
class Graph {
 public:
  explicit Graph(const onnx::ModelProto& model) : index_(model.graph()) {}
  const onnx::NodeProto* producer(const std::string& tensor) const {
    return index_.producer_node(tensor);
  }
  std::optional<Constant> constant(const std::string& name, int depth = 0) const {
    if (name.empty() || depth > 4) return std::nullopt;
    if (const onnx::TensorProto* init = index_.initializer(name)) return from(*init);
    const onnx::NodeProto* n = producer(name);
    if (!n) return std::nullopt;
    const std::string& op = n->op_type();
    if (op == "Constant") {
      const auto* value = attribute(*n, "value");
      if (!value || !value->has_t()) return std::nullopt;
      auto c = from(value->t());
      if (c) c->name = name;
      return c;
    }
    if (n->input_size() == 0) return std::nullopt;
    auto c = constant(n->input(0), depth + 1);
    if (!c) return std::nullopt;
    if (op == "Identity") return c;
    if (op == "Cast") {
      const auto* to = attribute(*n, "to");
      c->floating = to && is_float_type(static_cast<int>(to->i()));
      return c;
    }
    if (op == "Transpose") {
      std::vector<int64_t> perm;
      if (const auto* p = attribute(*n, "perm")) perm.assign(p->ints().begin(), p->ints().end());
      // Without perm, Transpose reverses the axes.
      for (size_t k = perm.empty() ? c->shape.size() : 0; k-- > 0;)
        perm.push_back(static_cast<int64_t>(k));
      auto moved = permute_values(c->values, c->shape, perm);
      if (moved.size() != c->values.size()) return std::nullopt;
      std::vector<int64_t> shape;
      for (const auto k : perm) shape.push_back(c->shape[k]);
      c->values = std::move(moved);
      c->shape = std::move(shape);
      return c;
    }
    if (op == "DequantizeLinear") return dequantised(*n, *c, depth);
    return std::nullopt;
  }

 private:
  std::optional<Constant> from(const onnx::TensorProto& t) const {
    auto values = values_of(t);
    if (!values) return std::nullopt;
    Constant c;
    c.name = t.name();
    c.shape.assign(t.dims().begin(), t.dims().end());
    c.values = std::move(*values);
    c.floating = is_float_type(t.data_type());
    if (t.data_type() == onnx::TensorProto::INT8) c.note = "int8";
    if (t.data_type() == onnx::TensorProto::UINT8) c.note = "uint8";
    return c;
  }
  // (x - zero_point) * scale, per tensor or per `axis` (default 1).
  std::optional<Constant> dequantised(const onnx::NodeProto& n, Constant x, int depth) const {
    const auto scale = n.input_size() > 1 ? constant(n.input(1), depth + 1) : std::nullopt;
    if (!scale || scale->values.empty()) return std::nullopt;
    const auto zero = n.input_size() > 2 ? constant(n.input(2), depth + 1) : std::nullopt;
    const size_t channels = scale->values.size();
    int64_t axis = 1;
    if (const auto* a = attribute(n, "axis")) axis = a->i();
    if (axis < 0) axis += static_cast<int64_t>(x.shape.size());
    size_t inner = 1;
    if (channels > 1) {
      if (axis < 0 || static_cast<size_t>(axis) >= x.shape.size() ||
          static_cast<size_t>(x.shape[axis]) != channels)
        return std::nullopt;
      for (size_t k = static_cast<size_t>(axis) + 1; k < x.shape.size(); ++k)
        inner *= static_cast<size_t>(x.shape[k]);
    }
    if (zero && zero->values.size() != channels) return std::nullopt;
    for (size_t i = 0; i < x.values.size(); ++i) {
      const size_t ch = channels > 1 ? (i / inner) % channels : 0;
      x.values[i] = (x.values[i] - (zero ? zero->values[ch] : 0)) * scale->values[ch];
    }
    x.note = (x.note.empty() ? std::string("integer") : x.note) + " weights (DequantizeLinear)";
    x.floating = true;
    return x;
  }

  OnnxGraphIndex index_;
};

bool share_family(const std::string& a, const std::string& b) {
  if (a == b) return true;
  const auto fa = op_families(a), fb = op_families(b);
  for (const auto& f : fa)
    if (std::find(fb.begin(), fb.end(), f) != fb.end()) return true;
  return false;
}

// The nodes a converter puts between an operator and the tensor localize matched: layout
// changes, a separate bias Add, an activation, a dequantisation.
bool walkable(const std::string& op) {
  static const std::set<std::string> ops = {
      "Add",       "Relu",    "Clip",     "Transpose", "Reshape",         "Squeeze",
      "Unsqueeze", "Flatten", "Identity", "Cast",      "DequantizeLinear"};
  return ops.count(op) > 0;
}

std::optional<double> float_attribute(const onnx::NodeProto& n, const std::string& name) {
  const auto* a = attribute(n, name);
  if (!a) return std::nullopt;
  if (a->type() == onnx::AttributeProto::INT) return static_cast<double>(a->i());
  return a->f();
}

std::string summary(const Constant& c) { return c.name + ": " + values_summary(c.values); }

// The attributes of A's and B's main nodes that change the result, as (name, a, b) where they
// differ. Unset attributes take ONNX's defaults so that converters spelling them out agree.
void diff_attributes(const onnx::NodeProto& na, const onnx::NodeProto& nb, const Graph& ga,
                     const Graph& gb, bool weights_transposed,
                     std::vector<std::tuple<std::string, std::string, std::string>>& out) {
  const auto ints = [](const onnx::NodeProto& n, const std::string& name, int64_t fill,
                       size_t length) {
    std::vector<int64_t> v;
    if (const auto* a = attribute(n, name)) v.assign(a->ints().begin(), a->ints().end());
    if (v.empty()) v.assign(length, fill);
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  const auto compare = [&](const std::string& name, const std::string& a, const std::string& b) {
    if (a != b) out.emplace_back(name, a, b);
  };
  const std::string& op_a = na.op_type();
  const std::string& op_b = nb.op_type();
  if (op_a == "Conv" && op_b == "Conv") {
    // The spatial rank, for the defaults' length: from whichever node spells out its kernel.
    size_t spatial = 2;
    if (const auto* k = attribute(na, "kernel_shape"))
      spatial = static_cast<size_t>(k->ints_size());
    // Padding as the convolution sees it: a zero-valued constant Pad right before the Conv
    // that pads only spatial dimensions is the same as Conv padding, and converters fold one
    // into the other (tf2onnx folds PyTorch's "same" Pad into the next Conv).
    const auto effective_pads = [&](const onnx::NodeProto& n, const Graph& g) {
      std::vector<int64_t> pads(2 * spatial, 0);
      if (const auto* a = attribute(n, "pads");
          a && a->ints_size() == static_cast<int>(pads.size()))
        pads.assign(a->ints().begin(), a->ints().end());
      const onnx::NodeProto* pad = n.input_size() > 0 ? g.producer(n.input(0)) : nullptr;
      if (!pad || pad->op_type() != "Pad") return pads;
      if (const auto* mode = attribute(*pad, "mode"); mode && mode->s() != "constant") return pads;
      std::vector<double> amounts;  // opset >= 11: an input; before: an attribute
      if (pad->input_size() > 1) {
        if (const auto c = g.constant(pad->input(1))) amounts = c->values;
      } else if (const auto* a = attribute(*pad, "pads")) {
        amounts.assign(a->ints().begin(), a->ints().end());
      }
      double value = float_attribute(*pad, "value").value_or(0);
      if (pad->input_size() > 2 && !pad->input(2).empty()) {
        const auto c = g.constant(pad->input(2));
        value = c && c->values.size() == 1 ? c->values[0] : 1;  // unknown: not foldable
      }
      const size_t rank = spatial + 2;
      if (value != 0 || amounts.size() != 2 * rank) return pads;
      if (amounts[0] != 0 || amounts[1] != 0 || amounts[rank] != 0 || amounts[rank + 1] != 0)
        return pads;  // batch or channel padding is not convolution padding
      for (size_t i = 0; i < spatial; ++i) {
        pads[i] += static_cast<int64_t>(amounts[2 + i]);
        pads[spatial + i] += static_cast<int64_t>(amounts[rank + 2 + i]);
      }
      return pads;
    };
    const auto pads_text = [](const std::vector<int64_t>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
      return s + "]";
    };
    compare("pads", pads_text(effective_pads(na, ga)), pads_text(effective_pads(nb, gb)));
    compare("strides", ints(na, "strides", 1, spatial), ints(nb, "strides", 1, spatial));
    compare("dilations", ints(na, "dilations", 1, spatial), ints(nb, "dilations", 1, spatial));
    compare("group", number_text(float_attribute(na, "group").value_or(1)),
            number_text(float_attribute(nb, "group").value_or(1)));
    // kernel_shape may be left to the weights' shape: compared only when both say it.
    if (attribute(na, "kernel_shape") && attribute(nb, "kernel_shape"))
      compare("kernel_shape", ints(na, "kernel_shape", 0, 0), ints(nb, "kernel_shape", 0, 0));
    const auto* pad_a = attribute(na, "auto_pad");
    const auto* pad_b = attribute(nb, "auto_pad");
    compare("auto_pad", pad_a ? pad_a->s() : "NOTSET", pad_b ? pad_b->s() : "NOTSET");
  }
  if (op_a == "BatchNormalization" && op_b == "BatchNormalization")
    compare("epsilon", number_text(float_attribute(na, "epsilon").value_or(1e-5)),
            number_text(float_attribute(nb, "epsilon").value_or(1e-5)));
  if (op_a == "Clip" && op_b == "Clip") {
    // Opset 11 moved min and max from attributes to inputs; either form is read.
    const auto bound = [](const onnx::NodeProto& n, const Graph& g, const std::string& name,
                          int input, double fill) {
      if (const auto v = float_attribute(n, name)) return *v;
      if (n.input_size() > input)
        if (const auto c = g.constant(n.input(input)); c && c->values.size() == 1)
          return c->values[0];
      return fill;
    };
    compare("min", number_text(bound(na, ga, "min", 1, -INFINITY)),
            number_text(bound(nb, gb, "min", 1, -INFINITY)));
    compare("max", number_text(bound(na, ga, "max", 2, INFINITY)),
            number_text(bound(nb, gb, "max", 2, INFINITY)));
  }
  if (op_a == "Gemm" && (op_b == "Gemm" || op_b == "MatMul")) {
    // MatMul is Gemm with alpha = beta = 1 and nothing transposed.
    const auto get = [](const onnx::NodeProto& n, const std::string& name, double fill) {
      return n.op_type() == "Gemm" ? float_attribute(n, name).value_or(fill) : fill;
    };
    for (const char* name : {"alpha", "beta"})
      compare(name, number_text(get(na, name, 1)), number_text(get(nb, name, 1)));
    compare("transA", number_text(get(na, "transA", 0)), number_text(get(nb, "transA", 0)));
    // transB only has to agree with how the weights were found: a transposed copy of B must
    // flip it.
    const bool flipped = get(na, "transB", 0) != get(nb, "transB", 0);
    if (flipped != weights_transposed)
      out.emplace_back(
          "transB", number_text(get(na, "transB", 0)),
          number_text(get(nb, "transB", 0)) +
              (weights_transposed ? " (weights transposed)" : " (weights in A's order)"));
  }
}

bool is_bias_input(const onnx::NodeProto& n, int input) {
  return input == 2 &&
         (n.op_type() == "Conv" || n.op_type() == "Gemm" || n.op_type() == "ConvTranspose");
}

// The differences found for one matched pair, each carrying the pair's nodes and tensors.
struct PairFindings {
  ParameterDifference base;  // node, output, output_b
  const PairParameters& pair;
  std::vector<ParameterDifference> found;

  void add(std::string what, std::string va, std::string vb, double max_abs, std::string note,
           CauseKind kind) {
    ParameterDifference d = base;
    d.kind = std::move(kind);
    d.node_b = pair.node_b;
    d.what = std::move(what);
    d.a = std::move(va);
    d.b = std::move(vb);
    d.max_abs = max_abs;
    d.note = std::move(note);
    found.push_back(std::move(d));
  }
};

// B's main node for A's node `na`: walks back from B's producer `first_b` to the node of A's
// family, collecting the float biases of the Adds on the way into `pool`; stops at anything else,
// at a node with two computed inputs (a residual Add), or after four steps. Fills pair.chain_b.
const onnx::NodeProto* walk_to_main_node(const onnx::NodeProto& na, const onnx::NodeProto* first_b,
                                         const Graph& gb, PairParameters& pair,
                                         std::vector<Constant>& pool) {
  const onnx::NodeProto* nb = first_b;
  const onnx::NodeProto* main_b = nullptr;
  for (int step = 0; nb && step < 5; ++step) {
    pair.chain_b.push_back(node_key(*nb));
    if (share_family(na.op_type(), nb->op_type())) {
      main_b = nb;
      break;
    }
    if (!walkable(nb->op_type()) || step == 4) break;
    std::vector<std::string> computed;
    std::vector<Constant> constants;
    for (const auto& in : nb->input()) {
      if (in.empty()) continue;
      if (auto c = gb.constant(in))
        constants.push_back(std::move(*c));
      else
        computed.push_back(in);
    }
    if (computed.size() != 1) break;
    if (nb->op_type() == "Add")
      for (auto& c : constants)
        if (c.floating) pool.push_back(std::move(c));
    nb = gb.producer(computed.front());
  }
  if (!main_b) {
    // No node of A's family nearby: B's producer stands for the layer, and its op differs.
    main_b = first_b;
    pair.chain_b.assign(1, node_key(*first_b));
  }
  return main_b;
}

// Pairs each float constant of A's node `na` with the closest unused constant of B's `pool` (see
// diff_matched in model_diff.h), recording pair.tensors and the differences. Returns whether a
// constant of either side found no partner; sets transposed_weights when Gemm's weight was read
// transposed.
bool pair_constants(const onnx::NodeProto& na, const Graph& ga, const std::vector<Constant>& pool,
                    PairParameters& pair, PairFindings& f, bool& transposed_weights) {
  bool unmatched = false;
  std::vector<bool> used(pool.size(), false);
  for (int i = 0; i < na.input_size(); ++i) {
    if (na.op_type() == "Clip" && i > 0) continue;
    const auto c = ga.constant(na.input(i));
    if (!c || !c->floating) continue;
    // The closest of B's unused constants with as many elements.
    std::optional<LayoutFit> best;
    size_t chosen = 0;
    for (size_t k = 0; k < pool.size(); ++k) {
      if (used[k]) continue;
      const auto fit = best_weight_layout(c->values, c->shape, pool[k].values, pool[k].shape);
      if (fit && (!best || fit->max_abs < best->max_abs)) {
        best = fit;
        chosen = k;
      }
    }
    TensorComparison t;
    t.a = c->name;
    if (!best) {
      double largest = 0;
      for (const auto v : c->values) largest = std::max(largest, std::fabs(v));
      if (is_bias_input(na, i)) {
        // A zero bias changes nothing; a converter may drop it.
        if (largest > 0)
          f.add("bias missing in B", summary(*c), "(none)", largest,
                "B's " + pair.node_b +
                    " and the nodes between it and the matched tensor hold no constant of " +
                    std::to_string(c->values.size()) + " values: the layer loses its bias",
                classify_tensor_change(c->values, c->shape, {}, {}, false));
        if (largest > 0) f.found.back().input = i;
        t.note = largest > 0 ? "bias missing in B" : "zero bias, absent in B";
        t.max_abs = largest;
      } else {
        unmatched = true;
        f.add("weights " + c->name + " (input " + std::to_string(i) + ")", summary(*c),
              "(no constant of " + std::to_string(c->values.size()) + " values)", 0,
              "cannot be paired", classify_tensor_change(c->values, c->shape, {}, {}, false));
        f.found.back().input = i;
        t.note = "no counterpart in B";
      }
      pair.tensors.push_back(std::move(t));
      continue;
    }
    used[chosen] = true;
    const Constant& cb = pool[chosen];
    if (best->layout == "transposed" && na.op_type() == "Gemm" && i == 1) transposed_weights = true;
    t.b = cb.name;
    t.layout = best->layout;
    t.max_abs = best->max_abs;
    const size_t levels_a = distinct(c->values), levels_b = distinct(cb.values);
    if (!cb.note.empty() && cb.note.find("DequantizeLinear") != std::string::npos)
      t.note = cb.note;
    else if (best->max_abs > 0 && levels_b <= 256 && levels_a > 2 * levels_b)
      t.note = "quantised: B takes only " + std::to_string(levels_b) +
               " distinct values (A: " + std::to_string(levels_a) + ")";
    if (best->max_abs > 0) {
      // The kind is judged in B's layout, on A read the way B stores it.
      const auto perm = layout_permutation(best->layout);
      auto kind = classify_tensor_change(
          perm.empty() ? c->values : permute_values(c->values, c->shape, perm), cb.shape, cb.values,
          cb.shape);
      f.add("weights " + c->name + " ~ " + cb.name, summary(*c), summary(cb), best->max_abs,
            "layout " + best->layout + (t.note.empty() ? "" : "; " + t.note), std::move(kind));
      f.found.back().input = i;
      f.found.back().tensor_b = cb.name;
      f.found.back().layout = best->layout;
    }
    pair.tensors.push_back(std::move(t));
  }
  for (size_t k = 0; k < pool.size(); ++k) {
    if (used[k]) continue;
    const bool zero =
        std::all_of(pool[k].values.begin(), pool[k].values.end(), [](double v) { return v == 0; });
    // Converters give every Conv a bias; an all-zero one changes nothing.
    if (zero) continue;
    unmatched = true;
    f.add("constant only in B", "(none)", summary(pool[k]), 0, "no constant of A pairs with it",
          {"added", {{"values_b", pool[k].values.size()}}, "added: B has a constant A lacks"});
  }
  return unmatched;
}

}  // namespace

std::optional<ConstantView> read_constant(const onnx::ModelProto& model,
                                          const std::string& tensor) {
  const Graph graph(model);
  auto c = graph.constant(tensor);
  if (!c) return std::nullopt;
  return ConstantView{std::move(c->name), std::move(c->shape), std::move(c->values), c->floating};
}

MatchedDiff diff_matched(const fs::path& a_path, const fs::path& b_path,
                         const std::vector<std::pair<std::string, std::string>>& pairs) {
  const onnx::ModelProto a = load_onnx_model(a_path), b = load_onnx_model(b_path);
  const Graph ga(a), gb(b);
  MatchedDiff result;
  for (const auto& [tensor_a, tensor_b] : pairs) {
    const onnx::NodeProto* na = ga.producer(tensor_a);
    const onnx::NodeProto* first_b = gb.producer(tensor_b);
    if (!na) continue;  // a graph input: no parameters
    PairParameters pair;
    pair.output_a = tensor_a;
    pair.output_b = tensor_b;
    pair.node_a = node_key(*na);
    pair.op_a = na->op_type();
    PairFindings f{{}, pair, {}};
    f.base.node = pair.node_a;
    f.base.output = tensor_a;
    f.base.output_b = tensor_b;
    if (!first_b) {
      pair.status = "unmatched-parameters";
      f.add("node missing in B", na->op_type(), "(graph input)", 0, "",
            {"node-missing", {{"op", na->op_type()}}, "node-missing: B reads a graph input"});
      result.pairs.push_back(std::move(pair));
      for (auto& d : f.found) result.differences.push_back(std::move(d));
      continue;
    }
    std::vector<Constant> pool;
    const onnx::NodeProto* main_b = walk_to_main_node(*na, first_b, gb, pair, pool);
    pair.node_b = node_key(*main_b);
    pair.op_b = main_b->op_type();
    if (!share_family(na->op_type(), main_b->op_type()))
      f.add("op", na->op_type(), main_b->op_type(), 0, "the ops share no family",
            classify_op_change(na->op_type(), main_b->op_type()));
    // Clip's bounds are compared as attributes, not paired as weights.
    const bool clip_b = main_b->op_type() == "Clip";
    for (int i = 0; i < main_b->input_size(); ++i)
      if (!(clip_b && i > 0))
        if (auto c = gb.constant(main_b->input(i)); c && c->floating) pool.push_back(std::move(*c));

    bool transposed_weights = false;
    const bool unmatched = pair_constants(*na, ga, pool, pair, f, transposed_weights);
    std::vector<std::tuple<std::string, std::string, std::string>> attrs;
    diff_attributes(*na, *main_b, ga, gb, transposed_weights, attrs);
    for (auto& [name, va, vb] : attrs)
      f.add("attribute " + name, va, vb, 0, "",
            classify_attribute_change(na->op_type(), name, va, vb));
    pair.status = unmatched ? "unmatched-parameters" : f.found.empty() ? "same" : "differs";
    for (auto& d : f.found) result.differences.push_back(std::move(d));
    result.pairs.push_back(std::move(pair));
  }
  return result;
}

std::vector<std::string> nodes_inside_kernel(const onnx::GraphProto& graph,
                                             const std::string& tensor,
                                             const std::set<std::string>& boundary) {
  const OnnxGraphIndex index(graph);
  std::set<size_t> inside;
  std::vector<std::string> pending = {tensor};
  while (!pending.empty()) {
    const std::string t = std::move(pending.back());
    pending.pop_back();
    if (t != tensor && boundary.count(t)) continue;  // B materialised it: another kernel's output
    const auto producer = index.producer(t);
    if (!producer || !inside.insert(*producer).second) continue;
    for (const auto& in : index.node(*producer).input())
      if (!in.empty()) pending.push_back(in);
  }
  std::vector<std::string> keys;
  for (const size_t i : inside) keys.push_back(node_key(index.node(i)));  // set: graph order
  return keys;
}

std::vector<std::string> kernel_ops(const std::string& symbol) {
  std::string name = symbol.substr(0, symbol.find('#'));
  if (name.rfind("fused_", 0) == 0) name = name.substr(6);
  std::vector<std::string> ops;
  std::istringstream parts(name);
  for (std::string part; std::getline(parts, part, '_');) {
    // The compiler numbers variants of one operator (conv2d17, add13); conv2d's own digit is
    // followed by a letter and stays.
    while (!part.empty() && std::isdigit(static_cast<unsigned char>(part.back()))) part.pop_back();
    if (!part.empty()) ops.push_back(part);
  }
  return ops;
}

bool op_in_kernel(const std::string& onnx_op, const std::vector<std::string>& ops) {
  // The words of the names TVM's Relax frontend and legalisation give each ONNX operator's
  // computation (kernel_ops splits avg_pool2d into "avg", "pool2d").
  static const std::map<std::string, std::vector<std::string>> lowered = {
      {"Conv", {"conv1d", "conv2d", "conv3d"}},
      {"ConvTranspose", {"conv1d", "conv2d", "conv3d"}},
      {"Clip", {"clip", "maximum", "minimum"}},
      {"Relu", {"relu", "maximum"}},
      {"Gemm", {"matmul", "dense"}},
      {"MatMul", {"matmul", "dense"}},
      {"GlobalAveragePool", {"mean", "pool2d"}},
      {"GlobalMaxPool", {"max", "pool2d"}},
      {"AveragePool", {"pool1d", "pool2d", "pool3d"}},
      {"MaxPool", {"pool1d", "pool2d", "pool3d"}},
      {"Mul", {"multiply"}},
      {"Sub", {"subtract"}},
      {"Div", {"divide"}},
      {"Concat", {"concatenate"}},
      {"Transpose", {"permute"}},
      {"Flatten", {"reshape"}},
      {"BatchNormalization", {"batch", "add", "multiply"}},
      {"LeakyRelu", {"leaky"}},
  };
  std::vector<std::string> names;
  if (const auto it = lowered.find(onnx_op); it != lowered.end()) names = it->second;
  std::string lower;
  for (const char c : onnx_op)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  names.push_back(lower);
  for (const auto& op : ops)
    if (std::find(names.begin(), names.end(), op) != names.end()) return true;
  return false;
}

}  // namespace deltann
