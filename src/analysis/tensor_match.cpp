// Tensor matching (tensor_match.h): differences under a layout, op families, and the name and
// structural matching of two captures.
#include "deltann/tensor_match.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "deltann/compare_tensors.h"

namespace deltann {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<int64_t> squeezed(const std::vector<int64_t>& shape) {
  std::vector<int64_t> out;
  for (const int64_t d : shape)
    if (d != 1) out.push_back(d);
  return out;
}

}  // namespace

bool same_layout(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return squeezed(a) == squeezed(b);
}

namespace {

// Calls f(index in A, index in B) for every element, in A's order, with B read in A's layout.
// The caller has checked that both tensors hold as many values as A's shape says.
template <class F>
void for_each_pair(const std::vector<int64_t>& shape_a, size_t count, LayoutMatch layout, F&& f) {
  if (layout == LayoutMatch::same) {
    for (size_t i = 0; i < count; ++i) f(i, i);
    return;
  }
  const auto d = [&](size_t k) { return static_cast<size_t>(shape_a[k]); };
  size_t i = 0;
  if (layout == LayoutMatch::nchw_from_nhwc) {  // A [N,C,H,W], B [N,H,W,C]
    const size_t n_ = d(0), c_ = d(1), h_ = d(2), w_ = d(3);
    for (size_t n = 0; n < n_; ++n)
      for (size_t c = 0; c < c_; ++c)
        for (size_t h = 0; h < h_; ++h)
          for (size_t w = 0; w < w_; ++w) f(i++, ((n * h_ + h) * w_ + w) * c_ + c);
  } else {  // A [N,H,W,C], B [N,C,H,W]
    const size_t n_ = d(0), h_ = d(1), w_ = d(2), c_ = d(3);
    for (size_t n = 0; n < n_; ++n)
      for (size_t h = 0; h < h_; ++h)
        for (size_t w = 0; w < w_; ++w)
          for (size_t c = 0; c < c_; ++c) f(i++, ((n * c_ + c) * h_ + h) * w_ + w);
  }
}

// Number of elements a shape describes, or nullopt for a negative size.
std::optional<size_t> element_count(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    count *= static_cast<size_t>(dim);
  }
  return count;
}

// Lower case with everything but letters and digits dropped: "CONV_2D" -> "conv2d", "Relu" ->
// "relu", so ONNX's and TFLite's spellings of one op compare equal.
std::string normalized_op(const std::string& op) {
  std::string out;
  for (const char ch : op)
    if (std::isalnum(static_cast<unsigned char>(ch)))
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  return out;
}

struct Family {
  const char* name;
  std::vector<const char*> ops;         // normalised op types of ONNX and TFLite
  std::vector<const char*> substrings;  // parts of fused kernel names (TVM, ORT's FusedConv)
};

// The op-family table of docs/LOCALIZE.md ("Matching"); keep the two in step.
const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {"conv",
       {"conv", "convtranspose", "convinteger", "qlinearconv", "fusedconv", "conv2d",
        "depthwiseconv2d", "transposeconv", "conv3d"},
       {"conv"}},
      {"activation",
       {"relu", "leakyrelu", "prelu", "clip", "hardsigmoid", "hardswish", "sigmoid", "tanh", "elu",
        "selu", "gelu", "softplus", "mish", "relu6", "relu0to1", "relun1to1", "logistic"},
       {"relu", "clip", "sigmoid", "swish", "tanh", "gelu"}},
      {"dense",
       {"gemm", "matmul", "matmulinteger", "qlinearmatmul", "fullyconnected", "batchmatmul"},
       {"matmul", "dense", "gemm", "fullyconnected"}},
      {"pool",
       {"averagepool", "maxpool", "globalaveragepool", "globalmaxpool", "averagepool2d",
        "maxpool2d", "l2pool2d", "mean", "reducemean", "reducemax"},
       {"pool"}},
      {"softmax", {"softmax", "logsoftmax"}, {"softmax"}},
      {"reshape",
       {"reshape", "flatten", "squeeze", "unsqueeze", "expanddims", "identity"},
       {"reshape", "flatten", "squeeze"}},
      {"add", {"add", "sum", "addn"}, {}},
      {"mul", {"mul"}, {}},
      {"pad", {"pad", "padv2", "mirrorpad"}, {"pad"}},
      {"concat", {"concat", "concatenation"}, {"concat"}},
      {"norm",
       {"batchnormalization", "instancenormalization", "layernormalization"},
       {"batchnorm", "layernorm"}},
      {"transpose", {"transpose"}, {"transpose"}},
  };
  return table;
}

