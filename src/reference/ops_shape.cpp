// Operators that move, select or make values without arithmetic on them (Reshape, Transpose,
// Slice, Gather, Pad, Concat, Cast, ...), plus reductions and Resize.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "reference/ops.h"

namespace deltann::reference {
namespace {

// A value of `shape` whose element k is src's element index[k] (index -1: `fill`).
Value take(const Value& src, std::vector<int64_t> shape, const std::vector<int64_t>& index,
           double fill, const std::string& where) {
  Value out = make_value(src.dtype, std::move(shape), where);
  for (size_t k = 0; k < index.size(); ++k) {
    const int64_t s = index[k];
    if (out.floating())
      out.f[k] = s < 0 ? fill : src.f[static_cast<size_t>(s)];
    else
      out.i[k] = s < 0 ? static_cast<int64_t>(fill) : src.i[static_cast<size_t>(s)];
  }
  return out;
}

// Calls visit(flat_output_index, position) for every position of `shape`, in row-major order.
template <typename F>
void for_each_position(const std::vector<int64_t>& shape, F visit) {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  std::vector<int64_t> pos(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    visit(k, pos);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++pos[d] < shape[d]) break;
      pos[d] = 0;
    }
  }
}

Value with_shape(Value v, std::vector<int64_t> shape) {
  v.shape = std::move(shape);
  return v;
}

std::vector<Value> reshape(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  std::vector<int64_t> shape = ctx.opset < 5 ? ctx.attr_ints("shape") : ctx.int_values(1);
  const bool allow_zero = ctx.attr_int("allowzero", 0) != 0;
  int64_t known = 1, infer = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0 && !allow_zero) {
      // 0 copies the input's dimension.
      if (d >= x.shape.size())
        ctx.fail("shape has 0 at axis " + std::to_string(d) + " beyond the input's rank");
      shape[d] = x.shape[d];
    }
    if (shape[d] == -1) {
      if (infer >= 0) ctx.fail("shape has more than one -1");
      infer = static_cast<int64_t>(d);
    } else if (shape[d] < 0) {
      ctx.fail("shape has a negative dimension " + std::to_string(shape[d]));
    } else {
      known = shape[d] == 0
                  ? 0
                  : (known > kMaxElements / shape[d] ? kMaxElements + 1 : known * shape[d]);
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.count() % known != 0)
      ctx.fail("cannot infer -1: " + std::to_string(x.count()) + " elements into " +
               shape_text_of(shape));
    shape[static_cast<size_t>(infer)] = x.count() / known;
  }
  if (checked_count(shape, ctx.node.label()) != x.count())
    ctx.fail("cannot reshape " + shape_text_of(x.shape) + " into " + shape_text_of(shape));
  return {with_shape(x, shape)};
}

std::vector<Value> flatten(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  int64_t axis = ctx.attr_int("axis", 1);
  if (axis < -rank || axis > rank) ctx.fail("axis " + std::to_string(axis) + " out of range");
  if (axis < 0) axis += rank;
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
  return {with_shape(x, {outer, outer == 0 ? 0 : x.count() / outer})};
}

std::vector<Value> transpose(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const size_t rank = x.shape.size();
  std::vector<int64_t> perm(rank);
  std::iota(perm.rbegin(), perm.rend(), 0);  // default: reverse the axes
  perm = ctx.attr_ints("perm", perm);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t d = 0; d < sorted.size(); ++d)
    if (sorted.size() != rank || sorted[d] != static_cast<int64_t>(d))
      ctx.fail("perm " + shape_text_of(perm) + " is not a permutation of the input's axes");
  const auto in_strides = strides_of(x.shape);
  std::vector<int64_t> out_shape(rank);
  for (size_t d = 0; d < rank; ++d) out_shape[d] = x.shape[static_cast<size_t>(perm[d])];
  std::vector<int64_t> index(static_cast<size_t>(x.count()));
  for_each_position(out_shape, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t s = 0;
    for (size_t d = 0; d < rank; ++d) s += pos[d] * in_strides[static_cast<size_t>(perm[d])];
    index[static_cast<size_t>(k)] = s;
  });
  return {take(x, out_shape, index, 0, ctx.node.label())};
}

