// Element-wise operators: activations (one input) and numpy-broadcast arithmetic (two inputs).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "reference/ops.h"

namespace deltann::reference {
namespace {

// Applies `f` to every element of input 0 (floating point only), keeping its type and shape.
template <typename F>
std::vector<Value> unary(const OpContext& ctx, F f) {
  Value out = ctx.real_input(0);
  for (double& x : out.f) x = f(x);
  return {std::move(out)};
}

std::vector<Value> relu(const OpContext& ctx) {
  return unary(ctx, [](double x) { return x > 0 ? x : 0.0; });
}
std::vector<Value> sigmoid(const OpContext& ctx) {
  return unary(ctx, [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
}
std::vector<Value> tanh_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::tanh(x); });
}
std::vector<Value> neg(const OpContext& ctx) {
  return unary(ctx, [](double x) { return -x; });
}
std::vector<Value> abs_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::fabs(x); });
}
std::vector<Value> exp_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::exp(x); });
}
std::vector<Value> log_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::log(x); });
}
std::vector<Value> sqrt_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::sqrt(x); });
}
std::vector<Value> reciprocal(const OpContext& ctx) {
  return unary(ctx, [](double x) { return 1.0 / x; });
}
std::vector<Value> erf_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::erf(x); });
}
std::vector<Value> floor_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::floor(x); });
}
std::vector<Value> ceil_op(const OpContext& ctx) {
  return unary(ctx, [](double x) { return std::ceil(x); });
}

std::vector<Value> leaky_relu(const OpContext& ctx) {
  const double alpha = ctx.attr_float("alpha", 0.01);
  return unary(ctx, [alpha](double x) { return x >= 0 ? x : alpha * x; });
}

std::vector<Value> elu(const OpContext& ctx) {
  const double alpha = ctx.attr_float("alpha", 1.0);
  return unary(ctx, [alpha](double x) { return x >= 0 ? x : alpha * (std::exp(x) - 1.0); });
}

std::vector<Value> hard_sigmoid(const OpContext& ctx) {
  const double alpha = ctx.attr_float("alpha", 0.2);
  const double beta = ctx.attr_float("beta", 0.5);
  return unary(ctx, [=](double x) { return std::clamp(alpha * x + beta, 0.0, 1.0); });
}

// HardSwish is x * HardSigmoid(x) with alpha 1/6 and beta 0.5 (the operator's definition).
std::vector<Value> hard_swish(const OpContext& ctx) {
  return unary(ctx, [](double x) { return x * std::clamp(x / 6.0 + 0.5, 0.0, 1.0); });
}

// Clip: bounds are attributes before opset 11 and optional scalar inputs from 11 on. An absent
// bound is no bound. Integer tensors are clipped too (test models clip int64 shape values).
std::vector<Value> clip(const OpContext& ctx) {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  if (ctx.opset < 11) {
    lo = ctx.attr_float("min", lo);
    hi = ctx.attr_float("max", hi);
  } else {
    if (ctx.has_input(1)) lo = ctx.scalar(1);
    if (ctx.has_input(2)) hi = ctx.scalar(2);
  }
  Value out = ctx.input(0);
  // min > max: the operator defines the result as max everywhere; std::min(std::max()) gives it.
  if (out.floating()) {
    for (double& x : out.f) x = std::min(std::max(x, lo), hi);
  } else {
    for (int64_t& x : out.i) {
      const double c = std::min(std::max(static_cast<double>(x), lo), hi);
      x = static_cast<int64_t>(c);
    }
  }
  return {std::move(out)};
}

// Dropout at inference is the identity; the optional mask output is all true. Training mode
// would need the operator's random generator, which the reference cannot reproduce.
std::vector<Value> dropout(const OpContext& ctx) {
  if (ctx.attr_int("is_test", 1) == 0 && ctx.opset < 7) ctx.unsupported("training mode");
  if (ctx.has_input(2) && ctx.scalar(2) != 0) ctx.unsupported("training_mode = true");
  Value out = ctx.input(0);
  Value mask = make_value(DType::Bool, out.shape, ctx.node.label());
  std::fill(mask.i.begin(), mask.i.end(), 1);
  return {std::move(out), std::move(mask)};
}

std::vector<Value> identity(const OpContext& ctx) { return {ctx.input(0)}; }

