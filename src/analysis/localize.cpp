#include "deltann/localize.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "deltann/compare_tensors.h"
#include "deltann/error.h"
#include "deltann/json_number.h"
#include "deltann/tensor.h"
#include "deltann/text.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<int64_t> squeezed(const std::vector<int64_t>& shape) {
  std::vector<int64_t> out;
  for (const int64_t d : shape)
    if (d != 1) out.push_back(d);
  return out;
}

// Numbers JSON cannot hold (infinite growth, NaN) are written as words (json_number.h).
json number(double v) { return json_number(v); }

std::string sci(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  return format_double("%.2e", v);
}

std::string growth_text(const std::optional<double>& g) {
  if (!g) return "-";
  if (std::isinf(*g)) return "inf";
  return format_double(*g >= 100 ? "%.0fx" : "%.1fx", *g);
}

std::string clipped(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  return s.substr(0, width - 3) + "...";
}

// Long tensor names differ at their end ("/_blocks.15/_project_conv/Conv_output_0"): keep it.
std::string clipped_front(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  return "..." + s.substr(s.size() - (width - 3));
}

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

// "a" when A is farther from the reference, "b" when B is, "tie" when equally far.
std::string farther(double rel_a, double rel_b) {
  if (rel_a > rel_b) return "a";
  if (rel_b > rel_a) return "b";
  return "tie";
}

}  // namespace

LayerCapture read_capture(const fs::path& index, const std::string& env) {
  std::ifstream in(index, std::ios::binary);
  if (!in) throw Error(env + ": cannot open capture index " + index.string());
  const json j = json::parse(in, nullptr, false);
  const auto bad = [&](const std::string& what) {
    return Error(env + ": capture index " + index.string() + ": " + what);
  };
  if (!j.is_object() || !j.contains("tensors") || !j.at("tensors").is_array())
    throw bad("not a JSON object with a 'tensors' array");
  LayerCapture capture;
  capture.env = env;
  if (j.contains("mode") && j.at("mode").is_string()) capture.mode = j.at("mode");
  for (const auto& entry : j.at("tensors")) {
    if (!entry.is_object() || !entry.contains("name") || !entry.at("name").is_string() ||
        !entry.contains("file") || !entry.at("file").is_string())
      throw bad("an entry lacks 'name' or 'file': " + entry.dump().substr(0, 200));
    LayerTensor t;
    t.name = entry.at("name");
    if (entry.contains("op") && entry.at("op").is_string()) t.op = entry.at("op");
    if (entry.contains("inputs") && entry.at("inputs").is_array())
      for (const auto& name : entry.at("inputs"))
        if (name.is_string()) t.inputs.push_back(name);
    // Only a plain file name beside the index: the index must not point anywhere else.
    const std::string file = entry.at("file");
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      throw bad("tensor file '" + file + "' is not a plain file name");
    t.values = read_npy_f64(index.parent_path() / file, t.shape);
    if (entry.contains("shape") && entry.at("shape").is_array()) {
      std::vector<int64_t> declared;
      for (const auto& d : entry.at("shape"))
        declared.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
      if (declared != t.shape)
        throw bad("tensor '" + t.name + "' is declared " + shape_text(declared) + " but " + file +
                  " holds " + shape_text(t.shape));
    }
    capture.tensors.push_back(std::move(t));
  }
  return capture;
}

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