// Families that can carry an activation or a normalisation fused into them (TFLite's fused
// activation on CONV_2D/ADD/FULLY_CONNECTED, ORT's FusedConv, folded BatchNorm): the fused op's
// output is the activation's, so an activation on one side may pair with one of these freely.
bool fusable(const std::vector<std::string>& tail, const std::vector<std::string>& host) {
  static const std::set<std::string> tails = {"activation", "norm"};
  static const std::set<std::string> hosts = {"conv", "dense",  "add", "mul",
                                              "pool", "concat", "norm"};
  for (const auto& t : tail)
    if (tails.count(t))
      for (const auto& h : host)
        if (hosts.count(h)) return true;
  return false;
}

// The op part of a pair's cost (MatchCosts).
double op_penalty(const std::string& op_a, const std::string& op_b, const MatchCosts& costs) {
  if (op_a.empty() || op_b.empty()) return costs.op_unknown;
  if (normalized_op(op_a) == normalized_op(op_b)) return 0;
  const auto fa = op_families(op_a), fb = op_families(op_b);
  for (const auto& f : fa)
    if (std::find(fb.begin(), fb.end(), f) != fb.end()) return 0;
  if (fusable(fa, fb) || fusable(fb, fa)) return 0;
  return costs.op_mismatch;
}

// min(rel_l2, 1): beyond 1 the tensors are unrelated, however far apart; NaN counts as 1.
double capped(double rel) { return rel < 1 ? rel : 1.0; }

// The layout under which B is closest to A and its cost (capped rel_l2 plus the transpose
// penalty); nullopt when no layout fits.
std::optional<std::pair<LayoutMatch, double>> best_layout(const LayerTensor& a,
                                                          const LayerTensor& b,
                                                          const MatchCosts& costs) {
  std::optional<std::pair<LayoutMatch, double>> best;
  for (const LayoutMatch layout : compatible_layouts(a.shape, b.shape)) {
    const Difference d = difference(a, b, layout);
    if (!d.comparable) continue;
    const double cost = capped(d.rel_l2) + (layout == LayoutMatch::same ? 0 : costs.transpose);
    if (!best || cost < best->second) best = std::pair{layout, cost};
  }
  return best;
}

// Aligns A's tensors `sa` with B's `sb` (indices into the captures, each in execution order) by
// the least total cost: a pair costs best_layout's cost plus op_penalty, a skipped tensor
// costs.gap. Needleman-Wunsch over the (|sa|+1) x (|sb|+1) table; on equal cost a pair is
// preferred to skips.
void align(const LayerCapture& a, const LayerCapture& b, const std::vector<size_t>& sa,
           const std::vector<size_t>& sb, const MatchCosts& costs, std::vector<TensorMatch>& out) {
  const size_t n = sa.size(), m = sb.size();
  if (n == 0 || m == 0) return;
  const size_t width = m + 1;
  std::vector<double> total((n + 1) * width);
  enum Move : uint8_t { kPair, kSkipA, kSkipB };
  std::vector<uint8_t> move((n + 1) * width, kSkipA), layout((n + 1) * width, 0);
  for (size_t j = 0; j <= m; ++j) {
    total[j] = static_cast<double>(j) * costs.gap;
    move[j] = kSkipB;
  }
  for (size_t i = 1; i <= n; ++i) {
    total[i * width] = static_cast<double>(i) * costs.gap;
    move[i * width] = kSkipA;
    const LayerTensor& ta = a.tensors[sa[i - 1]];
    for (size_t j = 1; j <= m; ++j) {
      const size_t cell = i * width + j;
      double best = total[cell - width] + costs.gap;
      uint8_t how = kSkipA;
      if (total[cell - 1] + costs.gap < best) {
        best = total[cell - 1] + costs.gap;
        how = kSkipB;
      }
      const LayerTensor& tb = b.tensors[sb[j - 1]];
      if (const auto fit = best_layout(ta, tb, costs)) {
        const double pair = total[cell - width - 1] + fit->second + op_penalty(ta.op, tb.op, costs);
        if (pair <= best) {
          best = pair;
          how = kPair;
          layout[cell] = static_cast<uint8_t>(fit->first);
        }
      }
      total[cell] = best;
      move[cell] = how;
    }
  }
  for (size_t i = n, j = m; i > 0 || j > 0;) {
    const size_t cell = i * width + j;
    if (move[cell] == kPair) {
      out.push_back({sa[i - 1], sb[j - 1], false, static_cast<LayoutMatch>(layout[cell])});
      --i;
      --j;
    } else if (move[cell] == kSkipA) {
      --i;
    } else {
      --j;
    }
  }
}

