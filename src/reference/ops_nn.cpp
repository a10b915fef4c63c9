// Neural-network operators: convolution, pooling, normalisation, matrix products, softmax.
//
// Convolution and pooling handle one or two spatial dimensions (a 1-D tensor is run as 2-D with
// height 1); image models need no more, and a 3-D model is refused as Unsupported.
#include <algorithm>
#include <cmath>
#include <limits>

#include "reference/ops.h"

namespace deltann::reference {
namespace {

// The geometry of one spatial axis of a sliding window.
struct Axis {
  int64_t in = 1, kernel = 1, stride = 1, dilation = 1, pad_begin = 0, pad_end = 0, out = 1;
};

// Reads kernel_shape (or takes `kernel` from the weights), strides, dilations, pads and auto_pad,
// and computes the output size of every spatial axis, following the operators' formulas.
// `ceil_mode` is the pooling attribute (false for convolution).
std::vector<Axis> window_axes(const OpContext& ctx, const std::vector<int64_t>& in_spatial,
                              std::vector<int64_t> kernel, bool ceil_mode) {
  const size_t r = in_spatial.size();
  if (r == 0 || r > 2)
    ctx.unsupported(std::to_string(r) + " spatial dimensions (only 1 and 2 are implemented)");
  if (ctx.has_attr("kernel_shape")) {
    const auto ks = ctx.attr_ints("kernel_shape");
    if (!kernel.empty() && ks != kernel)
      ctx.fail("kernel_shape " + shape_text_of(ks) + " disagrees with the weights' " +
               shape_text_of(kernel));
    kernel = ks;
  }
  if (kernel.size() != r)
    ctx.fail("kernel_shape must have " + std::to_string(r) + " values, has " +
             std::to_string(kernel.size()));
  const auto strides = ctx.attr_ints("strides", std::vector<int64_t>(r, 1));
  const auto dilations = ctx.attr_ints("dilations", std::vector<int64_t>(r, 1));
  const auto pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * r, 0));
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  if (strides.size() != r || dilations.size() != r || pads.size() != 2 * r)
    ctx.fail("strides, dilations and pads must have " + std::to_string(r) + ", " +
             std::to_string(r) + " and " + std::to_string(2 * r) + " values");
  std::vector<Axis> axes(r);
  for (size_t d = 0; d < r; ++d) {
    Axis& a = axes[d];
    a.in = in_spatial[d];
    a.kernel = kernel[d];
    a.stride = strides[d];
    a.dilation = dilations[d];
    // Bounds keep the products below overflow; no real model comes near them.
    const int64_t limit = int64_t{1} << 20;
    if (a.kernel < 1 || a.stride < 1 || a.dilation < 1 || a.kernel > limit || a.stride > limit ||
        a.dilation > limit)
      ctx.fail("kernel, stride and dilation must be between 1 and 2^20");
    const int64_t span = (a.kernel - 1) * a.dilation + 1;  // the window's extent in the input
    if (auto_pad == "NOTSET") {
      a.pad_begin = pads[d];
      a.pad_end = pads[d + r];
      if (a.pad_begin < 0 || a.pad_end < 0 || a.pad_begin > limit || a.pad_end > limit)
        ctx.fail("pads must be between 0 and 2^20");
      const int64_t room = a.in + a.pad_begin + a.pad_end - span;
      if (room < 0) ctx.fail("the window is larger than the padded input");
      a.out = (ceil_mode ? (room + a.stride - 1) / a.stride : room / a.stride) + 1;
      // A window that would start in the end padding is dropped (pooling's ceil_mode rule).
      if (ceil_mode && (a.out - 1) * a.stride >= a.in + a.pad_begin) --a.out;
    } else if (auto_pad == "VALID") {
      const int64_t room = a.in - span;
      if (room < 0) ctx.fail("the window is larger than the input");
      a.out = (ceil_mode ? (room + a.stride - 1) / a.stride : room / a.stride) + 1;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      a.out = (a.in + a.stride - 1) / a.stride;
      const int64_t total = std::max<int64_t>(0, (a.out - 1) * a.stride + span - a.in);
      // SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning.
      a.pad_begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      a.pad_end = total - a.pad_begin;
    } else {
      ctx.fail("auto_pad '" + auto_pad + "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
    }
    if (a.out < 1) ctx.fail("the output would be empty");
  }
  // Run 1-D as 2-D with a height of 1.
  if (r == 1) axes.insert(axes.begin(), Axis{});
  return axes;
}

// The range of output positions [lo, hi) whose input position o*stride - pad + offset lies
// inside [0, in): the loops below then need no bounds test per element.
void valid_range(const Axis& a, int64_t offset, int64_t& lo, int64_t& hi) {
  const int64_t shift = offset - a.pad_begin;  // input = o * stride + shift
  lo = shift >= 0 ? 0 : (-shift + a.stride - 1) / a.stride;
  hi = a.in - 1 - shift < 0 ? 0 : (a.in - 1 - shift) / a.stride + 1;
  hi = std::min(hi, a.out);
  lo = std::min(lo, hi);
}

std::vector<int64_t> spatial_of(const OpContext& ctx, const Value& x) {
  if (x.shape.size() < 3)
    ctx.fail("input must be N x C x spatial..., has shape " + shape_text_of(x.shape));
  return {x.shape.begin() + 2, x.shape.end()};
}

std::vector<Value> conv(const OpContext& ctx) {
  const Value& x = ctx.real_input(0);
  const Value& w = ctx.real_input(1);
  const auto spatial = spatial_of(ctx, x);
  if (w.shape.size() != x.shape.size())
    ctx.fail("weights of shape " + shape_text_of(w.shape) + " do not match input of shape " +
             shape_text_of(x.shape));
  const int64_t batch = x.shape[0], channels = x.shape[1], filters = w.shape[0];
  const int64_t group = ctx.attr_int("group", 1);
  if (group < 1 || channels % group != 0 || filters % group != 0 || w.shape[1] != channels / group)
    ctx.fail("group " + std::to_string(group) + " does not fit " + std::to_string(channels) +
             " input channels and weights of shape " + shape_text_of(w.shape));
  const auto axes = window_axes(ctx, spatial, {w.shape.begin() + 2, w.shape.end()}, false);
  const Axis& ah = axes[0];
  const Axis& aw = axes[1];
  const Value* bias = ctx.has_input(2) ? &ctx.real_input(2) : nullptr;
  if (bias && bias->count() != filters)
    ctx.fail("bias has " + std::to_string(bias->count()) + " values for " +
             std::to_string(filters) + " filters");

  std::vector<int64_t> out_shape = {batch, filters};
  if (spatial.size() == 2) out_shape.push_back(ah.out);
  out_shape.push_back(aw.out);
  Value y = make_value(x.dtype, out_shape, ctx.node.label());

  const int64_t cin = channels / group, cout = filters / group;
  const int64_t in_plane = ah.in * aw.in, out_plane = ah.out * aw.out;
  const int64_t kplane = ah.kernel * aw.kernel;
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t g = 0; g < group; ++g) {
      for (int64_t oc = 0; oc < cout; ++oc) {
        const int64_t f = g * cout + oc;
        double* out = y.f.data() + (n * filters + f) * out_plane;
        if (bias) std::fill(out, out + out_plane, bias->f[static_cast<size_t>(f)]);
        for (int64_t ic = 0; ic < cin; ++ic) {
          const double* in = x.f.data() + (n * channels + g * cin + ic) * in_plane;
          const double* kern = w.f.data() + (f * cin + ic) * kplane;
          // Weight-stationary: one kernel tap at a time, added over the whole output plane, so
          // the innermost loop walks rows of input and output contiguously (stride 1).
          for (int64_t kh = 0; kh < ah.kernel; ++kh) {
            int64_t oh_lo = 0, oh_hi = 0;
            valid_range(ah, kh * ah.dilation, oh_lo, oh_hi);
            for (int64_t kw = 0; kw < aw.kernel; ++kw) {
              const double wv = kern[kh * aw.kernel + kw];
              int64_t ow_lo = 0, ow_hi = 0;
              valid_range(aw, kw * aw.dilation, ow_lo, ow_hi);
              const int64_t col_shift = kw * aw.dilation - aw.pad_begin;
              for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
                const int64_t ih = oh * ah.stride - ah.pad_begin + kh * ah.dilation;
                const double* in_row = in + ih * aw.in + col_shift;
                double* out_row = out + oh * aw.out;
                if (aw.stride == 1) {
                  for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out_row[ow] += wv * in_row[ow];
                } else {
                  for (int64_t ow = ow_lo; ow < ow_hi; ++ow)
                    out_row[ow] += wv * in_row[ow * aw.stride];
                }
              }
            }
          }
        }
      }
    }
  }
  return {std::move(y)};
}

