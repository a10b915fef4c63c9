// Localisation over a campaign (localize_campaign.h): image selection, the per-layer scalars, the
// rank test per layer, and the JSON and terminal output.
#include "deltann/localize_campaign.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "deltann/json_number.h"
#include "deltann/text.h"

namespace deltann {
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// `count` of `items` drawn without replacement with `seed`: each item gets a pseudo-random key in
// order and the smallest keys win, so the draw depends only on the seed and the list.
std::vector<size_t> seeded_sample(const std::vector<size_t>& items, size_t count, uint64_t seed) {
  if (count >= items.size()) return items;
  std::mt19937_64 rng(seed);
  std::vector<std::pair<uint64_t, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t item : items) keyed.emplace_back(rng(), item);
  std::partial_sort(keyed.begin(), keyed.begin() + static_cast<std::ptrdiff_t>(count), keyed.end());
  std::vector<size_t> chosen;
  for (size_t i = 0; i < count; ++i) chosen.push_back(keyed[i].second);
  return chosen;
}

double median_of(std::vector<double> values) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  std::sort(values.begin(), values.end());
  return stats::percentile_sorted(values, 50);
}

// The values of one layer split by the images' groups.
void split(const std::vector<double>& values, const std::vector<CampaignImageResult>& images,
           std::vector<double>& differing, std::vector<double>& agreeing) {
  for (size_t i = 0; i < values.size(); ++i)
    (images[i].differs ? differing : agreeing).push_back(values[i]);
}

std::string sci(double v) {
  if (std::isnan(v)) return "-";
  return format_double("%.2e", v);
}

std::string fixed3(double v) { return std::isnan(v) ? "-" : format_double("%.3f", v); }

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

// Long tensor names differ at their end: keep it.
std::string clipped_front(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  return "..." + s.substr(s.size() - (width - 3));
}

}  // namespace

std::optional<CampaignImages> parse_campaign_images(const std::string& text) {
  if (text == "all") return CampaignImages::all;
  if (text == "disagreeing") return CampaignImages::disagreeing;
  return std::nullopt;
}

CampaignSelection select_campaign_images(const std::vector<PairedImage>& available,
                                         CampaignImages mode, size_t max_images, uint64_t seed) {
  CampaignSelection s;
  std::vector<size_t> differing, agreeing;
  for (size_t i = 0; i < available.size(); ++i)
    (available[i].differs() ? differing : agreeing).push_back(i);
  s.differing_available = differing.size();
  s.agreeing_available = agreeing.size();
  const size_t cap = std::max<size_t>(max_images, 2);
  // The differing images get half of the cap, or more when fewer agreeing ones exist.
  const size_t nd = std::min(differing.size(), cap - std::min(agreeing.size(), cap / 2));
  const size_t ng = mode == CampaignImages::disagreeing ? std::min({agreeing.size(), nd, cap - nd})
                                                        : std::min(agreeing.size(), cap - nd);
  // Two independent draws: one seed each, so that the cap on one group does not move the other.
  std::vector<size_t> chosen = seeded_sample(differing, nd, seed);
  for (size_t i : seeded_sample(agreeing, ng, seed + 1)) chosen.push_back(i);
  std::sort(chosen.begin(), chosen.end());
  for (size_t i : chosen) s.images.push_back(available[i]);
  s.differing_used = nd;
  s.agreeing_used = ng;
  std::ostringstream d;
  d << nd << " of " << differing.size() << " images whose top-1 differs and " << ng << " of "
    << agreeing.size() << " where it agrees";
  if (nd < differing.size() || ng < agreeing.size())
    d << " ("
      << (mode == CampaignImages::disagreeing && ng < agreeing.size() && nd == differing.size()
              ? "agreeing ones as many as the differing ones"
              : "at most " + std::to_string(cap) + " images (--max-images)")
      << ", drawn with seed " << seed << ")";
  s.description = d.str();
  return s;
}

std::vector<PairedImage> paired_images(const Store& store, int64_t model_a,
                                       const std::string& env_a, int64_t model_b,
                                       const std::string& env_b) {
  const std::string db = store.path().string();
  int64_t id_a = 0, id_b = 0;
  for (const auto& v : store.variants()) {
    if (v.model_id == model_a && v.env == env_a) id_a = v.id;
    if (v.model_id == model_b && v.env == env_b) id_b = v.id;
  }
  if (id_a == 0 || id_b == 0)
    throw Error(db + " has no results for " + (id_a == 0 ? env_a : env_b) +
                (model_a == model_b ? "" : (id_a == 0 ? " (model A)" : " (model B)")));
  std::map<int64_t, int> top1_b;
  for (const auto& r : store.results(id_b, false))
    top1_b.emplace(r.image_id, r.top_ids.empty() ? -1 : r.top_ids.front());
  std::map<int64_t, int> top1_a;
  for (const auto& r : store.results(id_a, false))
    top1_a.emplace(r.image_id, r.top_ids.empty() ? -1 : r.top_ids.front());
  std::vector<PairedImage> paired;
  for (const auto& image : store.images()) {
    if (image.status != ImageStatus::ok) continue;
    const auto a = top1_a.find(image.id), b = top1_b.find(image.id);
    if (a == top1_a.end() || b == top1_b.end()) continue;
    paired.push_back({image.key, image.path, a->second, b->second});
  }
  return paired;
}

