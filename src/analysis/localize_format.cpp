// Writing a localisation (localize_format.h): the JSON document and the terminal table.
#include "deltann/localize_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/json_number.h"
#include "deltann/tensor.h"
#include "deltann/text.h"

namespace deltann {
using nlohmann::json;

namespace {

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

namespace {

// The matching summary: A and B, how many layers were matched and how, and what was left over.
void write_matching(std::ostringstream& out, const Localization& l, bool all_by_name) {
  out << "A: " << l.env_a << "\n   capture: " << l.mode_a << "\n";
  out << "B: " << l.env_b << "\n   capture: " << l.mode_b << "\n";
  out << "matched " << l.layers.size() << " layers";
  if (all_by_name) {
    out << " by name";
  } else {
    std::string sep = ": ";
    for (const auto& [method, count] : match_counts(l)) {
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
}

// The table of `rows` layers around the jump, else around the largest relative error.
void write_layer_table(std::ostringstream& out, const Localization& l, bool all_by_name,
                       size_t rows) {
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
}

// How many layers disagree, the first jump (or that there is none) and the last layer.
void write_jump(std::ostringstream& out, const Localization& l, const LocalizeOptions& options) {
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
}

// Each reference's view of the jump and its vote, then the verdict.
void write_votes(std::ostringstream& out, const Localization& l) {
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
}

}  // namespace

std::string localization_text(const Localization& l, const LocalizeOptions& options, size_t rows) {
  std::ostringstream out;
  const auto counts = match_counts(l);
  const bool all_by_name =
      counts.size() <= 1 && (counts.empty() || counts.begin()->first == "name");
  write_matching(out, l, all_by_name);
  if (l.layers.empty()) {
    out << "no tensors matched: nothing to compare\n";
    return out.str();
  }
  write_layer_table(out, l, all_by_name, rows);
  write_jump(out, l, options);
  write_votes(out, l);
  return out.str();
}

}  // namespace deltann