// ConvTranspose scatters each input pixel through the kernel. output_shape is not supported;
// output_padding only grows the end of the output.
std::vector<Value> conv_transpose(const OpContext& ctx) {
  const Value& x = ctx.real_input(0);
  const Value& w = ctx.real_input(1);
  const auto spatial = spatial_of(ctx, x);
  const size_t r = spatial.size();
  if (r > 2) ctx.unsupported("more than 2 spatial dimensions");
  if (ctx.has_attr("output_shape")) ctx.unsupported("the output_shape attribute");
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID") ctx.unsupported("auto_pad " + auto_pad);
  if (w.shape.size() != x.shape.size())
    ctx.fail("weights of shape " + shape_text_of(w.shape) + " do not match input of shape " +
             shape_text_of(x.shape));
  const int64_t batch = x.shape[0], channels = x.shape[1];
  const int64_t group = ctx.attr_int("group", 1);
  if (group < 1 || channels % group != 0 || w.shape[0] != channels)
    ctx.fail("group " + std::to_string(group) + " does not fit " + std::to_string(channels) +
             " input channels and weights of shape " + shape_text_of(w.shape));
  const int64_t cin = channels / group, cout = w.shape[1], filters = cout * group;
  std::vector<int64_t> kernel(w.shape.begin() + 2, w.shape.end());
  const auto strides = ctx.attr_ints("strides", std::vector<int64_t>(r, 1));
  const auto dilations = ctx.attr_ints("dilations", std::vector<int64_t>(r, 1));
  const auto pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * r, 0));
  const auto extra = ctx.attr_ints("output_padding", std::vector<int64_t>(r, 0));
  if (strides.size() != r || dilations.size() != r || pads.size() != 2 * r || extra.size() != r)
    ctx.fail("strides, dilations, pads or output_padding have the wrong length");
  std::vector<Axis> axes(r);
  const int64_t limit = int64_t{1} << 20;
  for (size_t d = 0; d < r; ++d) {
    Axis& a = axes[d];
    a.in = spatial[d];
    a.kernel = kernel[d];
    a.stride = strides[d];
    a.dilation = dilations[d];
    a.pad_begin = auto_pad == "VALID" ? 0 : pads[d];
    a.pad_end = auto_pad == "VALID" ? 0 : pads[d + r];
    if (a.kernel < 1 || a.stride < 1 || a.dilation < 1 || a.stride > limit || a.dilation > limit ||
        a.pad_begin < 0 || a.pad_end < 0 || a.pad_begin > limit || a.pad_end > limit ||
        extra[d] < 0 || extra[d] > limit)
      ctx.fail("kernel, strides, dilations, pads or output_padding out of range");
    a.out = a.stride * (a.in - 1) + extra[d] + (a.kernel - 1) * a.dilation + 1 - a.pad_begin -
            a.pad_end;
    if (a.out < 1) ctx.fail("the output would be empty");
  }
  if (r == 1) axes.insert(axes.begin(), Axis{});
  const Axis& ah = axes[0];
  const Axis& aw = axes[1];
  const Value* bias = ctx.has_input(2) ? &ctx.real_input(2) : nullptr;
  if (bias && bias->count() != filters) ctx.fail("bias does not have one value per filter");
  std::vector<int64_t> out_shape = {batch, filters};
  if (r == 2) out_shape.push_back(ah.out);
  out_shape.push_back(aw.out);
  Value y = make_value(x.dtype, out_shape, ctx.node.label());
  const int64_t in_plane = ah.in * aw.in, out_plane = ah.out * aw.out;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t g = 0; g < group; ++g)
      for (int64_t oc = 0; oc < cout; ++oc) {
        const int64_t f = g * cout + oc;
        double* out = y.f.data() + (n * filters + f) * out_plane;
        if (bias) std::fill(out, out + out_plane, bias->f[static_cast<size_t>(f)]);
        for (int64_t ic = 0; ic < cin; ++ic) {
          const int64_t c = g * cin + ic;
          const double* in = x.f.data() + (n * channels + c) * in_plane;
          const double* kern = w.f.data() + (c * cout + oc) * ah.kernel * aw.kernel;
          for (int64_t ih = 0; ih < ah.in; ++ih)
            for (int64_t kh = 0; kh < ah.kernel; ++kh) {
              const int64_t oh = ih * ah.stride - ah.pad_begin + kh * ah.dilation;
              if (oh < 0 || oh >= ah.out) continue;
              for (int64_t iw = 0; iw < aw.in; ++iw)
                for (int64_t kw = 0; kw < aw.kernel; ++kw) {
                  const int64_t ow = iw * aw.stride - aw.pad_begin + kw * aw.dilation;
                  if (ow < 0 || ow >= aw.out) continue;
                  out[oh * aw.out + ow] += in[ih * aw.in + iw] * kern[kh * aw.kernel + kw];
                }
            }
        }
      }
  return {std::move(y)};
}