void CampaignAccumulator::add(const PairedImage& image, const Localization& l) {
  if (images_.empty()) {
    env_a_ = l.env_a;
    env_b_ = l.env_b;
    mode_a_ = l.mode_a;
    mode_b_ = l.mode_b;
  }
  const size_t n = images_.size();  // values already held per layer
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < layers_.size(); ++i) index.emplace(layers_[i].name, i);
  for (const auto& r : l.layers) {
    auto [it, added] = index.emplace(r.name, layers_.size());
    if (added)
      layers_.push_back(
          {r.position, r.name, r.op_a, std::vector<double>(n, kNaN), std::vector<double>(n, kNaN)});
    Series& s = layers_[it->second];
    if (s.rel_l2.size() > n) continue;  // a name repeated within one capture: its first tensor
    s.rel_l2.push_back(r.diff.comparable ? r.diff.rel_l2 : kNaN);
    s.max_abs.push_back(r.diff.comparable ? r.diff.max_abs : kNaN);
  }
  for (auto& s : layers_)  // layers this image did not have
    if (s.rel_l2.size() == n) {
      s.rel_l2.push_back(kNaN);
      s.max_abs.push_back(kNaN);
    }
  CampaignImageResult result{image.key, image.differs(), image.top1_a, image.top1_b,
                             "",        l.above_count};
  if (l.jump) result.jump = l.layers[*l.jump].name;
  images_.push_back(std::move(result));
}

CampaignLocalization CampaignAccumulator::finish(double confidence, double alpha) const {
  CampaignLocalization c;
  c.env_a = env_a_;
  c.env_b = env_b_;
  c.mode_a = mode_a_;
  c.mode_b = mode_b_;
  c.images = images_;
  c.confidence = confidence;
  c.alpha = alpha;
  for (const auto& image : images_) (image.differs ? c.differing : c.agreeing)++;
  std::vector<double> p_values;
  for (const auto& s : layers_) {
    CampaignLayer layer;
    layer.position = s.position;
    layer.name = s.name;
    layer.op = s.op;
    std::vector<double> differing, agreeing, max_differing, max_agreeing;
    split(s.rel_l2, images_, differing, agreeing);
    split(s.max_abs, images_, max_differing, max_agreeing);
    layer.median_differing = median_of(differing);
    layer.median_agreeing = median_of(agreeing);
    layer.max_abs_differing = median_of(max_differing);
    layer.max_abs_agreeing = median_of(max_agreeing);
    layer.separation =
        stats::rank_separation(std::move(differing), std::move(agreeing), confidence);
    layer.images = layer.separation.n_higher + layer.separation.n_lower;
    // A layer with an empty group was not tested: it stays out of the Holm family.
    p_values.push_back(std::isnan(layer.separation.auc) ? kNaN : layer.separation.p_value);
    c.layers.push_back(std::move(layer));
  }
  const std::vector<double> adjusted = stats::holm_adjusted(p_values);
  for (size_t i = 0; i < c.layers.size(); ++i)
    c.layers[i].p_holm = std::isnan(adjusted[i]) ? 1 : adjusted[i];
  // Execution order, so that the earliest of equally separating layers (a fault and everything
  // downstream of it) ranks first.
  std::stable_sort(
      c.layers.begin(), c.layers.end(),
      [](const CampaignLayer& x, const CampaignLayer& y) { return x.position < y.position; });
  for (size_t i = 0; i < c.layers.size(); ++i) {
    c.ranking.push_back(i);
    const auto& s = c.layers[i].separation;
    if (!c.first_separating && s.auc > 0.5 && c.layers[i].p_holm < alpha) c.first_separating = i;
  }
  // Best separating first: the larger auc, then the smaller p, then the earlier layer. Untested
  // layers (NaN auc) last.
  const auto key = [&](size_t i) {
    const double auc = c.layers[i].separation.auc;
    return std::isnan(auc) ? -1.0 : auc;
  };
  std::stable_sort(c.ranking.begin(), c.ranking.end(), [&](size_t x, size_t y) {
    if (key(x) != key(y)) return key(x) > key(y);
    return c.layers[x].separation.p_value < c.layers[y].separation.p_value;
  });
  std::map<std::string, JumpCount> jumps;
  for (const auto& image : images_) {
    JumpCount& count = jumps[image.jump];
    count.layer = image.jump;
    (image.differs ? count.differing : count.agreeing)++;
  }
  for (auto& [layer, count] : jumps) c.first_jumps.push_back(count);
  std::stable_sort(c.first_jumps.begin(), c.first_jumps.end(),
                   [](const JumpCount& x, const JumpCount& y) {
                     if (x.differing != y.differing) return x.differing > y.differing;
                     return x.agreeing > y.agreeing;
                   });
  return c;
}