// B's values rearranged into A's layout (and given A's shape), for comparisons with a third tensor.
LayerTensor in_layout_of(const LayerTensor& b, LayoutMatch layout,
                         const std::vector<int64_t>& shape_a) {
  if (layout == LayoutMatch::same) return b;
  LayerTensor out = b;
  out.shape = shape_a;
  for_each_pair(shape_a, b.values.size(), layout,
                [&](size_t ia, size_t ib) { out.values[ia] = b.values[ib]; });
  return out;
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

// For each tensor, whether it is the first of its name in its capture (later ones are ignored).
std::vector<bool> first_of_name(const LayerCapture& c) {
  std::set<std::string> seen;
  std::vector<bool> first(c.tensors.size());
  for (size_t i = 0; i < c.tensors.size(); ++i) first[i] = seen.insert(c.tensors[i].name).second;
  return first;
}

}  // namespace

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
                                       const LocalizeOptions& options,
                                       std::vector<std::string>* notes) {
  const auto first_a = first_of_name(a), first_b = first_of_name(b);
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

std::map<std::string, size_t> match_counts(const Localization& l) {
  std::map<std::string, size_t> counts;
  for (const auto& r : l.layers) ++counts[r.match];
  return counts;
}

Localization localize(const LayerCapture& a, const LayerCapture& b,
                      const std::vector<LayerCapture>& references, const LocalizeOptions& options) {
  Localization l;
  l.env_a = a.env;
  l.env_b = b.env;
  l.mode_a = a.mode;
  l.mode_b = b.mode;
  const auto matches = match_tensors(a, b, options, &l.notes);
  std::vector<bool> matched_a(a.tensors.size()), matched_b(b.tensors.size());
  for (const auto& m : matches) matched_a[m.a] = matched_b[m.b] = true;

  std::map<std::string, double> rel_of;  // A's names of the comparable layers measured so far
  std::optional<double> previous;
  for (const TensorMatch& m : matches) {
    const LayerTensor& ta = a.tensors[m.a];
    const LayerTensor& tb = b.tensors[m.b];
    LayerReport r;
    r.position = m.a;
    r.name = ta.name;
    r.name_b = tb.name;
    r.match = m.method();
    r.layout = m.layout;
    r.op_a = ta.op;
    r.op_b = tb.op;
    r.shape_a = ta.shape;
    r.shape_b = tb.shape;
    r.diff = difference(ta, tb, m.layout);
    if (r.diff.comparable) {
      // Inputs are A's names, so they are found whichever way their layers were matched.
      double basis = 0;
      r.growth_basis = "input";
      if (!ta.inputs.empty()) {
        for (const auto& input : ta.inputs)
          if (const auto e = rel_of.find(input); e != rel_of.end()) {
            basis = std::max(basis, e->second);
            r.growth_basis = "inputs";
          }
      } else if (previous) {
        basis = *previous;
        r.growth_basis = "previous";
      }
      const double rel = r.diff.rel_l2;
      r.growth = basis > 0 ? rel / basis : (rel > 0 ? kInf : 1.0);
      r.above = rel > options.threshold && r.diff.max_abs > options.atol;
      rel_of[ta.name] = rel;
      previous = rel;
      if (r.above) ++l.above_count;
    }
    l.layers.push_back(std::move(r));
  }
  const auto first_a = first_of_name(a), first_b = first_of_name(b);
  for (size_t i = 0; i < a.tensors.size(); ++i)
    if (first_a[i] && !matched_a[i]) l.only_a.push_back(a.tensors[i].name);
  for (size_t j = 0; j < b.tensors.size(); ++j)
    if (first_b[j] && !matched_b[j]) l.only_b.push_back(b.tensors[j].name);

  for (size_t i = 0; i < l.layers.size() && !l.jump; ++i)
    if (l.layers[i].above && l.layers[i].growth && *l.layers[i].growth > options.growth) {
      l.jump = i;
      l.jump_rule = "growth";
    }
  for (size_t i = 0; i < l.layers.size() && !l.jump; ++i)
    if (l.layers[i].above) {
      l.jump = i;
      l.jump_rule = "threshold";
    }

  // B's tensor of each layer, by A's index, to compare with the references in A's layout.
  std::map<size_t, const TensorMatch*> b_of;
  for (const auto& m : matches) b_of[m.a] = &m;
  std::vector<std::string> decided;
  for (const auto& ref : references) {
    // The reference is matched with A the same way B is, so it may rename tensors too.
    std::map<size_t, TensorMatch> ref_of;
    for (const auto& m : match_tensors(a, ref, options, nullptr)) ref_of[m.a] = m;
    Vote vote;
    vote.env = ref.env;
    for (size_t i = 0; i < l.layers.size(); ++i) {
      LayerReport& r = l.layers[i];
      ReferenceDistance distance{ref.env, std::nullopt, std::nullopt};
      if (const auto t = ref_of.find(r.position); t != ref_of.end()) {
        const LayerTensor& ta = a.tensors[r.position];
        const LayerTensor& tr = ref.tensors[t->second.b];
        const TensorMatch& mb = *b_of.at(r.position);
        const Difference da = difference(ta, tr, t->second.layout);
        Difference db;
        if (mb.layout == LayoutMatch::same && t->second.layout == LayoutMatch::same)
          db = difference(b.tensors[mb.b], tr);
        else
          db = difference(in_layout_of(b.tensors[mb.b], mb.layout, ta.shape),
                          in_layout_of(tr, t->second.layout, ta.shape));
        if (da.comparable) distance.rel_a = da.rel_l2;
        if (db.comparable) distance.rel_b = db.rel_l2;
      }
      if (distance.rel_a && distance.rel_b) {
        if (l.jump && *l.jump == i) vote.at_jump = farther(*distance.rel_a, *distance.rel_b);
        if (r.above) {
          const std::string side = farther(*distance.rel_a, *distance.rel_b);
          vote.layers_a += side == "a";
          vote.layers_b += side == "b";
        }
      }
      r.references.push_back(std::move(distance));
    }
    vote.majority = vote.layers_a > vote.layers_b   ? "a"
                    : vote.layers_b > vote.layers_a ? "b"
                                                    : "tie";
    // The jump layer decides; the majority over the disagreeing layers breaks its silence.
    const std::string side =
        !vote.at_jump.empty() && vote.at_jump != "tie" ? vote.at_jump : vote.majority;
    decided.push_back(side);
    l.votes.push_back(std::move(vote));
  }
  if (!decided.empty()) {
    const bool unanimous = std::all_of(decided.begin(), decided.end(),
                                       [&](const std::string& s) { return s == decided.front(); });
    l.verdict = unanimous && decided.front() != "tie" ? decided.front() : "undecided";
  }
  return l;
}

namespace {

json layer_json(const LayerReport& r) {
  json j = {{"position", r.position}, {"name", r.name},       {"name_b", r.name_b},
            {"match", r.match},       {"op_a", r.op_a},       {"op_b", r.op_b},
            {"shape_a", r.shape_a},   {"shape_b", r.shape_b}, {"comparable", r.diff.comparable}};
  if (r.diff.comparable) {
    j["max_abs"] = number(r.diff.max_abs);
    j["mean_abs"] = number(r.diff.mean_abs);
    j["rel_l2"] = number(r.diff.rel_l2);
    j["growth"] = number(*r.growth);
    j["growth_basis"] = r.growth_basis;
    j["above_threshold"] = r.above;
  }
  if (!r.references.empty()) {
    json refs = json::array();
    for (const auto& d : r.references) {
      json one = {{"env", d.env}};
      one["rel_a"] = d.rel_a ? number(*d.rel_a) : json(nullptr);
      one["rel_b"] = d.rel_b ? number(*d.rel_b) : json(nullptr);
      refs.push_back(one);
    }
    j["references"] = refs;
  }
  return j;
}

}  // namespace

json to_json(const Localization& l, const LocalizeOptions& options) {
  json j;
  j["a"] = {{"env", l.env_a}, {"mode", l.mode_a}};
  j["b"] = {{"env", l.env_b}, {"mode", l.mode_b}};
  j["options"] = {
      {"threshold", options.threshold}, {"growth", options.growth}, {"atol", options.atol}};
  j["matched"] = l.layers.size();
  j["match_counts"] = match_counts(l);
  j["only_a"] = l.only_a;
  j["only_b"] = l.only_b;
  j["unmatched"] = {{"a", l.only_a.size()}, {"b", l.only_b.size()}};
  if (!l.notes.empty()) j["notes"] = l.notes;
  j["above_threshold"] = l.above_count;
  if (l.jump) {
    j["jump"] = layer_json(l.layers[*l.jump]);
    j["jump"]["rule"] = l.jump_rule;
  } else {
    j["jump"] = nullptr;
  }
  json layers = json::array();
  for (const auto& r : l.layers) layers.push_back(layer_json(r));
  j["layers"] = layers;
  json votes = json::array();
  for (const auto& v : l.votes)
    votes.push_back({{"reference", v.env},
                     {"at_jump", v.at_jump.empty() ? json(nullptr) : json(v.at_jump)},
                     {"layers_a_farther", v.layers_a},
                     {"layers_b_farther", v.layers_b},
                     {"majority", v.majority}});
  j["votes"] = votes;
  j["verdict"] = l.verdict.empty() ? json(nullptr) : json(l.verdict);
  return j;
}

std::string localization_text(const Localization& l, const LocalizeOptions& options, size_t rows) {
  std::ostringstream out;
  out << "A: " << l.env_a << "\n   capture: " << l.mode_a << "\n";
  out << "B: " << l.env_b << "\n   capture: " << l.mode_b << "\n";
  const auto counts = match_counts(l);
  const bool all_by_name =
      counts.size() <= 1 && (counts.empty() || counts.begin()->first == "name");
  out << "matched " << l.layers.size() << " layers";
  if (all_by_name) {
    out << " by name";
  } else {
    std::string sep = ": ";
    for (const auto& [method, count] : counts) {
      out << sep << count << " by " << method;
      sep = ", ";
    }
  }
  out << "; only in A: " << l.only_a.size() << ", only in B: " << l.only_b.size() << "\n";
  for (const auto& note : l.notes) out << "  note: " << note << "\n";
  const auto name_list = [](const std::vector<std::string>& names) {
    std::string text;
    for (size_t i = 0; i < names.size() && i < 5; ++i) text += (i ? ", " : "") + names[i];
    return names.size() > 5 ? text + ", ..." : text;
  };
  if (!l.only_a.empty()) out << "  only in A: " << name_list(l.only_a) << "\n";
  if (!l.only_b.empty()) out << "  only in B: " << name_list(l.only_b) << "\n";
  if (l.layers.empty()) {
    out << "no tensors matched: nothing to compare\n";
    return out.str();
  }

  // The window: around the jump, else around the largest relative error.
  size_t center = 0;
  if (l.jump) {
    center = *l.jump;
  } else {
    for (size_t i = 0; i < l.layers.size(); ++i)
      if (l.layers[i].diff.comparable && !(l.layers[i].diff.rel_l2 <= l.layers[center].diff.rel_l2))
        center = i;
  }
  const size_t first = center > rows / 4 ? center - rows / 4 : 0;
  const size_t last = std::min(l.layers.size(), first + rows);
  // Only a table with structural matches gets B's names and the method: name matches keep the
  // narrower table.
  const auto short_method = [](const LayerReport& r) {
    const std::string base = r.match.rfind("name", 0) == 0 ? "name" : "str";
    return r.layout == LayoutMatch::same ? base : base + "+T";
  };
  out << "\n  " << pad("#", 5) << pad("layer", 42);
  if (!all_by_name) out << pad("B layer", 32) << pad("by", 7);
  out << pad("op", 14) << pad("shape", 18) << pad("max|a-b|", 10) << pad("mean|a-b|", 10)
      << pad("rel L2", 10) << "growth\n";
  if (first > 0) out << "  ... " << first << " layers before\n";
  for (size_t i = first; i < last; ++i) {
    const LayerReport& r = l.layers[i];
    out << (l.jump && *l.jump == i ? "> " : "  ") << pad(std::to_string(r.position), 5)
        << pad(clipped_front(r.name, 40), 42);
    if (!all_by_name)
      out << pad(r.name_b == r.name ? "=" : clipped_front(r.name_b, 30), 32)
          << pad(short_method(r), 7);
    out << pad(clipped(r.op_a, 12), 14) << pad(clipped(shape_text(r.shape_a), 16), 18);
    if (!r.diff.comparable) {
      out << "shapes differ: B has " << shape_text(r.shape_b) << "\n";
      continue;
    }
    out << pad(sci(r.diff.max_abs), 10) << pad(sci(r.diff.mean_abs), 10)
        << pad(sci(r.diff.rel_l2), 10) << growth_text(r.growth) << (r.above ? " *" : "") << "\n";
  }
  if (last < l.layers.size()) out << "  ... " << l.layers.size() - last << " layers after\n";
  if (!all_by_name)
    out << "  (by: name = same tensor name, str = structural alignment, +T = B's values transposed "
           "into A's layout, NHWC<->NCHW; = : B's name is A's)\n";

  out << "\n"
      << l.above_count << " of " << l.layers.size() << " matched layers above rel L2 "
      << sci(options.threshold) << (options.atol > 0 ? " and max|a-b| " + sci(options.atol) : "")
      << " (*)\n";
  if (l.jump) {
    const LayerReport& r = l.layers[*l.jump];
    out << "first jump: layer " << r.position << " '" << r.name << "' (" << r.op_a
        << (r.op_b.empty() || r.op_b == r.op_a ? "" : " / " + r.op_b) << ")"
        << (r.name_b == r.name ? "" : " = B's '" + r.name_b + "' (" + r.match + ")") << ": rel L2 "
        << sci(r.diff.rel_l2) << ", growth " << growth_text(r.growth) << " over its "
        << (r.growth_basis == "inputs"     ? "inputs"
            : r.growth_basis == "previous" ? "previous matched layer"
                                           : "input (identical)")
        << (l.jump_rule == "growth"
                ? ""
                : "; no layer grew by more than " + growth_text(options.growth) +
                      ", so this is the first above the threshold")
        << "\n";
  } else {
    out << "no layer differs above the threshold: A and B agree layer by layer\n";
  }
  const LayerReport& final_layer = l.layers.back();
  if (final_layer.diff.comparable)
    out << "last matched layer '" << final_layer.name << "': rel L2 "
        << sci(final_layer.diff.rel_l2) << ", max|a-b| " << sci(final_layer.diff.max_abs) << "\n";
  for (const auto& v : l.votes) {
    out << "reference " << v.env << ": ";
    if (l.jump) {
      const ReferenceDistance* d = nullptr;
      for (const auto& rd : l.layers[*l.jump].references)
        if (rd.env == v.env) d = &rd;
      if (d && d->rel_a && d->rel_b)
        out << "at the jump A is " << sci(*d->rel_a) << " and B " << sci(*d->rel_b)
            << " from it (farther: " << (v.at_jump == "tie" ? "neither" : v.at_jump) << "); ";
      else
        out << "no comparable tensor at the jump; ";
    }
    out << "over the layers above the threshold A is farther on " << v.layers_a << ", B on "
        << v.layers_b << "\n";
  }
  if (!l.verdict.empty())
    out << "verdict: "
        << (l.verdict == "a"   ? "A deviates (" + l.env_a + ")"
            : l.verdict == "b" ? "B deviates (" + l.env_b + ")"
                               : std::string("undecided"))
        << "\n";
  return out.str();
}

}  // namespace deltann
