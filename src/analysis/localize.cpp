// The localisation core (localize.h): metrics per matched layer, the first-jump rule and the
// references' vote.
#include "deltann/localize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace deltann {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// "a" when A is farther from the reference, "b" when B is, "tie" when equally far.
std::string farther(double rel_a, double rel_b) {
  if (rel_a > rel_b) return "a";
  if (rel_b > rel_a) return "b";
  return "tie";
}

}  // namespace

std::map<std::string, size_t> match_counts(const Localization& l) {
  std::map<std::string, size_t> counts;
  for (const auto& r : l.layers) ++counts[r.match];
  return counts;
}

namespace {

// Measures the matched layers in A's order: metrics with B read in A's layout, growth over the
// layer's inputs (or the previous matched layer) and whether the layer is above the threshold.
void measure_layers(const LayerCapture& a, const LayerCapture& b,
                    const std::vector<TensorMatch>& matches, const LocalizeOptions& options,
                    Localization& l) {
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
}

// The names of each capture that no match took (the first tensor of each name only).
void list_unmatched(const LayerCapture& a, const LayerCapture& b,
                    const std::vector<TensorMatch>& matches, Localization& l) {
  std::vector<bool> matched_a(a.tensors.size()), matched_b(b.tensors.size());
  for (const auto& m : matches) matched_a[m.a] = matched_b[m.b] = true;
  const auto first_a = first_of_each_name(a), first_b = first_of_each_name(b);
  for (size_t i = 0; i < a.tensors.size(); ++i)
    if (first_a[i] && !matched_a[i]) l.only_a.push_back(a.tensors[i].name);
  for (size_t j = 0; j < b.tensors.size(); ++j)
    if (first_b[j] && !matched_b[j]) l.only_b.push_back(b.tensors[j].name);
}

// The first-jump rule: the first layer above the threshold whose error grew by more than
// options.growth, else the first layer above the threshold.
void find_jump(const LocalizeOptions& options, Localization& l) {
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
}

// How far A's and B's tensors of one layer are from the reference's tensor `tr` (matched with
// A's by `mr`), both read in A's layout.
ReferenceDistance reference_distance(const LayerTensor& ta, const LayerTensor& tb,
                                     const TensorMatch& mb, const LayerTensor& tr,
                                     const TensorMatch& mr, const std::string& env) {
  ReferenceDistance distance{env, std::nullopt, std::nullopt};
  const Difference da = difference(ta, tr, mr.layout);
  Difference db;
  if (mb.layout == LayoutMatch::same && mr.layout == LayoutMatch::same)
    db = difference(tb, tr);
  else
    db = difference(in_layout_of(tb, mb.layout, ta.shape), in_layout_of(tr, mr.layout, ta.shape));
  if (da.comparable) distance.rel_a = da.rel_l2;
  if (db.comparable) distance.rel_b = db.rel_l2;
  return distance;
}

// One reference's vote: its distance to A and B at every matched layer (appended to the layers'
// `references`), which side is farther at the jump and over the layers above the threshold.
Vote vote_of(const LayerCapture& a, const LayerCapture& b, const LayerCapture& ref,
             const std::vector<TensorMatch>& matches, const LocalizeOptions& options,
             Localization& l) {
  // B's tensor of each layer, by A's index, to compare with the reference in A's layout.
  std::map<size_t, const TensorMatch*> b_of;
  for (const auto& m : matches) b_of[m.a] = &m;
  // The reference is matched with A the same way B is, so it may rename tensors too.
  std::map<size_t, TensorMatch> ref_of;
  for (const auto& m : match_tensors(a, ref, options, nullptr)) ref_of[m.a] = m;
  Vote vote;
  vote.env = ref.env;
  for (size_t i = 0; i < l.layers.size(); ++i) {
    LayerReport& r = l.layers[i];
    ReferenceDistance distance{ref.env, std::nullopt, std::nullopt};
    if (const auto t = ref_of.find(r.position); t != ref_of.end()) {
      const TensorMatch& mb = *b_of.at(r.position);
      distance = reference_distance(a.tensors[r.position], b.tensors[mb.b], mb,
                                    ref.tensors[t->second.b], t->second, ref.env);
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
  vote.majority = vote.layers_a > vote.layers_b ? "a" : vote.layers_b > vote.layers_a ? "b" : "tie";
  return vote;
}

}  // namespace

Localization localize(const LayerCapture& a, const LayerCapture& b,
                      const std::vector<LayerCapture>& references, const LocalizeOptions& options) {
  Localization l;
  l.env_a = a.env;
  l.env_b = b.env;
  l.mode_a = a.mode;
  l.mode_b = b.mode;
  const auto matches = match_tensors(a, b, options, &l.notes);
  measure_layers(a, b, matches, options, l);
  list_unmatched(a, b, matches, l);
  find_jump(options, l);

  std::vector<std::string> decided;
  for (const auto& ref : references) {
    Vote vote = vote_of(a, b, ref, matches, options, l);
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

}  // namespace deltann