// Pooling over a window. `average` selects AveragePool (with count_include_pad), else MaxPool.
std::vector<Value> pool(const OpContext& ctx, bool average) {
  const Value& x = ctx.input(0);
  if (x.dtype == DType::Bool) ctx.fail("pooling a bool tensor");
  if (average && !x.floating()) ctx.unsupported("AveragePool on integer tensors");
  if (ctx.attr_int("storage_order", 0) != 0) ctx.unsupported("storage_order = 1");
  const auto spatial = spatial_of(ctx, x);
  if (!ctx.has_attr("kernel_shape")) ctx.fail("attribute kernel_shape is required");
  const auto axes = window_axes(ctx, spatial, {}, ctx.attr_int("ceil_mode", 0) != 0);
  const Axis& ah = axes[0];
  const Axis& aw = axes[1];
  const bool include_pad = ctx.attr_int("count_include_pad", 0) != 0;
  const std::vector<double> in = x.as_doubles();
  std::vector<int64_t> out_shape = {x.shape[0], x.shape[1]};
  if (spatial.size() == 2) out_shape.push_back(ah.out);
  out_shape.push_back(aw.out);
  Value y = make_value(x.dtype, out_shape, ctx.node.label());
  const int64_t planes = x.shape[0] * x.shape[1];
  const int64_t in_plane = ah.in * aw.in, out_plane = ah.out * aw.out;
  std::vector<double> result(static_cast<size_t>(planes * out_plane));
  for (int64_t p = 0; p < planes; ++p) {
    const double* src = in.data() + p * in_plane;
    for (int64_t oh = 0; oh < ah.out; ++oh)
      for (int64_t ow = 0; ow < aw.out; ++ow) {
        double acc = average ? 0.0 : -std::numeric_limits<double>::infinity();
        int64_t inside = 0, padded = 0;
        for (int64_t kh = 0; kh < ah.kernel; ++kh) {
          const int64_t ih = oh * ah.stride - ah.pad_begin + kh * ah.dilation;
          for (int64_t kw = 0; kw < aw.kernel; ++kw) {
            const int64_t iw = ow * aw.stride - aw.pad_begin + kw * aw.dilation;
            // Positions in the explicit padding count for count_include_pad; positions beyond
            // it (only reachable through ceil_mode) never do.
            if (ih >= -ah.pad_begin && ih < ah.in + ah.pad_end && iw >= -aw.pad_begin &&
                iw < aw.in + aw.pad_end)
              ++padded;
            if (ih < 0 || ih >= ah.in || iw < 0 || iw >= aw.in) continue;
            const double v = src[ih * aw.in + iw];
            ++inside;
            if (average)
              acc += v;
            else if (v > acc || std::isnan(v))
              acc = v;
          }
        }
        if (average) acc /= static_cast<double>(include_pad ? padded : inside);
        result[static_cast<size_t>(p * out_plane + oh * aw.out + ow)] = acc;
      }
  }
  if (y.floating())
    y.f = std::move(result);
  else
    for (size_t k = 0; k < result.size(); ++k) y.i[k] = static_cast<int64_t>(result[k]);
  return {std::move(y)};
}

