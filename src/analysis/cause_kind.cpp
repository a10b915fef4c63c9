#include "cause_kind.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <sstream>

namespace deltann {
namespace {

using nlohmann::json;

double largest_abs(const std::vector<double>& v) {
  double m = 0;
  for (const double x : v) m = std::max(m, std::fabs(x));
  return m;
}

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string ints_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

// --- Rearrangements ------------------------------------------------------------------------------

}  // namespace

std::vector<double> transform_values(const std::vector<double>& values,
                                     const std::vector<int64_t>& shape,
                                     const std::vector<int64_t>& perm,
                                     const std::vector<bool>& flip) {
  const size_t rank = shape.size();
  size_t count = 1;
  for (const auto d : shape) count *= static_cast<size_t>(std::max<int64_t>(d, 0));
  if (perm.size() != rank || flip.size() != rank || count != values.size()) return {};
  std::vector<bool> seen(rank, false);
  for (const auto k : perm) {
    if (k < 0 || static_cast<size_t>(k) >= rank || seen[k]) return {};
    seen[k] = true;
  }
  std::vector<size_t> stride(rank, 1), out_shape(rank), out_stride(rank);
  for (size_t k = rank; k-- > 1;) stride[k - 1] = stride[k] * static_cast<size_t>(shape[k]);
  for (size_t k = 0; k < rank; ++k) {
    out_shape[k] = static_cast<size_t>(shape[perm[k]]);
    out_stride[k] = stride[perm[k]];
  }
  std::vector<double> out(count);
  std::vector<size_t> index(rank, 0);
  for (size_t i = 0; i < count; ++i) {
    size_t offset = 0;
    for (size_t k = 0; k < rank; ++k)
      offset += (flip[k] ? out_shape[k] - 1 - index[k] : index[k]) * out_stride[k];
    out[i] = values[offset];
    for (size_t k = rank; k-- > 0;) {
      if (++index[k] < out_shape[k]) break;
      index[k] = 0;
    }
  }
  return out;
}

namespace {

// Axis names for the one rank whose meaning is known: ONNX's OIHW Conv weights.
std::string axis_name(size_t axis, size_t rank) {
  static const char* oihw[] = {"O", "I", "H", "W"};
  return "axis " + std::to_string(axis) + (rank == 4 ? std::string(" (") + oihw[axis] + ")" : "");
}

// A's slices along `axis` reordered into B's: B's slice j is A's slice perm[j]. nullopt when no
// reordering of that axis alone gives B.
std::optional<std::vector<int64_t>> slice_reorder(const std::vector<double>& a,
                                                  const std::vector<double>& b,
                                                  const std::vector<int64_t>& shape, size_t axis) {
  size_t outer = 1, inner = 1;
  for (size_t k = 0; k < axis; ++k) outer *= static_cast<size_t>(shape[k]);
  for (size_t k = axis + 1; k < shape.size(); ++k) inner *= static_cast<size_t>(shape[k]);
  const size_t n = static_cast<size_t>(shape[axis]);
  const auto slice = [&](const std::vector<double>& v, size_t j) {
    std::vector<double> s;
    s.reserve(outer * inner);
    for (size_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < inner; ++i) s.push_back(v[(o * n + j) * inner + i]);
    return s;
  };
  std::map<std::vector<double>, std::vector<int64_t>> unused;  // A's slices, by content
  for (size_t j = n; j-- > 0;) unused[slice(a, j)].push_back(static_cast<int64_t>(j));
  std::vector<int64_t> perm(n);
  for (size_t j = 0; j < n; ++j) {
    auto found = unused.find(slice(b, j));
    if (found == unused.end() || found->second.empty()) return std::nullopt;
    perm[j] = found->second.back();  // lowest index first: equal slices keep their order
    found->second.pop_back();
  }
  return perm;
}

std::optional<CauseKind> rearranged(const std::vector<double>& a, const std::vector<int64_t>& shape,
                                    const std::vector<double>& b,
                                    const std::vector<int64_t>& shape_b) {
  std::vector<double> sa = a, sb = b;
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  if (sa != sb) return std::nullopt;
  CauseKind k{"rearranged", json::object(), ""};
  const size_t rank = shape.size();
  // Every permutation of the axes that gives B's shape, with every set of flips, simplest first
  // (flips alone, then transpositions, then both); at most 6 axes (46,080 candidates).
  if (rank > 0 && rank <= 6) {
    struct Candidate {
      std::vector<int64_t> perm;
      std::vector<bool> flip;
      int cost;
    };
    std::vector<Candidate> candidates;
    std::vector<int64_t> perm(rank);
    std::iota(perm.begin(), perm.end(), 0);
    const std::vector<int64_t> identity = perm;
    do {
      std::vector<int64_t> permuted(rank);
      for (size_t i = 0; i < rank; ++i) permuted[i] = shape[perm[i]];
      if (permuted != shape_b) continue;
      for (unsigned mask = 0; mask < (1u << rank); ++mask) {
        if (perm == identity && mask == 0) continue;
        std::vector<bool> flip(rank);
        int flips = 0;
        bool futile = false;
        for (size_t i = 0; i < rank; ++i) {
          flip[i] = (mask >> i) & 1;
          flips += flip[i];
          // Flipping an axis of size 1 changes nothing: that candidate is a simpler one's twin.
          futile = futile || (flip[i] && shape_b[i] == 1);
        }
        if (futile) continue;
        candidates.push_back({perm, flip, (perm == identity ? 0 : 10) + flips});
      }
    } while (std::next_permutation(perm.begin(), perm.end()));
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& x, const Candidate& y) { return x.cost < y.cost; });
    for (const auto& c : candidates) {
      if (transform_values(a, shape, c.perm, c.flip) != b) continue;
      std::vector<int64_t> flipped;
      std::string flips_text;
      for (size_t i = 0; i < rank; ++i)
        if (c.flip[i]) {
          flipped.push_back(static_cast<int64_t>(i));
          flips_text += (flips_text.empty() ? "" : ", ") + axis_name(i, rank);
        }
      const bool transposed = c.perm != identity;
      k.details = {
          {"transform", transposed ? (flipped.empty() ? "transpose" : "transpose+flip") : "flip"}};
      if (transposed) k.details["perm"] = c.perm;
      if (!flipped.empty()) k.details["flipped_axes"] = flipped;
      k.text = std::string("rearranged: ") +
               (transposed ? "axes transposed, B = A.transpose" + ints_text(c.perm) : "") +
               (transposed && !flipped.empty() ? ", then " : "") +
               (flipped.empty() ? "" : "flipped along " + flips_text);
      return k;
    }
    // A reordering of one axis (a channel shuffle), outermost axis first.
    if (shape == shape_b)
      for (size_t axis = 0; axis < rank; ++axis) {
        if (shape[axis] < 2) continue;
        const auto order = slice_reorder(a, b, shape, axis);
        if (!order) continue;
        const std::string description = describe_permutation(*order);
        k.details = {
            {"transform", "reorder"},
            {"axis", axis},
            {"description", description},
            {"moved", std::count_if(order->begin(), order->end(),
                                    [i = int64_t{0}](int64_t p) mutable { return p != i++; })}};
        if (order->size() <= 64) k.details["permutation"] = *order;
        k.text = "rearranged: " + axis_name(axis, rank) + " reordered (" + description +
                 (order->size() <= 16 ? ", B's slice j is A's " + ints_text(*order) : "") + ")";
        return k;
      }
  }
  k.details = {{"transform", "unknown"}};
  k.text =
      "rearranged: the same values in another order (no flip, transpose or single-axis "
      "reorder gives it)";
  return k;
}