json to_json(const CampaignLocalization& c, const LocalizeOptions& options) {
  json j;
  j["kind"] = "campaign";
  j["a"] = {{"env", c.env_a}, {"mode", c.mode_a}};
  j["b"] = {{"env", c.env_b}, {"mode", c.mode_b}};
  j["options"] = {{"threshold", json_number(options.threshold)},
                  {"growth", json_number(options.growth)},
                  {"atol", json_number(options.atol)},
                  {"confidence", c.confidence},
                  {"alpha", c.alpha}};
  j["test"] = "Mann-Whitney U (two-sided, normal approximation with tie correction), Holm-adjusted";
  j["groups"] = {{"differing", c.differing}, {"agreeing", c.agreeing}};
  const auto layer_json = [&](const CampaignLayer& l) {
    const auto& s = l.separation;
    return json{{"position", l.position},
                {"name", l.name},
                {"op", l.op},
                {"images", l.images},
                {"auc", json_number(s.auc)},
                {"auc_ci", {json_number(s.auc_ci.low), json_number(s.auc_ci.high)}},
                {"rank_biserial", json_number(s.rank_biserial)},
                {"p_value", json_number(s.p_value)},
                {"p_holm", json_number(l.p_holm)},
                {"median_rel_l2_differing", json_number(l.median_differing)},
                {"median_rel_l2_agreeing", json_number(l.median_agreeing)},
                {"median_max_abs_differing", json_number(l.max_abs_differing)},
                {"median_max_abs_agreeing", json_number(l.max_abs_agreeing)}};
  };
  json ranked = json::array();
  for (size_t i : c.ranking) ranked.push_back(layer_json(c.layers[i]));
  j["ranked_layers"] = ranked;
  j["first_separating"] = c.first_separating ? layer_json(c.layers[*c.first_separating]) : json();
  json jumps = json::array();
  for (const auto& count : c.first_jumps)
    jumps.push_back({{"layer", count.layer.empty() ? json() : json(count.layer)},
                     {"differing", count.differing},
                     {"agreeing", count.agreeing}});
  j["first_jumps"] = jumps;
  json images = json::array();
  for (const auto& image : c.images)
    images.push_back({{"key", image.key},
                      {"differs", image.differs},
                      {"top1_a", image.top1_a},
                      {"top1_b", image.top1_b},
                      {"jump", image.jump.empty() ? json() : json(image.jump)},
                      {"above_threshold", image.above}});
  j["per_image"] = images;
  return j;
}

std::string campaign_localization_text(const CampaignLocalization& c, size_t rows) {
  std::ostringstream out;
  out << "A: " << c.env_a << "\n   capture: " << c.mode_a << "\nB: " << c.env_b
      << "\n   capture: " << c.mode_b << "\n"
      << c.images.size() << " images: " << c.differing << " whose top-1 differs, " << c.agreeing
      << " where it agrees\n";
  if (c.differing == 0 || c.agreeing == 0) {
    out << "one group is empty: no layer can be tested (the first jumps below still say where "
           "each image parts)\n";
  } else {
    out << "\nlayers whose rel L2 is higher on the differing images (Mann-Whitney, auc = "
           "P(differing > agreeing); p Holm-adjusted over "
        << c.layers.size() << " layers):\n\n  " << pad("#", 5) << pad("layer", 42) << pad("op", 12)
        << pad("auc", 6) << pad(format_double("%.0f%%", 100 * c.confidence) + " CI", 14)
        << pad("p(Holm)", 10) << pad("med rel L2 diff", 16) << "med rel L2 agree\n";
    for (size_t r = 0; r < std::min(rows, c.ranking.size()); ++r) {
      const CampaignLayer& l = c.layers[c.ranking[r]];
      const auto& s = l.separation;
      const bool first = c.first_separating && *c.first_separating == c.ranking[r];
      out << (first ? "> " : "  ") << pad(std::to_string(l.position), 5)
          << pad(clipped_front(l.name, 40), 42) << pad(clipped_front(l.op, 10), 12)
          << pad(fixed3(s.auc), 6)
          << pad("[" + fixed3(s.auc_ci.low) + "," + fixed3(s.auc_ci.high) + "]", 14)
          << pad(format_double("%.2g", l.p_holm), 10) << pad(sci(l.median_differing), 16)
          << sci(l.median_agreeing) << "\n";
    }
    if (c.ranking.size() > rows) out << "  ... " << c.ranking.size() - rows << " layers more\n";
    if (c.first_separating) {
      const CampaignLayer& l = c.layers[*c.first_separating];
      out << "\nseparation starts at layer " << l.position << " '" << l.name << "' (" << l.op
          << "): auc " << fixed3(l.separation.auc) << ", p(Holm) "
          << format_double("%.2g", l.p_holm) << " (>)\n";
    } else {
      out << "\nno layer's error is significantly higher on the differing images (alpha "
          << format_double("%g", c.alpha) << ")\n";
    }
  }
  out << "\nfirst jump per image (differing / agreeing images):\n";
  for (const auto& count : c.first_jumps)
    out << "  " << pad(std::to_string(count.differing) + " / " + std::to_string(count.agreeing), 12)
        << (count.layer.empty() ? "(no layer above the threshold)" : count.layer) << "\n";
  return out.str();
}

}  // namespace deltann