std::vector<Value> max_pool(const OpContext& ctx) { return pool(ctx, false); }
std::vector<Value> average_pool(const OpContext& ctx) { return pool(ctx, true); }

std::vector<Value> global_pool(const OpContext& ctx, bool average) {
  const Value& x = ctx.real_input(0);
  spatial_of(ctx, x);
  std::vector<int64_t> out_shape(x.shape.size(), 1);
  out_shape[0] = x.shape[0];
  out_shape[1] = x.shape[1];
  Value y = make_value(x.dtype, out_shape, ctx.node.label());
  const int64_t planes = x.shape[0] * x.shape[1];
  const int64_t plane = planes == 0 ? 0 : x.count() / planes;
  for (int64_t p = 0; p < planes; ++p) {
    const double* src = x.f.data() + p * plane;
    double acc = average ? 0.0 : -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < plane; ++k) acc = average ? acc + src[k] : std::max(acc, src[k]);
    y.f[static_cast<size_t>(p)] = average ? acc / static_cast<double>(plane) : acc;
  }
  return {std::move(y)};
}

std::vector<Value> global_average_pool(const OpContext& ctx) { return global_pool(ctx, true); }
std::vector<Value> global_max_pool(const OpContext& ctx) { return global_pool(ctx, false); }

std::vector<Value> batch_norm(const OpContext& ctx) {
  if (ctx.attr_int("training_mode", 0) != 0) ctx.unsupported("training_mode = 1");
  if (ctx.opset < 9 && ctx.attr_int("spatial", 1) == 0) ctx.unsupported("spatial = 0");
  for (size_t o = 1; o < ctx.node.outputs.size(); ++o)
    if (!ctx.node.outputs[o].empty()) ctx.unsupported("the training outputs (mean, var)");
  const Value& x = ctx.real_input(0);
  if (x.shape.size() < 2) ctx.fail("input must be N x C x ..., has " + shape_text_of(x.shape));
  const int64_t channels = x.shape[1];
  const Value* params[4];
  for (size_t k = 0; k < 4; ++k) {
    params[k] = &ctx.real_input(k + 1);
    if (params[k]->count() != channels)
      ctx.fail("input " + std::to_string(k + 1) + " has " + std::to_string(params[k]->count()) +
               " values for " + std::to_string(channels) + " channels");
  }
  const double epsilon = ctx.attr_float("epsilon", 1e-5);
  Value y = x;
  const int64_t plane = channels == 0 || x.shape[0] == 0 ? 0 : x.count() / (x.shape[0] * channels);
  for (int64_t n = 0; n < x.shape[0]; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const auto ci = static_cast<size_t>(c);
      const double scale = params[0]->f[ci] / std::sqrt(params[3]->f[ci] + epsilon);
      const double mean = params[2]->f[ci], shift = params[1]->f[ci];
      double* p = y.f.data() + (n * channels + c) * plane;
      for (int64_t k = 0; k < plane; ++k) p[k] = (p[k] - mean) * scale + shift;
    }
  return {std::move(y)};
}