// --- Fits ----------------------------------------------------------------------------------------

double max_residual(const std::vector<double>& a, const std::vector<double>& b, double k,
                    double c) {
  double r = 0;
  for (size_t i = 0; i < a.size(); ++i) r = std::max(r, std::fabs(b[i] - (k * a[i] + c)));
  return r;
}

std::optional<CauseKind> fitted(const std::vector<double>& a, const std::vector<double>& b,
                                const CauseTolerances& t) {
  const size_t n = a.size();
  if (n < 2) return std::nullopt;  // one value fits any k and any c
  const double tol = t.fit_rtol * std::max(largest_abs(b), largest_abs(a));
  double aa = 0, ab = 0, mean_a = 0, mean_b = 0;
  for (size_t i = 0; i < n; ++i) {
    aa += a[i] * a[i];
    ab += a[i] * b[i];
    mean_a += a[i];
    mean_b += b[i];
  }
  mean_a /= static_cast<double>(n);
  mean_b /= static_cast<double>(n);
  const auto residual_text = [](double r) { return "max residual " + number(r); };
  // B = k*A (least squares: k = <a,b>/<a,a>).
  if (aa > 0) {
    const double k = ab / aa, r = max_residual(a, b, k, 0);
    // k near 0 is a B that does not depend on A (a constant): not a rescale.
    if (r <= tol && std::fabs(k - 1) > t.fit_rtol && std::fabs(k) > t.fit_rtol)
      return CauseKind{"rescaled",
                       {{"k", k}, {"max_residual", r}},
                       "rescaled: B = k*A with k = " + number(k) + " (" + residual_text(r) + ")"};
  }
  // B = A + c (least squares: c = mean(b - a)).
  const double c = mean_b - mean_a, r = max_residual(a, b, 1, c);
  if (r <= tol && std::fabs(c) > tol)
    return CauseKind{"offset",
                     {{"c", c}, {"max_residual", r}},
                     "offset: B = A + c with c = " + number(c) + " (" + residual_text(r) + ")"};
  // B = k*A + c.
  double var_a = 0, cov = 0;
  for (size_t i = 0; i < n; ++i) {
    var_a += (a[i] - mean_a) * (a[i] - mean_a);
    cov += (a[i] - mean_a) * (b[i] - mean_b);
  }
  if (var_a > 0) {
    const double k = cov / var_a, c2 = mean_b - k * mean_a, r2 = max_residual(a, b, k, c2);
    if (r2 <= tol && std::fabs(k) > t.fit_rtol &&
        (std::fabs(k - 1) > t.fit_rtol || std::fabs(c2) > tol))
      return CauseKind{"affine",
                       {{"k", k}, {"c", c2}, {"max_residual", r2}},
                       "rescaled and offset: B = k*A + c with k = " + number(k) +
                           ", c = " + number(c2) + " (" + residual_text(r2) + ")"};
  }
  return std::nullopt;
}