// Axes of Squeeze, Unsqueeze and the reductions: an attribute before `input_since`, an optional
// input from then on. `given` tells whether any were given.
std::vector<int64_t> axes_of(const OpContext& ctx, int64_t input_since, size_t input, bool& given) {
  if (ctx.opset < input_since) {
    given = ctx.has_attr("axes");
    return ctx.attr_ints("axes");
  }
  given = ctx.has_input(input);
  return given ? ctx.int_values(input) : std::vector<int64_t>{};
}

std::vector<Value> squeeze(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  bool given = false;
  auto axes = axes_of(ctx, 13, 1, given);
  std::vector<bool> drop(x.shape.size(), false);
  if (!given) {
    for (size_t d = 0; d < x.shape.size(); ++d) drop[d] = x.shape[d] == 1;
  } else {
    for (const int64_t a : axes) {
      const auto d = static_cast<size_t>(ctx.axis(a, rank));
      if (x.shape[d] != 1)
        ctx.fail("cannot squeeze axis " + std::to_string(a) + " of size " +
                 std::to_string(x.shape[d]));
      drop[d] = true;
    }
  }
  std::vector<int64_t> shape;
  for (size_t d = 0; d < x.shape.size(); ++d)
    if (!drop[d]) shape.push_back(x.shape[d]);
  return {with_shape(x, shape)};
}

std::vector<Value> unsqueeze(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  bool given = false;
  const auto axes = axes_of(ctx, 13, 1, given);
  if (!given) ctx.fail("axes are required");
  const auto rank = static_cast<int64_t>(x.shape.size() + axes.size());
  std::vector<bool> added(static_cast<size_t>(rank), false);
  for (const int64_t a : axes) {
    if (a < -rank || a >= rank) ctx.fail("axis " + std::to_string(a) + " out of range");
    const auto d = static_cast<size_t>(a < 0 ? a + rank : a);
    if (added[d]) ctx.fail("axis " + std::to_string(a) + " given twice");
    added[d] = true;
  }
  std::vector<int64_t> shape;
  size_t next = 0;
  for (size_t d = 0; d < added.size(); ++d) shape.push_back(added[d] ? 1 : x.shape[next++]);
  return {with_shape(x, shape)};
}

std::vector<Value> concat(const OpContext& ctx) {
  if (ctx.input_count() == 0) ctx.fail("needs at least one input");
  const Value& first = ctx.input(0);
  const auto rank = static_cast<int64_t>(first.shape.size());
  if (!ctx.has_attr("axis")) ctx.fail("attribute axis is required");
  const auto axis = static_cast<size_t>(ctx.axis(ctx.attr_int("axis", 0), rank));
  std::vector<int64_t> shape = first.shape;
  shape[axis] = 0;
  for (size_t k = 0; k < ctx.input_count(); ++k) {
    const Value& v = ctx.input(k);
    bool same = v.dtype == first.dtype && v.shape.size() == first.shape.size();
    for (size_t d = 0; same && d < v.shape.size(); ++d)
      same = d == axis || v.shape[d] == first.shape[d];
    if (!same)
      ctx.fail("input " + std::to_string(k) + " (" + dtype_name(v.dtype) + shape_text_of(v.shape) +
               ") does not match input 0 (" + dtype_name(first.dtype) + shape_text_of(first.shape) +
               ") outside axis " + std::to_string(axis));
    shape[axis] += v.shape[axis];
  }
  Value out = make_value(first.dtype, shape, ctx.node.label());
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (d < axis) outer *= shape[d];
    if (d > axis) inner *= shape[d];
  }
  int64_t offset = 0;
  const int64_t row = shape[axis] * inner;
  for (size_t k = 0; k < ctx.input_count(); ++k) {
    const Value& v = ctx.input(k);
    const int64_t chunk = v.shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      if (out.floating())
        std::copy_n(v.f.begin() + o * chunk, chunk, out.f.begin() + o * row + offset);
      else
        std::copy_n(v.i.begin() + o * chunk, chunk, out.i.begin() + o * row + offset);
    }
    offset += chunk;
  }
  return {std::move(out)};
}