// C = A x B for row-major A (m x k) and B (k x n), accumulated into c; i-k-j order so that the
// innermost loop walks B and C rows contiguously.
void matmul_into(const double* a, const double* b, double* c, int64_t m, int64_t k, int64_t n) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const double av = a[i * k + p];
      const double* brow = b + p * n;
      double* crow = c + i * n;
      for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
    }
}

std::vector<Value> gemm(const OpContext& ctx) {
  const Value& a = ctx.real_input(0);
  const Value& b = ctx.real_input(1);
  if (a.shape.size() != 2 || b.shape.size() != 2)
    ctx.fail("A and B must be matrices, have shapes " + shape_text_of(a.shape) + " and " +
             shape_text_of(b.shape));
  const bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  const double alpha = ctx.attr_float("alpha", 1.0), beta = ctx.attr_float("beta", 1.0);
  const int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
  const int64_t kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
  if (k != kb)
    ctx.fail("inner dimensions differ: A " + shape_text_of(a.shape) + " B " +
             shape_text_of(b.shape) + " with transA " + std::to_string(ta) + " transB " +
             std::to_string(tb));
  // Transpose into plain row-major copies first: simpler than four loop variants.
  std::vector<double> at(a.f), bt(b.f);
  if (ta)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p)
        at[static_cast<size_t>(i * k + p)] = a.f[static_cast<size_t>(p * m + i)];
  if (tb)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j)
        bt[static_cast<size_t>(p * n + j)] = b.f[static_cast<size_t>(j * k + p)];
  Value y = make_value(a.dtype, {m, n}, ctx.node.label());
  matmul_into(at.data(), bt.data(), y.f.data(), m, k, n);
  for (double& v : y.f) v *= alpha;
  if (ctx.has_input(2)) {
    const Value& c = ctx.real_input(2);
    // C broadcasts one way only, to (M, N).
    if (broadcast_shape(ctx, c.shape, y.shape) != y.shape)
      ctx.fail("C of shape " + shape_text_of(c.shape) + " does not broadcast to " +
               shape_text_of(y.shape));
    const auto ic = broadcast_index(c.shape, y.shape);
    for (size_t q = 0; q < ic.size(); ++q) y.f[q] += beta * c.f[static_cast<size_t>(ic[q])];
  }
  return {std::move(y)};
}