// --- Narrower floats -----------------------------------------------------------------------------

// x (as float32) rounded to `bits` significant bits with exponents down to `min_exponent`
// (subnormals below) and the largest finite value `largest`; ties to even (nearbyint's default).
double round_to_float(double x, int bits, int min_exponent, double largest) {
  const double f = static_cast<float>(x);
  if (!std::isfinite(f) || f == 0) return f;
  int e;
  std::frexp(f, &e);  // f = m * 2^e, 0.5 <= |m| < 1
  const double quantum = std::ldexp(1.0, std::max(e, min_exponent) - bits);
  const double r = std::nearbyint(f / quantum) * quantum;
  return std::fabs(r) > largest ? std::copysign(INFINITY, r) : r;
}

double truncate_to_bf16(double x) {
  const double f = static_cast<float>(x);
  if (!std::isfinite(f) || f == 0) return f;
  int e;
  std::frexp(f, &e);
  const double quantum = std::ldexp(1.0, std::max(e, -125) - 8);
  return std::trunc(f / quantum) * quantum;
}

std::optional<CauseKind> precision_reduced(const std::vector<double>& a,
                                           const std::vector<double>& b) {
  const auto all = [&](double (*round)(double)) {
    for (size_t i = 0; i < a.size(); ++i)
      if (round(a[i]) != b[i]) return false;
    return true;
  };
  struct Format {
    const char* name;
    const char* rounding;
    double (*round)(double);
  };
  for (const Format& f : {Format{"fp16", "nearest-even", round_to_fp16},
                          Format{"bf16", "nearest-even", round_to_bf16},
                          Format{"bf16", "toward zero", truncate_to_bf16}})
    if (all(f.round))
      return CauseKind{
          "precision-reduced",
          {{"format", f.name}, {"rounding", f.rounding}},
          std::string("precision-reduced: B is A rounded to ") + f.name + " (" + f.rounding + ")"};
  return std::nullopt;
}

// --- Grids ---------------------------------------------------------------------------------------

struct Grid {
  double step = 0, origin = 0;
  int64_t levels = 0;  // grid points from the smallest value to the largest
  int bits = 0;
};

bool on_grid(double x, const Grid& g, double tol) {
  const double n = (x - g.origin) / g.step;
  return std::fabs(n - std::nearbyint(n)) * g.step <= tol;
}

// The greatest common divisor of two positive gaps, to within `tol` (Euclid on remainders). A
// remainder's error grows with the quotient (x = q*y + r carries q times y's error), so the
// slack that counts a remainder as zero does too.
double approximate_gcd(double x, double y, double tol) {
  if (x < y) std::swap(x, y);
  while (y > tol) {
    double r = std::fmod(x, y);
    const double slack = tol * (1 + x / y);
    if (r <= slack || y - r <= slack) r = 0;
    x = y;
    y = r;
  }
  return x;
}

