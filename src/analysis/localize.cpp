#include "deltann/localize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "deltann/tensor.h"

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

// Numbers JSON cannot hold (infinite growth, NaN) are written as null (docs/LOCALIZE.md).
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string sci(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

std::string growth_text(const std::optional<double>& g) {
  if (!g) return "-";
  if (std::isinf(*g)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, *g >= 100 ? "%.0fx" : "%.1fx", *g);
  return buf;
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

std::vector<double> read_npy_f64(const fs::path& path, std::vector<int64_t>& shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open captured tensor " + path.string());
  char prefix[10];
  in.read(prefix, sizeof prefix);
  if (!in || std::string(prefix, 6) != "\x93NUMPY" || prefix[6] != 1)
    throw Error(path.string() + " is not a NumPy .npy (version 1) file");
  const size_t header_len = static_cast<unsigned char>(prefix[8]) |
                            (static_cast<size_t>(static_cast<unsigned char>(prefix[9])) << 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw Error(path.string() + ": truncated .npy header");
  if (header.find("'descr': '<f8'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw Error(path.string() + ": only little-endian float64 C-order tensors are captured");
  const auto open = header.find("'shape': (");
  const auto close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    throw Error(path.string() + ": .npy header has no shape");
  shape.clear();
  std::string dims = header.substr(open + 10, close - open - 10);
  std::replace(dims.begin(), dims.end(), ',', ' ');
  std::istringstream parse(dims);
  uint64_t count = 1;
  for (std::string token; parse >> token;) {
    if (token.find_first_not_of("0123456789") != std::string::npos || token.size() > 12)
      throw Error(path.string() + ": .npy shape '" + dims + "' is not a list of sizes");
    const int64_t d = std::stoll(token);
    shape.push_back(d);
    // Refuse products that would overflow before comparing them with the file's size.
    if (d != 0 && count > (uint64_t{1} << 40) / static_cast<uint64_t>(d))
      throw Error(path.string() + ": .npy shape " + shape_text(shape) + " is too large");
    count *= static_cast<uint64_t>(d);
  }
  const uint64_t data_bytes = fs::file_size(path) - sizeof prefix - header_len;
  if (data_bytes != count * sizeof(double))
    throw Error(path.string() + ": shape " + shape_text(shape) + " needs " +
                std::to_string(count * sizeof(double)) + " bytes of data, the file has " +
                std::to_string(data_bytes));
  std::vector<double> values(count);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(data_bytes));
  if (!in) throw Error(path.string() + ": truncated .npy data");
  return values;
}

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

Difference difference(const LayerTensor& a, const LayerTensor& b) {
  Difference d;
  if (!same_layout(a.shape, b.shape) || a.values.size() != b.values.size()) {
    d.comparable = false;
    return d;
  }
  double sum_abs = 0, sum_sq = 0, norm_b = 0;
  for (size_t i = 0; i < a.values.size(); ++i) {
    const double x = a.values[i], y = b.values[i];
    double e = 0;
    if (std::isnan(x) || std::isnan(y)) {
      e = std::isnan(x) == std::isnan(y) ? 0 : kInf;
    } else if (x != y) {  // also equal infinities
      e = std::fabs(x - y);
    }
    if (std::isfinite(y)) norm_b += y * y;
    d.max_abs = std::max(d.max_abs, e);
    sum_abs += e;
    sum_sq += e * e;
  }
  if (!a.values.empty()) d.mean_abs = sum_abs / static_cast<double>(a.values.size());
  if (sum_sq == 0)
    d.rel_l2 = 0;
  else
    d.rel_l2 = norm_b > 0 ? std::sqrt(sum_sq) / std::sqrt(norm_b) : kInf;
  return d;
}

Localization localize(const LayerCapture& a, const LayerCapture& b,
                      const std::vector<LayerCapture>& references, const LocalizeOptions& options) {
  Localization l;
  l.env_a = a.env;
  l.env_b = b.env;
  l.mode_a = a.mode;
  l.mode_b = b.mode;
  const auto by_name = [](const LayerCapture& c) {
    std::map<std::string, const LayerTensor*> names;
    for (const auto& t : c.tensors) names.emplace(t.name, &t);  // the first of a repeated name
    return names;
  };
  const auto names_a = by_name(a), names_b = by_name(b);
  std::map<std::string, double> rel_of;  // matched, comparable layers measured so far
  std::optional<double> previous;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const LayerTensor& ta = a.tensors[i];
    if (names_a.at(ta.name) != &ta) continue;  // a repeated name
    const auto found = names_b.find(ta.name);
    if (found == names_b.end()) {
      l.only_a.push_back(ta.name);
      continue;
    }
    const LayerTensor& tb = *found->second;
    LayerReport r;
    r.position = i;
    r.name = ta.name;
    r.op_a = ta.op;
    r.op_b = tb.op;
    r.shape_a = ta.shape;
    r.shape_b = tb.shape;
    r.diff = difference(ta, tb);
    if (r.diff.comparable) {
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
  for (const auto& tb : b.tensors)
    if (names_b.at(tb.name) == &tb && !names_a.count(tb.name)) l.only_b.push_back(tb.name);

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

  std::vector<std::string> decided;
  for (const auto& ref : references) {
    const auto names_r = by_name(ref);
    Vote vote;
    vote.env = ref.env;
    for (size_t i = 0; i < l.layers.size(); ++i) {
      LayerReport& r = l.layers[i];
      ReferenceDistance distance{ref.env, std::nullopt, std::nullopt};
      if (const auto t = names_r.find(r.name); t != names_r.end()) {
        const Difference da = difference(*names_a.at(r.name), *t->second);
        const Difference db = difference(*names_b.at(r.name), *t->second);
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
  json j = {{"position", r.position},
            {"name", r.name},
            {"op_a", r.op_a},
            {"op_b", r.op_b},
            {"shape_a", r.shape_a},
            {"shape_b", r.shape_b},
            {"comparable", r.diff.comparable}};
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
  j["only_a"] = l.only_a;
  j["only_b"] = l.only_b;
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
  out << "matched " << l.layers.size() << " layers by name; only in A: " << l.only_a.size()
      << ", only in B: " << l.only_b.size() << "\n";
  const auto name_list = [](const std::vector<std::string>& names) {
    std::string text;
    for (size_t i = 0; i < names.size() && i < 5; ++i) text += (i ? ", " : "") + names[i];
    return names.size() > 5 ? text + ", ..." : text;
  };
  if (!l.only_a.empty()) out << "  only in A: " << name_list(l.only_a) << "\n";
  if (!l.only_b.empty()) out << "  only in B: " << name_list(l.only_b) << "\n";
  if (l.layers.empty()) {
    out << "no layer names in common: nothing to compare\n";
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
  out << "\n  " << pad("#", 5) << pad("layer", 42) << pad("op", 14) << pad("shape", 18)
      << pad("max|a-b|", 10) << pad("mean|a-b|", 10) << pad("rel L2", 10) << "growth\n";
  if (first > 0) out << "  ... " << first << " layers before\n";
  for (size_t i = first; i < last; ++i) {
    const LayerReport& r = l.layers[i];
    out << (l.jump && *l.jump == i ? "> " : "  ") << pad(std::to_string(r.position), 5)
        << pad(clipped_front(r.name, 40), 42) << pad(clipped(r.op_a, 12), 14)
        << pad(clipped(shape_text(r.shape_a), 16), 18);
    if (!r.diff.comparable) {
      out << "shapes differ: B has " << shape_text(r.shape_b) << "\n";
      continue;
    }
    out << pad(sci(r.diff.max_abs), 10) << pad(sci(r.diff.mean_abs), 10)
        << pad(sci(r.diff.rel_l2), 10) << growth_text(r.growth) << (r.above ? " *" : "") << "\n";
  }
  if (last < l.layers.size()) out << "  ... " << l.layers.size() - last << " layers after\n";

  out << "\n"
      << l.above_count << " of " << l.layers.size() << " matched layers above rel L2 "
      << sci(options.threshold) << (options.atol > 0 ? " and max|a-b| " + sci(options.atol) : "")
      << " (*)\n";
  if (l.jump) {
    const LayerReport& r = l.layers[*l.jump];
    out << "first jump: layer " << r.position << " '" << r.name << "' (" << r.op_a
        << (r.op_b.empty() || r.op_b == r.op_a ? "" : " / " + r.op_b) << "): rel L2 "
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