// Pad in constant, reflect, edge and wrap modes. Negative pads crop.
std::vector<Value> pad(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const size_t rank = x.shape.size();
  const std::string mode = ctx.attr_string("mode", "constant");
  std::vector<int64_t> pads;
  double value = 0;
  std::vector<int64_t> axes;
  if (ctx.opset < 11) {
    pads = ctx.attr_ints(ctx.opset < 2 ? "paddings" : "pads");
    value = ctx.attr_float("value", 0.0);
  } else {
    pads = ctx.int_values(1);
    if (ctx.has_input(2) && ctx.input(2).count() > 0) value = ctx.scalar(2);
    if (ctx.has_input(3)) axes = ctx.int_values(3);
  }
  if (axes.empty()) {
    axes.resize(rank);
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (pads.size() != 2 * axes.size())
    ctx.fail("pads has " + std::to_string(pads.size()) + " values for " +
             std::to_string(axes.size()) + " axes");
  std::vector<int64_t> begin(rank, 0), end(rank, 0);
  for (size_t k = 0; k < axes.size(); ++k) {
    const auto d = static_cast<size_t>(ctx.axis(axes[k], static_cast<int64_t>(rank)));
    begin[d] = pads[k];
    end[d] = pads[k + axes.size()];
  }
  std::vector<int64_t> shape(rank);
  const int64_t limit = int64_t{1} << 31;
  for (size_t d = 0; d < rank; ++d) {
    if (std::abs(begin[d]) > limit || std::abs(end[d]) > limit) ctx.fail("pads out of range");
    shape[d] = x.shape[d] + begin[d] + end[d];
    if (shape[d] < 0) ctx.fail("pads crop axis " + std::to_string(d) + " below zero");
    if (mode != "constant" && x.shape[d] == 0 && shape[d] > 0)
      ctx.fail("cannot pad an empty axis in mode " + mode);
  }
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    ctx.fail("mode '" + mode + "' is not constant, reflect, edge or wrap");
  const auto in_strides = strides_of(x.shape);
  std::vector<int64_t> index(static_cast<size_t>(checked_count(shape, ctx.node.label())));
  for_each_position(shape, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t s = 0;
    for (size_t d = 0; d < rank; ++d) {
      int64_t j = pos[d] - begin[d];
      const int64_t n = x.shape[d];
      if (j < 0 || j >= n) {
        if (mode == "constant") {
          s = -1;
          break;
        }
        if (mode == "edge") {
          j = std::clamp<int64_t>(j, 0, n - 1);
        } else if (mode == "wrap") {
          j = ((j % n) + n) % n;
        } else if (n == 1) {
          j = 0;  // reflecting a single element repeats it
        } else {
          const int64_t period = 2 * (n - 1);  // reflect: mirror about the first and last values
          j = ((j % period) + period) % period;
          if (j >= n) j = period - j;
        }
      }
      s += j * in_strides[d];
    }
    index[static_cast<size_t>(k)] = s;
  });
  return {take(x, shape, index, value, ctx.node.label())};
}

std::vector<Value> constant(const OpContext& ctx) {
  if (const Value* t = ctx.attr_tensor("value")) return {*t};
  Value v;
  if (ctx.has_attr("value_float")) {
    v.dtype = DType::Float;
    v.f = {ctx.attr_float("value_float", 0)};
  } else if (ctx.has_attr("value_floats")) {
    v.dtype = DType::Float;
    v.f = ctx.attr_floats("value_floats");
    v.shape = {static_cast<int64_t>(v.f.size())};
  } else if (ctx.has_attr("value_int")) {
    v.dtype = DType::Int64;
    v.i = {ctx.attr_int("value_int", 0)};
  } else if (ctx.has_attr("value_ints")) {
    v.dtype = DType::Int64;
    v.i = ctx.attr_ints("value_ints");
    v.shape = {static_cast<int64_t>(v.i.size())};
  } else {
    ctx.unsupported("a Constant without value, value_float(s) or value_int(s) (sparse or string)");
  }
  return {std::move(v)};
}

std::vector<Value> shape_op(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  // start and end (opset 15) clamp into [0, rank], negative values counting from the end.
  auto clamp = [rank](int64_t a) { return std::clamp<int64_t>(a < 0 ? a + rank : a, 0, rank); };
  const int64_t start = clamp(ctx.attr_int("start", 0));
  const int64_t end = clamp(ctx.attr_int("end", rank));
  Value out;
  out.dtype = DType::Int64;
  if (end > start) out.i.assign(x.shape.begin() + start, x.shape.begin() + end);
  out.shape = {static_cast<int64_t>(out.i.size())};
  return {std::move(out)};
}