// The coarsest uniform grid every value lies on (within `tol`), when it needs at most `max_bits`
// bits. A constant (one distinct value) has no grid. The gaps between neighbouring values are
// taken smallest first: the step is their least-squares fit (gap = n * step), replaced by the
// approximate GCD with a gap that is no multiple of it. Small quotients first keep one gap's
// float32 error from being multiplied by many levels. Then every value is checked.
std::optional<Grid> find_grid(std::vector<double> v, double tol, int max_bits) {
  std::sort(v.begin(), v.end());
  std::vector<double> points;  // distinct values; neighbours closer than tol are one point
  for (const double x : v)
    if (points.empty() || x - points.back() > tol) points.push_back(x);
  if (points.size() < 2) return std::nullopt;
  const double origin = points.front(), span = points.back() - origin;
  const double most_levels = std::ldexp(1.0, max_bits);
  std::vector<double> gaps;
  for (size_t i = 1; i < points.size(); ++i) gaps.push_back(points[i] - points[i - 1]);
  std::sort(gaps.begin(), gaps.end());
  double step = gaps.front(), sum_gn = 0, sum_nn = 0;
  for (size_t i = 0; i < gaps.size(); ++i) {
    double n = std::nearbyint(gaps[i] / step);
    if (n < 1 || std::fabs(gaps[i] - n * step) > tol * (1 + n)) {
      step = approximate_gcd(step, gaps[i], tol);
      if (step <= tol || span / step + 1 > most_levels) return std::nullopt;
      sum_gn = sum_nn = 0;  // the fit starts again on the finer step
      for (size_t j = 0; j < i; ++j) {
        const double m = std::nearbyint(gaps[j] / step);
        sum_gn += gaps[j] * m;
        sum_nn += m * m;
      }
      n = std::nearbyint(gaps[i] / step);
    }
    sum_gn += gaps[i] * n;
    sum_nn += n * n;
    step = sum_gn / sum_nn;
  }
  Grid g;
  g.step = step;
  g.origin = origin;
  for (const double x : points)
    if (!on_grid(x, g, tol)) return std::nullopt;
  g.levels = static_cast<int64_t>(std::nearbyint(span / step)) + 1;
  g.bits = std::max(1, static_cast<int>(std::ceil(std::log2(static_cast<double>(g.levels)))));
  return g;
}

// Grids per slice of `axis` (all values when axis is -1), each checked against A: B within one
// step of A, and where B differs from A, A off the grid (quantising moves only values that are
// off it; a B that moved values already on its grid changed them otherwise). A slice that B
// leaves exactly as A (an all-zero channel) is no evidence either way and has no grid.
std::optional<std::vector<std::optional<Grid>>> grids(const std::vector<double>& a,
                                                      const std::vector<double>& b,
                                                      const std::vector<int64_t>& shape, int axis,
                                                      const CauseTolerances& t) {
  size_t outer = 1, n = 1, inner = b.size();
  if (axis >= 0) {
    for (int k = 0; k < axis; ++k) outer *= static_cast<size_t>(shape[k]);
    n = static_cast<size_t>(shape[axis]);
    inner = 1;
    for (size_t k = static_cast<size_t>(axis) + 1; k < shape.size(); ++k)
      inner *= static_cast<size_t>(shape[k]);
    if (n < 2 || outer * inner < t.min_channel_values) return std::nullopt;
  }
  std::vector<std::optional<Grid>> out;
  size_t differing = 0, differing_on_grid = 0;
  for (size_t j = 0; j < n; ++j) {
    std::vector<double> sa, sb;
    for (size_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < inner; ++i) {
        sa.push_back(a[(o * n + j) * inner + i]);
        sb.push_back(b[(o * n + j) * inner + i]);
      }
    if (axis >= 0 && sa == sb) {
      out.emplace_back();
      continue;
    }
    // Relative to the slice's own magnitude: channels of a per-channel scheme differ by orders.
    const double tol = t.grid_rtol * std::max(largest_abs(sb), largest_abs(sa));
    const auto g = find_grid(sb, tol, t.max_grid_bits);
    if (!g) return std::nullopt;
    for (size_t i = 0; i < sa.size(); ++i) {
      if (std::fabs(sa[i] - sb[i]) > g->step * (1 + 1e-3)) return std::nullopt;
      if (sa[i] == sb[i]) continue;
      ++differing;
      differing_on_grid += on_grid(sa[i], *g, tol);
    }
    out.push_back(g);
  }
  if (differing == 0 || 2 * differing_on_grid > differing) return std::nullopt;
  return out;
}