// The longest chain of name matches increasing in both captures (pairs sorted by A's index; a
// longest strictly increasing subsequence of B's indices). They anchor the alignment: structural
// matches never cross them.
std::vector<TensorMatch> anchors(const std::vector<TensorMatch>& by_name) {
  std::vector<size_t> tails, previous(by_name.size(), SIZE_MAX);
  for (size_t k = 0; k < by_name.size(); ++k) {
    const auto at = std::lower_bound(tails.begin(), tails.end(), by_name[k].b,
                                     [&](size_t t, size_t b) { return by_name[t].b < b; });
    if (at != tails.begin()) previous[k] = *(at - 1);
    if (at == tails.end())
      tails.push_back(k);
    else
      *at = k;
  }
  std::vector<TensorMatch> chain;
  for (size_t k = tails.empty() ? SIZE_MAX : tails.back(); k != SIZE_MAX; k = previous[k])
    chain.push_back(by_name[k]);
  std::reverse(chain.begin(), chain.end());
  return chain;
}

}  // namespace

std::vector<bool> first_of_each_name(const LayerCapture& c) {
  std::set<std::string> seen;
  std::vector<bool> first(c.tensors.size());
  for (size_t i = 0; i < c.tensors.size(); ++i) first[i] = seen.insert(c.tensors[i].name).second;
  return first;
}

LayerTensor in_layout_of(const LayerTensor& b, LayoutMatch layout,
                         const std::vector<int64_t>& shape_a) {
  if (layout == LayoutMatch::same) return b;
  LayerTensor out = b;
  out.shape = shape_a;
  for_each_pair(shape_a, b.values.size(), layout,
                [&](size_t ia, size_t ib) { out.values[ia] = b.values[ib]; });
  return out;
}

std::string layout_name(LayoutMatch layout) {
  switch (layout) {
    case LayoutMatch::nchw_from_nhwc:
      return "nchw<-nhwc";
    case LayoutMatch::nhwc_from_nchw:
      return "nhwc<-nchw";
    case LayoutMatch::same:
      break;
  }
  return "";
}

std::vector<LayoutMatch> compatible_layouts(const std::vector<int64_t>& a,
                                            const std::vector<int64_t>& b) {
  std::vector<LayoutMatch> out;
  if (same_layout(a, b)) out.push_back(LayoutMatch::same);
  if (a.size() == 4 && b.size() == 4 && a[0] == b[0]) {
    // B [N,H,W,C] against A [N,C,H,W].
    if (b[1] == a[2] && b[2] == a[3] && b[3] == a[1]) out.push_back(LayoutMatch::nchw_from_nhwc);
    // B [N,C,H,W] against A [N,H,W,C].
    if (b[1] == a[3] && b[2] == a[1] && b[3] == a[2]) out.push_back(LayoutMatch::nhwc_from_nchw);
  }
  return out;
}

std::vector<std::string> op_families(const std::string& op) {
  const std::string key = normalized_op(op);
  std::vector<std::string> out;
  if (key.empty()) return out;
  for (const Family& family : families()) {
    bool member = std::find_if(family.ops.begin(), family.ops.end(),
                               [&](const char* o) { return key == o; }) != family.ops.end();
    for (const char* part : family.substrings) member = member || key.find(part) != key.npos;
    if (member) out.push_back(family.name);
  }
  return out;
}

std::string TensorMatch::method() const {
  const std::string base = by_name ? "name" : output ? "output" : "structure";
  return layout == LayoutMatch::same ? base : base + "+" + layout_name(layout);
}

Difference difference(const LayerTensor& a, const LayerTensor& b) {
  return difference(a, b, LayoutMatch::same);
}