std::vector<Value> gather(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const std::vector<int64_t> indices = ctx.int_values(1);
  const auto& ishape = ctx.input(1).shape;
  const auto rank = static_cast<int64_t>(x.shape.size());
  if (rank == 0) ctx.fail("cannot gather from a scalar");
  const auto axis = static_cast<size_t>(ctx.axis(ctx.attr_int("axis", 0), rank));
  const int64_t n = x.shape[axis];
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    if (d < axis) outer *= x.shape[d];
    if (d > axis) inner *= x.shape[d];
  }
  std::vector<int64_t> shape(x.shape.begin(), x.shape.begin() + static_cast<int64_t>(axis));
  shape.insert(shape.end(), ishape.begin(), ishape.end());
  shape.insert(shape.end(), x.shape.begin() + static_cast<int64_t>(axis) + 1, x.shape.end());
  std::vector<int64_t> index(static_cast<size_t>(checked_count(shape, ctx.node.label())));
  size_t k = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j : indices) {
      if (j < -n || j >= n)
        ctx.fail("index " + std::to_string(j) + " is out of range for axis of size " +
                 std::to_string(n));
      if (j < 0) j += n;
      for (int64_t i = 0; i < inner; ++i) index[k++] = (o * n + j) * inner + i;
    }
  return {take(x, shape, index, 0, ctx.node.label())};
}

std::vector<Value> slice(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset < 10) {
    starts = ctx.attr_ints("starts");
    ends = ctx.attr_ints("ends");
    axes = ctx.attr_ints("axes");
  } else {
    starts = ctx.int_values(1);
    ends = ctx.int_values(2);
    if (ctx.has_input(3)) axes = ctx.int_values(3);
    if (ctx.has_input(4)) steps = ctx.int_values(4);
  }
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    ctx.fail("starts, ends, axes and steps must have the same length");
  std::vector<int64_t> begin(x.shape.size(), 0), step(x.shape.size(), 1), shape = x.shape;
  std::vector<bool> seen(x.shape.size(), false);
  for (size_t k = 0; k < starts.size(); ++k) {
    const auto d = static_cast<size_t>(ctx.axis(axes[k], rank));
    if (seen[d]) ctx.fail("axis " + std::to_string(axes[k]) + " given twice");
    seen[d] = true;
    const int64_t n = x.shape[d], s = steps[k];
    if (s == 0) ctx.fail("step 0");
    // Clamp as the operator defines, in a range that cannot overflow (INT64_MAX is common).
    int64_t b = std::clamp<int64_t>(starts[k], -n - 1, n + 1);
    int64_t e = std::clamp<int64_t>(ends[k], -n - 1, n + 1);
    if (b < 0) b += n;
    if (e < 0) e += n;
    if (s > 0) {
      b = std::clamp<int64_t>(b, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      shape[d] = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      shape[d] = b > e ? (b - e + (-s) - 1) / (-s) : 0;
    }
    begin[d] = b;
    step[d] = s;
  }
  const auto in_strides = strides_of(x.shape);
  std::vector<int64_t> index(static_cast<size_t>(checked_count(shape, ctx.node.label())));
  for_each_position(shape, [&](int64_t k, const std::vector<int64_t>& pos) {
    int64_t s = 0;
    for (size_t d = 0; d < pos.size(); ++d) s += (begin[d] + pos[d] * step[d]) * in_strides[d];
    index[static_cast<size_t>(k)] = s;
  });
  return {take(x, shape, index, 0, ctx.node.label())};
}

// Converts one element to the integer type `to`, as a C cast of the value would (float to int
// truncates toward zero); out-of-range floats are refused rather than be undefined.
int64_t to_integer(const OpContext& ctx, double v, DType to) {
  if (to == DType::Bool) return v != 0;
  if (std::isnan(v) || v >= 9.2e18 || v <= -9.2e18)
    ctx.fail("value " + std::to_string(v) + " cannot be cast to " + dtype_name(to));
  return static_cast<int64_t>(std::trunc(v));
}