std::optional<CauseKind> quantised(const std::vector<double>& a, const std::vector<double>& b,
                                   const std::vector<int64_t>& shape, const CauseTolerances& t) {
  if (auto g = grids(a, b, shape, -1, t)) {
    const Grid& grid = *g->front();
    return CauseKind{"quantised",
                     {{"granularity", "per-tensor"},
                      {"step", grid.step},
                      {"bits", grid.bits},
                      {"levels", grid.levels}},
                     "quantised: B lies on a grid of step " + number(grid.step) + " (" +
                         std::to_string(grid.levels) + " levels, " + std::to_string(grid.bits) +
                         " bits, per tensor), within one step of A"};
  }
  // Per channel: the output channels (axis 0) first, then axis 1 (a depthwise kernel's).
  for (int axis = 0; axis < std::min<int>(2, static_cast<int>(shape.size())); ++axis) {
    const auto g = grids(a, b, shape, axis, t);
    if (!g) continue;
    double lo = INFINITY, hi = 0;
    int bits = 0;
    json steps = json::array();
    for (const auto& grid : *g) {
      if (!grid) {  // a channel B left as it was
        steps.push_back(nullptr);
        continue;
      }
      lo = std::min(lo, grid->step);
      hi = std::max(hi, grid->step);
      bits = std::max(bits, grid->bits);
      steps.push_back(grid->step);
    }
    CauseKind k{"quantised",
                {{"granularity", "per-channel"},
                 {"axis", axis},
                 {"step_min", lo},
                 {"step_max", hi},
                 {"bits", bits}},
                "quantised: B lies on a grid per channel of axis " + std::to_string(axis) +
                    " (steps " + number(lo) + " to " + number(hi) + ", up to " +
                    std::to_string(bits) + " bits), within one step of A"};
    if (steps.size() <= 64) k.details["steps"] = steps;
    return k;
  }
  return std::nullopt;
}

std::vector<int64_t> parse_ints(const std::string& text) {
  std::vector<int64_t> out;
  std::string digits;
  for (const char ch : text + ",") {
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
      digits += ch;
    } else if (!digits.empty()) {
      out.push_back(std::stoll(digits));
      digits.clear();
    }
  }
  return out;
}

}  // namespace

double round_to_fp16(double x) { return round_to_float(x, 11, -13, 65504); }
double round_to_bf16(double x) { return round_to_float(x, 8, -125, 3.3895313892515355e38); }

std::string describe_permutation(const std::vector<int64_t>& perm) {
  const int64_t n = static_cast<int64_t>(perm.size());
  if (n == 0) return "identity";
  const int64_t shift = ((perm[0] % n) + n) % n;  // a rotation moves every position by this much
  std::vector<std::pair<int64_t, int64_t>> swaps;
  int64_t moved = 0;
  bool reversed = n > 1, rotated = true, swaps_only = true;
  for (int64_t i = 0; i < n; ++i) {
    reversed = reversed && perm[i] == n - 1 - i;
    rotated = rotated && perm[i] == (i + shift) % n;
    if (perm[i] == i) continue;
    ++moved;
    if (perm[i] < 0 || perm[i] >= n || perm[perm[i]] != i) swaps_only = false;
    if (perm[i] > i) swaps.emplace_back(i, perm[i]);
  }
  if (moved == 0) return "identity";
  if (reversed) return "reversed";
  if (rotated) return "rotated by " + std::to_string(shift);
  if (swaps_only && swaps.size() <= 4) {
    std::string s = "swaps ";
    for (const auto& [i, j] : swaps) s += "(" + std::to_string(i) + " " + std::to_string(j) + ")";
    return s;
  }
  return std::to_string(moved) + " of " + std::to_string(n) + " positions moved";
}

