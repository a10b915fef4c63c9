// What every operator shares: attribute and input access with checks, broadcasting, the table.
#include <algorithm>
#include <cmath>

#include "reference/ops.h"

namespace deltann::reference {

void OpContext::fail(const std::string& message) const {
  throw Error(node.label() + ": " + message);
}

void OpContext::unsupported(const std::string& message) const {
  throw Unsupported(node.label() + ": " + message + " (not supported by the reference executor)");
}

const Value& OpContext::input(size_t k) const {
  if (!has_input(k)) fail("input " + std::to_string(k) + " is required but missing");
  return *inputs[k];
}

const Value& OpContext::real_input(size_t k) const {
  const Value& v = input(k);
  if (!v.floating())
    unsupported("input " + std::to_string(k) + " is " + dtype_name(v.dtype) +
                "; this operator is implemented for float32/float64 only");
  return v;
}

bool OpContext::has_attr(const std::string& name) const { return node.attributes.count(name) > 0; }

namespace {
const Attribute* find_attr(const OpContext& ctx, const std::string& name, Attribute::Kind kind,
                           const char* kind_name) {
  const auto it = ctx.node.attributes.find(name);
  if (it == ctx.node.attributes.end()) return nullptr;
  if (it->second.kind != kind) ctx.fail("attribute '" + name + "' must be " + kind_name);
  return &it->second;
}
}  // namespace

int64_t OpContext::attr_int(const std::string& name, int64_t fallback) const {
  const Attribute* a = find_attr(*this, name, Attribute::Kind::Int, "an int");
  return a ? a->i : fallback;
}

double OpContext::attr_float(const std::string& name, double fallback) const {
  const Attribute* a = find_attr(*this, name, Attribute::Kind::Float, "a float");
  return a ? a->f : fallback;
}

std::string OpContext::attr_string(const std::string& name, const std::string& fallback) const {
  const Attribute* a = find_attr(*this, name, Attribute::Kind::String, "a string");
  return a ? a->s : fallback;
}

std::vector<int64_t> OpContext::attr_ints(const std::string& name,
                                          const std::vector<int64_t>& fallback) const {
  const Attribute* a = find_attr(*this, name, Attribute::Kind::Ints, "a list of ints");
  return a ? a->ints : fallback;
}

std::vector<double> OpContext::attr_floats(const std::string& name) const {
  const Attribute* a = find_attr(*this, name, Attribute::Kind::Floats, "a list of floats");
  return a ? a->floats : std::vector<double>{};
}

const Value* OpContext::attr_tensor(const std::string& name) const {
  const Attribute* a = find_attr(*this, name, Attribute::Kind::Tensor, "a tensor");
  return a ? &a->t : nullptr;
}

std::vector<int64_t> OpContext::int_values(size_t k) const {
  const Value& v = input(k);
  if (v.floating() || v.dtype == DType::Bool)
    fail("input " + std::to_string(k) + " must be an integer tensor, not " + dtype_name(v.dtype));
  return v.i;
}

double OpContext::scalar(size_t k) const {
  const Value& v = input(k);
  if (v.count() != 1)
    fail("input " + std::to_string(k) + " must hold one value, not shape " +
         shape_text_of(v.shape));
  return v.floating() ? v.f[0] : static_cast<double>(v.i[0]);
}

int64_t OpContext::axis(int64_t a, int64_t rank) const {
  if (a < -rank || a >= std::max<int64_t>(rank, 1))
    fail("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
  return a < 0 ? a + rank : a;
}

Value make_value(DType dtype, std::vector<int64_t> shape, const std::string& where) {
  Value v;
  v.dtype = dtype;
  const auto n = static_cast<size_t>(checked_count(shape, where));
  v.shape = std::move(shape);
  if (v.floating())
    v.f.assign(n, 0.0);
  else
    v.i.assign(n, 0);
  return v;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
  return s;
}

std::vector<int64_t> broadcast_shape(const OpContext& ctx, const std::vector<int64_t>& a,
                                     const std::vector<int64_t>& b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t d = 0; d < rank; ++d) {
    // Align from the right, as numpy does.
    const int64_t x = d + a.size() >= rank ? a[d + a.size() - rank] : 1;
    const int64_t y = d + b.size() >= rank ? b[d + b.size() - rank] : 1;
    if (x != y && x != 1 && y != 1)
      ctx.fail("shapes " + shape_text_of(a) + " and " + shape_text_of(b) + " do not broadcast");
    out[d] = x == 1 ? y : x;
  }
  return out;
}

std::vector<int64_t> broadcast_index(const std::vector<int64_t>& in_shape,
                                     const std::vector<int64_t>& out_shape) {
  const size_t rank = out_shape.size();
  // Strides of the input seen with the output's rank; 0 along broadcast dimensions.
  std::vector<int64_t> in_strides(rank, 0);
  const auto s = strides_of(in_shape);
  for (size_t d = 0; d < in_shape.size(); ++d)
    if (in_shape[d] != 1) in_strides[d + rank - in_shape.size()] = s[d];
  int64_t n = 1;
  for (const int64_t d : out_shape) n *= d;
  std::vector<int64_t> index(static_cast<size_t>(n));
  std::vector<int64_t> pos(rank, 0);
  int64_t flat = 0;
  for (int64_t k = 0; k < n; ++k) {
    index[static_cast<size_t>(k)] = flat;
    // Odometer increment, keeping the flat input offset in step.
    for (size_t d = rank; d-- > 0;) {
      if (++pos[d] < out_shape[d]) {
        flat += in_strides[d];
        break;
      }
      flat -= in_strides[d] * (pos[d] - 1);
      pos[d] = 0;
    }
  }
  return index;
}

const std::map<std::string, OpFn>& op_table() {
  static const std::map<std::string, OpFn> table = [] {
    std::map<std::string, OpFn> t;
    register_elementwise_ops(t);
    register_nn_ops(t);
    register_shape_ops(t);
    return t;
  }();
  return table;
}

std::vector<std::string> supported_ops() {
  std::vector<std::string> ops;
  for (const auto& [name, fn] : op_table()) ops.push_back(name);
  return ops;
}

}  // namespace deltann::reference