int64_t wrap_integer(int64_t x, DType to) {
  switch (to) {
    case DType::Int32:
      return static_cast<int32_t>(static_cast<uint32_t>(x));
    case DType::Uint32:
      return static_cast<uint32_t>(x);
    case DType::Int16:
      return static_cast<int16_t>(static_cast<uint16_t>(x));
    case DType::Uint16:
      return static_cast<uint16_t>(x);
    case DType::Int8:
      return static_cast<int8_t>(static_cast<uint8_t>(x));
    case DType::Uint8:
      return static_cast<uint8_t>(x);
    case DType::Bool:
      return x != 0;
    default:
      return x;
  }
}

std::vector<Value> cast(const OpContext& ctx) {
  const Value& x = ctx.input(0);
  if (!ctx.has_attr("to")) ctx.fail("attribute 'to' is required");
  const int64_t to_code = ctx.attr_int("to", 0);
  switch (static_cast<DType>(to_code)) {
    case DType::Float:
    case DType::Double:
    case DType::Int64:
    case DType::Int32:
    case DType::Int16:
    case DType::Int8:
    case DType::Uint8:
    case DType::Uint16:
    case DType::Uint32:
    case DType::Bool:
      break;
    default:
      ctx.unsupported("cast to element type " + std::to_string(to_code));
  }
  const auto to = static_cast<DType>(to_code);
  Value out = make_value(to, x.shape, ctx.node.label());
  const size_t n = static_cast<size_t>(x.count());
  for (size_t k = 0; k < n; ++k) {
    if (out.floating()) {
      double v = x.floating() ? x.f[k] : static_cast<double>(x.i[k]);
      // Casting to float32 rounds: that is the operator's meaning, even in a float64 executor.
      if (to == DType::Float) v = static_cast<double>(static_cast<float>(v));
      out.f[k] = v;
    } else {
      out.i[k] =
          x.floating() ? wrap_integer(to_integer(ctx, x.f[k], to), to) : wrap_integer(x.i[k], to);
    }
  }
  return {std::move(out)};
}

std::vector<Value> constant_of_shape(const OpContext& ctx) {
  std::vector<int64_t> shape = ctx.int_values(0);
  Value fill;
  fill.dtype = DType::Float;
  fill.f = {0.0};
  if (const Value* t = ctx.attr_tensor("value")) {
    if (t->count() != 1) ctx.fail("attribute value must hold one element");
    fill = *t;
  }
  Value out = make_value(fill.dtype, shape, ctx.node.label());
  if (out.floating())
    std::fill(out.f.begin(), out.f.end(), fill.f[0]);
  else
    std::fill(out.i.begin(), out.i.end(), fill.i[0]);
  return {std::move(out)};
}

// ReduceMean, ReduceSum, ReduceMax, ReduceMin. Axes are an attribute until ReduceSum's opset 13
// and the others' opset 18, then an optional input; no axes means all, unless
// noop_with_empty_axes says identity.
template <int Kind>  // 0 mean, 1 sum, 2 max, 3 min
std::vector<Value> reduce(const OpContext& ctx) {
  const Value& x = ctx.real_input(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  bool given = false;
  const auto axes = axes_of(ctx, Kind == 1 ? 13 : 18, 1, given);
  const bool keep = ctx.attr_int("keepdims", 1) != 0;
  if (axes.empty() && ctx.attr_int("noop_with_empty_axes", 0) != 0) return {x};
  std::vector<bool> reduced(x.shape.size(), axes.empty());
  for (const int64_t a : axes) reduced[static_cast<size_t>(ctx.axis(a, rank))] = true;
  std::vector<int64_t> kept_shape, out_shape;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    kept_shape.push_back(reduced[d] ? 1 : x.shape[d]);
    if (!reduced[d] || keep) out_shape.push_back(kept_shape.back());
  }
  Value out = make_value(x.dtype, kept_shape, ctx.node.label());
  const double start = Kind == 2   ? -std::numeric_limits<double>::infinity()
                       : Kind == 3 ? std::numeric_limits<double>::infinity()
                                   : 0.0;
  std::fill(out.f.begin(), out.f.end(), start);
  const auto target = broadcast_index(kept_shape, x.shape);  // where each element goes
  for (size_t k = 0; k < target.size(); ++k) {
    double& acc = out.f[static_cast<size_t>(target[k])];
    if (Kind <= 1)
      acc += x.f[k];
    else if (Kind == 2)
      acc = std::max(acc, x.f[k]);
    else
      acc = std::min(acc, x.f[k]);
  }
  if (Kind == 0 && out.count() > 0) {
    const double n = static_cast<double>(x.count()) / static_cast<double>(out.count());
    for (double& v : out.f) v /= n;
  }
  out.shape = out_shape;
  return {std::move(out)};
}