Difference difference(const LayerTensor& a, const LayerTensor& b, LayoutMatch layout) {
  Difference d;
  const auto fits = compatible_layouts(a.shape, b.shape);
  const bool sized = layout == LayoutMatch::same ? a.values.size() == b.values.size()
                                                 : element_count(a.shape) == a.values.size() &&
                                                       element_count(b.shape) == b.values.size();
  if (std::find(fits.begin(), fits.end(), layout) == fits.end() || !sized) {
    d.comparable = false;
    return d;
  }
  // The comparator's rules (compare_tensors.h), with B's values read in A's layout.
  DifferenceAccumulator sums;
  for_each_pair(a.shape, a.values.size(), layout,
                [&](size_t ia, size_t ib) { sums.add(a.values[ia], b.values[ib]); });
  const ValueComparison c = sums.result();
  d.max_abs = c.max_abs;
  d.mean_abs = c.mean_abs();
  if (c.nonfinite_mismatches > 0)
    d.rel_l2 = kInf;
  else if (c.diff_sq == 0)
    d.rel_l2 = 0;
  else
    d.rel_l2 = c.b_sq > 0 ? std::sqrt(c.diff_sq) / std::sqrt(c.b_sq) : kInf;
  return d;
}

std::vector<TensorMatch> match_tensors(const LayerCapture& a, const LayerCapture& b,
                                       const MatchOptions& options,
                                       std::vector<std::string>* notes) {
  const auto first_a = first_of_each_name(a), first_b = first_of_each_name(b);
  std::map<std::string, size_t> names_b;
  for (size_t j = 0; j < b.tensors.size(); ++j)
    if (first_b[j]) names_b.emplace(b.tensors[j].name, j);

  std::vector<TensorMatch> matches;
  std::vector<bool> taken_a(a.tensors.size()), taken_b(b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    if (!first_a[i]) continue;
    const auto found = names_b.find(a.tensors[i].name);
    if (found == names_b.end()) continue;
    TensorMatch match{i, found->second, true, LayoutMatch::same};
    // Same name, other layout: a converter that keeps names but moves C (read B transposed).
    if (!same_layout(a.tensors[i].shape, b.tensors[found->second].shape))
      if (const auto fit = best_layout(a.tensors[i], b.tensors[found->second], options.costs))
        match.layout = fit->first;
    matches.push_back(match);
    taken_a[i] = taken_b[found->second] = true;
  }
  if (!options.structural) return matches;

  // Both captures end with the model's output, so those two correspond by definition. Pairing them
  // first keeps a converter's split of the last layer (Gemm -> MatMul + Add) from pairing A's
  // output with B's pre-bias tensor, which is as close as any when the bias is small.
  if (!a.tensors.empty() && !b.tensors.empty()) {
    const size_t ia = a.tensors.size() - 1, jb = b.tensors.size() - 1;
    if (first_a[ia] && first_b[jb] && !taken_a[ia] && !taken_b[jb]) {
      std::optional<LayoutMatch> layout;
      if (same_layout(a.tensors[ia].shape, b.tensors[jb].shape))
        layout = LayoutMatch::same;
      else if (const auto fit = best_layout(a.tensors[ia], b.tensors[jb], options.costs))
        layout = fit->first;
      if (layout) {
        TensorMatch m{ia, jb, false, *layout};
        m.output = true;
        matches.push_back(m);
        taken_a[ia] = taken_b[jb] = true;
      }
    }
  }

  // Each stretch between consecutive anchors is aligned on its own; name matches that are not
  // anchors (B ran them in another order) are matched already and take no part.
  auto chain = anchors(matches);
  chain.push_back({a.tensors.size(), b.tensors.size(), true, LayoutMatch::same});  // the end
  std::vector<TensorMatch> structural;
  size_t from_a = 0, from_b = 0;
  for (const TensorMatch& anchor : chain) {
    std::vector<size_t> sa, sb;
    for (size_t i = from_a; i < anchor.a; ++i)
      if (first_a[i] && !taken_a[i]) sa.push_back(i);
    for (size_t j = from_b; j < anchor.b; ++j)
      if (first_b[j] && !taken_b[j]) sb.push_back(j);
    if (sa.size() * sb.size() > options.costs.max_cells) {
      if (notes)
        notes->push_back("not aligned structurally: " + std::to_string(sa.size()) +
                         " tensors of A against " + std::to_string(sb.size()) +
                         " of B between two name matches exceed " +
                         std::to_string(options.costs.max_cells) + " pairs");
    } else {
      align(a, b, sa, sb, options.costs, structural);
    }
    from_a = anchor.a + 1;
    from_b = anchor.b + 1;
  }
  matches.insert(matches.end(), structural.begin(), structural.end());
  std::sort(matches.begin(), matches.end(),
            [](const TensorMatch& x, const TensorMatch& y) { return x.a < y.a; });
  return matches;
}

}  // namespace deltann