// numpy.matmul: 1-D operands are promoted to matrices and the added axis removed afterwards;
// leading (batch) dimensions broadcast.
std::vector<Value> matmul(const OpContext& ctx) {
  const Value& a = ctx.real_input(0);
  const Value& b = ctx.real_input(1);
  if (a.shape.empty() || b.shape.empty()) ctx.fail("operands must have at least one dimension");
  std::vector<int64_t> sa = a.shape, sb = b.shape;
  if (sa.size() == 1) sa.insert(sa.begin(), 1);
  if (sb.size() == 1) sb.push_back(1);
  const int64_t m = sa[sa.size() - 2], k = sa.back(), kb = sb[sb.size() - 2], n = sb.back();
  if (k != kb)
    ctx.fail("inner dimensions differ: " + shape_text_of(a.shape) + " x " + shape_text_of(b.shape));
  const std::vector<int64_t> batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  const auto batch = broadcast_shape(ctx, batch_a, batch_b);
  std::vector<int64_t> out_shape = batch;
  if (a.shape.size() > 1) out_shape.push_back(m);
  if (b.shape.size() > 1) out_shape.push_back(n);
  Value y = make_value(a.dtype, out_shape, ctx.node.label());
  const auto ia = broadcast_index(batch_a, batch);
  const auto ib = broadcast_index(batch_b, batch);
  for (size_t q = 0; q < ia.size(); ++q)
    matmul_into(a.f.data() + ia[q] * m * k, b.f.data() + ib[q] * k * n,
                y.f.data() + static_cast<int64_t>(q) * m * n, m, k, n);
  return {std::move(y)};
}

// Softmax and LogSoftmax. Before opset 13 the input is seen as a matrix split at `axis` (default
// 1) and each row is normalised; from 13 on the normalisation runs along `axis` alone
// (default -1).
std::vector<Value> softmax_impl(const OpContext& ctx, bool log) {
  const Value& x = ctx.real_input(0);
  const auto rank = static_cast<int64_t>(x.shape.size());
  const bool legacy = ctx.opset < 13;
  const int64_t axis = ctx.axis(ctx.attr_int("axis", legacy ? 1 : -1), rank);
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t s = x.shape[static_cast<size_t>(d)];
    if (d < axis)
      outer *= s;
    else if (d == axis || legacy)
      len *= s;
    else
      inner *= s;
  }
  Value y = x;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double* base = y.f.data() + o * len * inner + i;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < len; ++k) mx = std::max(mx, base[k * inner]);
      double sum = 0;
      for (int64_t k = 0; k < len; ++k) sum += std::exp(base[k * inner] - mx);
      for (int64_t k = 0; k < len; ++k) {
        const double shifted = base[k * inner] - mx;
        base[k * inner] = log ? shifted - std::log(sum) : std::exp(shifted) / sum;
      }
    }
  return {std::move(y)};
}

std::vector<Value> softmax(const OpContext& ctx) { return softmax_impl(ctx, false); }
std::vector<Value> log_softmax(const OpContext& ctx) { return softmax_impl(ctx, true); }

}  // namespace

void register_nn_ops(std::map<std::string, OpFn>& table) {
  table["Conv"] = conv;
  table["ConvTranspose"] = conv_transpose;
  table["MaxPool"] = max_pool;
  table["AveragePool"] = average_pool;
  table["GlobalAveragePool"] = global_average_pool;
  table["GlobalMaxPool"] = global_max_pool;
  table["BatchNormalization"] = batch_norm;
  table["Gemm"] = gemm;
  table["MatMul"] = matmul;
  table["Softmax"] = softmax;
  table["LogSoftmax"] = log_softmax;
}

}  // namespace deltann::reference