// Resize (opset 10 to 19) and Upsample (7 to 9): nearest and (n-)linear modes. Kept as one
// function (some 125 lines): it follows the ONNX operator description step by step (inputs by
// opset, attributes, output size, coordinate transform, sampling), which is how it is checked
// against the specification and the node tests.
std::vector<Value> resize_impl(const OpContext& ctx, bool upsample) {
  const Value& x = ctx.real_input(0);
  const size_t rank = x.shape.size();
  const std::string mode = ctx.attr_string("mode", "nearest");
  if (mode != "nearest" && mode != "linear" && mode != "bilinear")
    ctx.unsupported("mode '" + mode + "'");
  if (ctx.attr_int("antialias", 0) != 0) ctx.unsupported("antialias = 1");
  if (ctx.has_attr("axes")) ctx.unsupported("the axes attribute");
  if (ctx.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    ctx.unsupported("keep_aspect_ratio_policy other than stretch");
  // Before Resize-11 the coordinates are asymmetric; nearest rounds down when enlarging.
  const bool legacy = upsample || ctx.opset < 11;
  std::string coord =
      legacy ? "asymmetric" : ctx.attr_string("coordinate_transformation_mode", "half_pixel");
  std::string nearest = legacy ? "legacy" : ctx.attr_string("nearest_mode", "round_prefer_floor");
  if (coord == "tf_crop_and_resize") ctx.unsupported("coordinate mode tf_crop_and_resize");
  std::vector<double> scales;
  std::vector<int64_t> sizes;
  if (upsample && ctx.opset < 9) {
    scales = ctx.attr_floats("scales");
  } else if (legacy) {
    scales = ctx.real_input(1).f;
  } else {
    if (ctx.has_input(2) && ctx.input(2).count() > 0) scales = ctx.real_input(2).f;
    if (ctx.has_input(3) && ctx.input(3).count() > 0) sizes = ctx.int_values(3);
  }
  if (scales.empty() == sizes.empty()) ctx.fail("exactly one of scales and sizes must be given");
  if ((!scales.empty() && scales.size() != rank) || (!sizes.empty() && sizes.size() != rank))
    ctx.fail("scales or sizes must have one value per axis (" + std::to_string(rank) + ")");
  std::vector<int64_t> shape(rank);
  std::vector<double> scale(rank);
  for (size_t d = 0; d < rank; ++d) {
    if (!scales.empty()) {
      if (!(scales[d] > 0) || scales[d] > 1e6) ctx.fail("scale must be positive and finite");
      scale[d] = scales[d];
      shape[d] = static_cast<int64_t>(std::floor(static_cast<double>(x.shape[d]) * scale[d]));
    } else {
      shape[d] = sizes[d];
      if (shape[d] < 0) ctx.fail("negative size");
      scale[d] =
          x.shape[d] == 0 ? 1.0 : static_cast<double>(shape[d]) / static_cast<double>(x.shape[d]);
    }
  }
  // For every axis and output coordinate, the two input indices and the weight of the second.
  struct Tap {
    int64_t i0, i1;
    double w1;
  };
  std::vector<std::vector<Tap>> taps(rank);
  for (size_t d = 0; d < rank; ++d) {
    const int64_t in = x.shape[d], out = shape[d];
    for (int64_t o = 0; o < out; ++o) {
      double c = 0;
      const double od = static_cast<double>(o);
      // The resized length before rounding to an integer (the operator's length_resized).
      const double len = static_cast<double>(in) * scale[d];
      if (coord == "asymmetric") {
        c = od / scale[d];
      } else if (coord == "half_pixel") {
        c = (od + 0.5) / scale[d] - 0.5;
      } else if (coord == "pytorch_half_pixel") {
        c = len > 1 ? (od + 0.5) / scale[d] - 0.5 : 0.0;
      } else if (coord == "align_corners") {
        c = len > 1 ? od * static_cast<double>(in - 1) / (len - 1) : 0.0;
      } else if (coord == "tf_half_pixel_for_nn") {
        c = (od + 0.5) / scale[d];
      } else if (coord == "half_pixel_symmetric") {
        const double adj = static_cast<double>(out) / (scale[d] * static_cast<double>(in));
        const double center = static_cast<double>(in) / 2.0;
        c = center * (1 - adj) + (od + 0.5) / scale[d] - 0.5;
      } else {
        ctx.fail("coordinate_transformation_mode '" + coord + "' is unknown");
      }
      Tap t{0, 0, 0.0};
      if (mode == "nearest") {
        double r = 0;
        if (nearest == "legacy") {
          r = scale[d] < 1 ? std::ceil(c) : std::floor(c);
        } else if (nearest == "round_prefer_floor") {
          r = c - std::floor(c) == 0.5 ? std::floor(c) : std::round(c);
        } else if (nearest == "round_prefer_ceil") {
          r = std::round(c);  // std::round sends halves away from zero; c >= -0.5 here
          if (c - std::floor(c) == 0.5) r = std::ceil(c);
        } else if (nearest == "floor") {
          r = std::floor(c);
        } else if (nearest == "ceil") {
          r = std::ceil(c);
        } else {
          ctx.fail("nearest_mode '" + nearest + "' is unknown");
        }
        t.i0 = t.i1 = std::clamp<int64_t>(static_cast<int64_t>(r), 0, in - 1);
      } else {
        c = std::clamp(c, 0.0, static_cast<double>(in - 1));
        t.i0 = static_cast<int64_t>(std::floor(c));
        t.i1 = std::min(t.i0 + 1, in - 1);
        t.w1 = c - static_cast<double>(t.i0);
      }
      taps[d].push_back(t);
    }
  }
  Value out = make_value(x.dtype, shape, ctx.node.label());
  if (x.count() == 0) return {std::move(out)};
  const auto in_strides = strides_of(x.shape);
  for_each_position(shape, [&](int64_t k, const std::vector<int64_t>& pos) {
    // Sum over the 2^rank corners; axes whose two taps coincide contribute weight 1 once.
    double acc = 0;
    for (uint32_t corner = 0; corner < (1u << rank); ++corner) {
      double w = 1;
      int64_t s = 0;
      for (size_t d = 0; d < rank && w != 0; ++d) {
        const Tap& t = taps[d][static_cast<size_t>(pos[d])];
        const bool second = (corner >> d) & 1u;
        if (t.i0 == t.i1) {
          if (second) w = 0;
          s += t.i0 * in_strides[d];
        } else {
          w *= second ? t.w1 : 1 - t.w1;
          s += (second ? t.i1 : t.i0) * in_strides[d];
        }
      }
      if (w != 0) acc += w * x.f[static_cast<size_t>(s)];
    }
    out.f[static_cast<size_t>(k)] = acc;
  });
  return {std::move(out)};
}

std::vector<Value> resize(const OpContext& ctx) { return resize_impl(ctx, false); }
std::vector<Value> upsample(const OpContext& ctx) { return resize_impl(ctx, true); }

}  // namespace

void register_shape_ops(std::map<std::string, OpFn>& table) {
  table["Reshape"] = reshape;
  table["Flatten"] = flatten;
  table["Transpose"] = transpose;
  table["Squeeze"] = squeeze;
  table["Unsqueeze"] = unsqueeze;
  table["Concat"] = concat;
  table["Pad"] = pad;
  table["Constant"] = constant;
  table["Shape"] = shape_op;
  table["Gather"] = gather;
  table["Slice"] = slice;
  table["Cast"] = cast;
  table["ConstantOfShape"] = constant_of_shape;
  table["ReduceMean"] = reduce<0>;
  table["ReduceSum"] = reduce<1>;
  table["ReduceMax"] = reduce<2>;
  table["ReduceMin"] = reduce<3>;
  table["Resize"] = resize;
  table["Upsample"] = upsample;
}

}  // namespace deltann::reference