// Two-input arithmetic with numpy broadcasting. Both inputs must have the same type (ONNX's
// rule); floats are computed in double, integers in int64 with C semantics for division.
template <typename FloatOp, typename IntOp>
std::vector<Value> binary(const OpContext& ctx, FloatOp fop, IntOp iop) {
  if (ctx.has_attr("broadcast") || ctx.has_attr("axis"))
    ctx.unsupported("the pre-opset-7 'broadcast'/'axis' attributes");
  const Value& a = ctx.input(0);
  const Value& b = ctx.input(1);
  if (a.dtype != b.dtype)
    ctx.fail("inputs have different types (" + dtype_name(a.dtype) + " and " + dtype_name(b.dtype) +
             ")");
  Value out = make_value(a.dtype, broadcast_shape(ctx, a.shape, b.shape), ctx.node.label());
  const auto ia = broadcast_index(a.shape, out.shape);
  const auto ib = broadcast_index(b.shape, out.shape);
  const size_t n = ia.size();
  if (out.floating()) {
    for (size_t k = 0; k < n; ++k)
      out.f[k] = fop(a.f[static_cast<size_t>(ia[k])], b.f[static_cast<size_t>(ib[k])]);
  } else {
    if (a.dtype == DType::Bool) ctx.unsupported("arithmetic on bool tensors");
    for (size_t k = 0; k < n; ++k)
      out.i[k] = iop(ctx, a.i[static_cast<size_t>(ia[k])], b.i[static_cast<size_t>(ib[k])]);
    // Narrow integer types wrap as the model's type would (uint8 255 + 1 is 0).
    if (out.dtype != DType::Int64) {
      for (int64_t& x : out.i) {
        switch (out.dtype) {
          case DType::Int32:
            x = static_cast<int32_t>(static_cast<uint32_t>(x));
            break;
          case DType::Uint32:
            x = static_cast<uint32_t>(x);
            break;
          case DType::Int16:
            x = static_cast<int16_t>(static_cast<uint16_t>(x));
            break;
          case DType::Uint16:
            x = static_cast<uint16_t>(x);
            break;
          case DType::Int8:
            x = static_cast<int8_t>(static_cast<uint8_t>(x));
            break;
          case DType::Uint8:
            x = static_cast<uint8_t>(x);
            break;
          default:
            break;
        }
      }
    }
  }
  return {std::move(out)};
}

// Integer arithmetic through unsigned values, so that overflow wraps instead of being undefined.
int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

std::vector<Value> add(const OpContext& ctx) {
  return binary(
      ctx, [](double a, double b) { return a + b; },
      [](const OpContext&, int64_t a, int64_t b) { return wrap_add(a, b); });
}
std::vector<Value> sub(const OpContext& ctx) {
  return binary(
      ctx, [](double a, double b) { return a - b; },
      [](const OpContext&, int64_t a, int64_t b) { return wrap_sub(a, b); });
}
std::vector<Value> mul(const OpContext& ctx) {
  return binary(
      ctx, [](double a, double b) { return a * b; },
      [](const OpContext&, int64_t a, int64_t b) { return wrap_mul(a, b); });
}
std::vector<Value> div(const OpContext& ctx) {
  return binary(
      ctx, [](double a, double b) { return a / b; },
      [](const OpContext& c, int64_t a, int64_t b) {
        if (b == 0) c.fail("integer division by zero");
        if (a == std::numeric_limits<int64_t>::min() && b == -1) return a;  // would overflow
        return a / b;
      });
}
std::vector<Value> pow_op(const OpContext& ctx) {
  const Value& a = ctx.input(0);
  const Value& b = ctx.input(1);
  if (!a.floating() || !b.floating()) ctx.unsupported("Pow on integer tensors");
  // Pow allows different types for base and exponent; the result has the base's type.
  Value out = make_value(a.dtype, broadcast_shape(ctx, a.shape, b.shape), ctx.node.label());
  const auto ia = broadcast_index(a.shape, out.shape);
  const auto ib = broadcast_index(b.shape, out.shape);
  for (size_t k = 0; k < ia.size(); ++k)
    out.f[k] = std::pow(a.f[static_cast<size_t>(ia[k])], b.f[static_cast<size_t>(ib[k])]);
  return {std::move(out)};
}

}  // namespace

void register_elementwise_ops(std::map<std::string, OpFn>& table) {
  table["Relu"] = relu;
  table["Sigmoid"] = sigmoid;
  table["Tanh"] = tanh_op;
  table["Neg"] = neg;
  table["Abs"] = abs_op;
  table["Exp"] = exp_op;
  table["Log"] = log_op;
  table["Sqrt"] = sqrt_op;
  table["Reciprocal"] = reciprocal;
  table["Erf"] = erf_op;
  table["Floor"] = floor_op;
  table["Ceil"] = ceil_op;
  table["LeakyRelu"] = leaky_relu;
  table["Elu"] = elu;
  table["HardSigmoid"] = hard_sigmoid;
  table["HardSwish"] = hard_swish;
  table["Clip"] = clip;
  table["Dropout"] = dropout;
  table["Identity"] = identity;
  table["Add"] = add;
  table["Sub"] = sub;
  table["Mul"] = mul;
  table["Div"] = div;
  table["Pow"] = pow_op;
}

}  // namespace deltann::reference