CauseKind classify_tensor_change(const std::vector<double>& a, const std::vector<int64_t>& shape,
                                 const std::vector<double>& b, const std::vector<int64_t>& shape_b,
                                 bool b_present, const CauseTolerances& t) {
  if (!b_present)
    return {"missing",
            {{"values_a", a.size()}, {"max_abs_a", largest_abs(a)}},
            "missing: B has no such tensor (A's " + std::to_string(a.size()) + " values, max |a| " +
                number(largest_abs(a)) + ")"};
  if (a.size() != b.size())
    return {"resized",
            {{"values_a", a.size()}, {"values_b", b.size()}},
            "resized: " + std::to_string(a.size()) + " values in A, " + std::to_string(b.size()) +
                " in B"};
  if (a == b) return {"same", json::object(), "same"};
  const bool b_zero = std::all_of(b.begin(), b.end(), [](double v) { return v == 0; });
  if (b_zero)
    return {"zeroed",
            {{"max_abs_a", largest_abs(a)}},
            "zeroed: every value of B is 0 (max |a| " + number(largest_abs(a)) + ")"};
  // NaN has no order (sorting would be undefined) and no fit: such a tensor is only "changed".
  const auto has_nan = [](const std::vector<double>& v) {
    return std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); });
  };
  if (has_nan(a) || has_nan(b))
    return {"changed", {{"nan", true}}, "changed: NaN in " + std::string(has_nan(a) ? "A" : "B")};
  // The shape the structural tests walk: B's, when A's reads as it (equal element counts).
  const std::vector<int64_t>& walk = shape == shape_b ? shape : shape_b;
  if (auto k = rearranged(a, shape.empty() ? walk : shape, b, walk)) return *k;
  if (auto k = fitted(a, b, t)) return *k;
  // A narrow-range tensor rounded to fp16 also lies on a uniform grid; the exact match with the
  // rounding is the stronger evidence, so it is tried before the grid.
  if (auto k = precision_reduced(a, b)) return *k;
  if (auto k = quantised(a, b, walk, t)) return *k;
  double max_abs = 0, diff_sq = 0, a_sq = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(a[i] - b[i]));
    diff_sq += (a[i] - b[i]) * (a[i] - b[i]);
    a_sq += a[i] * a[i];
  }
  const double largest = largest_abs(a);
  const double relative = largest > 0 ? max_abs / largest : max_abs;
  const double rel_l2 = a_sq > 0 ? std::sqrt(diff_sq / a_sq) : std::sqrt(diff_sq);
  json details = {{"max_abs", max_abs}, {"relative_change", relative}, {"rel_l2", rel_l2}};
  const bool constant = std::all_of(b.begin(), b.end(), [&](double v) { return v == b[0]; });
  if (constant) details["constant_b"] = b[0];
  if (a.size() == 1) {
    details["a"] = a[0];
    details["b"] = b[0];
  }
  return {"changed", details,
          "changed: max |a-b| " + number(max_abs) + ", relative change " + number(relative) +
              " (of max |a|), relative L2 " + number(rel_l2) +
              (constant && b.size() > 1 ? "; every value of B is " + number(b[0]) : "")};
}

CauseKind classify_op_change(const std::string& op_a, const std::string& op_b) {
  return {
      "op-replaced", {{"op_a", op_a}, {"op_b", op_b}}, "op-replaced: " + op_a + " became " + op_b};
}

CauseKind classify_attribute_change(const std::string& op, const std::string& attribute,
                                    const std::string& a, const std::string& b) {
  json details = {{"attribute", attribute}, {"a", a}, {"b", b}};
  const std::string change = attribute + " " + a + " -> " + b;
  if (attribute == "pads") {
    // ONNX lists all begins, then all ends. The same total per axis keeps the output size and
    // moves the window: the content shifts by the change of the begin.
    const auto pa = parse_ints(a), pb = parse_ints(b);
    if (pa.size() == pb.size() && !pa.empty() && pa.size() % 2 == 0) {
      const size_t axes = pa.size() / 2;
      std::vector<int64_t> shift(axes);
      bool same_size = true;
      for (size_t i = 0; i < axes; ++i) {
        same_size = same_size && pa[i] + pa[i + axes] == pb[i] + pb[i + axes];
        shift[i] = pb[i] - pa[i];
      }
      if (same_size) {
        details["shift"] = shift;
        return {"padding-shifted", details,
                "padding-shifted: " + op + " " + change + " (same size, window moved by " +
                    ints_text(shift) + " per axis)"};
      }
    }
    return {"padding-changed", details, "padding-changed: " + op + " " + change};
  }
  static const std::map<std::string, std::string> kinds = {{"strides", "stride-changed"},
                                                           {"dilations", "dilation-changed"},
                                                           {"epsilon", "epsilon-changed"}};
  std::string kind = "attribute-changed";
  if (const auto found = kinds.find(attribute); found != kinds.end()) kind = found->second;
  if (op == "Clip" && (attribute == "min" || attribute == "max")) kind = "bounds-changed";
  return {kind, details, kind + ": " + op + " " + change};
}

}  // namespace deltann
