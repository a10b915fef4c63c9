#include "deltann/compare.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/store.h"

namespace deltann {
namespace {

using ResultsByImage = std::map<int64_t, StoredResult>;

// |a - b| where a NaN on one side only counts as an infinite difference, and NaN on both as none.
double abs_diff(float a, float b) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na || nb) return na && nb ? 0.0 : INFINITY;
  return std::fabs(static_cast<double>(a) - static_cast<double>(b));
}

std::string fixed(std::optional<double> v, int precision) {
  if (!v) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << *v;
  return s.str();
}

std::string percent(std::optional<double> v) { return v ? fixed(*v * 100, 1) + "%" : "-"; }

std::string scientific(std::optional<double> v) {
  if (!v) return "-";
  std::ostringstream s;
  s << std::scientific << std::setprecision(2) << *v;
  return s.str();
}

constexpr size_t kPairsShown = 15;

// Image names come from files: keep control characters out of the terminal.
std::string printable(const std::string& text) {
  std::string out = text;
  for (char& ch : out)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  return out;
}

template <typename T>
nlohmann::json optional_json(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

double PairSummary::top1_difference_rate() const {
  return images == 0 ? 0.0 : static_cast<double>(top1_differences) / images;
}

double percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const auto hi = static_cast<size_t>(std::ceil(rank));
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

Comparison compare_variants(Store& store) {
  Comparison c;
  std::map<int64_t, std::optional<int>> labels;
  std::map<int64_t, std::string> keys;
  for (const auto& image : store.images()) {
    labels[image.id] = image.label;
    keys[image.id] = image.key;
    if (image.label && image.status == "ok") ++c.labelled_images;
  }
  std::map<int64_t, int> failure_counts;
  for (const auto& f : store.failures())
    if (f.stage != "plan") ++failure_counts[f.variant_id];

  const auto variants = store.variants();
  std::vector<ResultsByImage> results(variants.size());
  for (size_t i = 0; i < variants.size(); ++i) {
    const auto& v = variants[i];
    for (auto& r : store.results(v.id, true)) results[i].emplace(r.image_id, std::move(r));
    VariantSummary s;
    s.env = v.env;
    s.status = v.status;
    s.engine_version = v.engine_version;
    s.images = static_cast<int>(results[i].size());
    s.failures = failure_counts[v.id];
    if (v.load_ns) s.load_ms = static_cast<double>(*v.load_ns) / 1e6;
    if (v.first_ns) s.first_ms = static_cast<double>(*v.first_ns) / 1e6;
    int labelled = 0, top1 = 0, top5 = 0;
    std::vector<double> samples;
    for (const auto& [image, r] : results[i]) {
      for (auto ns : r.samples_ns) samples.push_back(static_cast<double>(ns) / 1e6);
      const auto& label = labels[image];
      if (!label) continue;
      ++labelled;
      if (!r.top_ids.empty() && r.top_ids[0] == *label) ++top1;
      if (std::find(r.top_ids.begin(), r.top_ids.end(), *label) != r.top_ids.end()) ++top5;
    }
    if (labelled > 0) {
      s.top1_accuracy = static_cast<double>(top1) / labelled;
      s.top5_accuracy = static_cast<double>(top5) / labelled;
    }
    std::sort(samples.begin(), samples.end());
    if (!samples.empty()) {
      s.median_ms = percentile_sorted(samples, 50);
      s.p90_ms = percentile_sorted(samples, 90);
    }
    c.variants.push_back(std::move(s));
  }

  for (size_t a = 0; a < variants.size(); ++a)
    for (size_t b = a + 1; b < variants.size(); ++b) {
      PairSummary p;
      p.a = variants[a].env;
      p.b = variants[b].env;
      double overlap_sum = 0, abs_sum = 0, abs_max = 0;
      int64_t abs_count = 0;
      bool outputs = true;
      for (const auto& [image, ra] : results[a]) {
        const auto it = results[b].find(image);
        if (it == results[b].end()) continue;
        const auto& rb = it->second;
        ++p.images;
        if (ra.top_ids.empty() || rb.top_ids.empty() || ra.top_ids[0] != rb.top_ids[0]) {
          ++p.top1_differences;
          p.differing_images.push_back(keys[image]);
        }
        const std::set<int> sa(ra.top_ids.begin(), ra.top_ids.end());
        int common = 0;
        for (int id : rb.top_ids) common += static_cast<int>(sa.count(id));
        const size_t k = std::max(ra.top_ids.size(), rb.top_ids.size());
        overlap_sum += k == 0 ? 1.0 : static_cast<double>(common) / static_cast<double>(k);
        if (ra.output.empty() || ra.output.size() != rb.output.size()) {
          outputs = false;
          continue;
        }
        for (size_t e = 0; e < ra.output.size(); ++e) {
          const double d = abs_diff(ra.output[e], rb.output[e]);
          abs_max = std::max(abs_max, d);
          abs_sum += d;
          ++abs_count;
        }
      }
      if (p.images == 0) continue;
      p.top5_overlap = overlap_sum / p.images;
      if (outputs && abs_count > 0) {
        p.max_abs_diff = abs_max;
        p.mean_abs_diff = abs_sum / static_cast<double>(abs_count);
      }
      c.pairs.push_back(std::move(p));
    }
  return c;
}

nlohmann::json to_json(const Comparison& c) {
  nlohmann::json variants = nlohmann::json::array(), pairs = nlohmann::json::array();
  for (const auto& v : c.variants)
    variants.push_back({{"env", v.env},
                        {"status", v.status},
                        {"engine_version", v.engine_version},
                        {"images", v.images},
                        {"failures", v.failures},
                        {"top1_accuracy", optional_json(v.top1_accuracy)},
                        {"top5_accuracy", optional_json(v.top5_accuracy)},
                        {"load_ms", optional_json(v.load_ms)},
                        {"first_inference_ms", optional_json(v.first_ms)},
                        {"median_ms", optional_json(v.median_ms)},
                        {"p90_ms", optional_json(v.p90_ms)}});
  for (const auto& p : c.pairs)
    pairs.push_back({{"a", p.a},
                     {"b", p.b},
                     {"images", p.images},
                     {"top1_differences", p.top1_differences},
                     {"top1_difference_rate", p.top1_difference_rate()},
                     {"differing_images", p.differing_images},
                     {"top5_overlap", p.top5_overlap},
                     {"max_abs_diff", optional_json(p.max_abs_diff)},
                     {"mean_abs_diff", optional_json(p.mean_abs_diff)}});
  return {{"schema", "deltann.compare"},
          {"schema_version", 1},
          {"labelled_images", c.labelled_images},
          {"variants", variants},
          {"pairs", pairs}};
}

void print_comparison(const Comparison& c, std::ostream& out) {
  out << "Variants (" << c.labelled_images << " labelled images)\n";
  out << std::left << std::setw(4) << " #" << std::setw(44) << "environment" << std::setw(9)
      << "status" << std::right << std::setw(7) << "images" << std::setw(6) << "fail"
      << std::setw(8) << "top-1" << std::setw(8) << "top-5" << std::setw(10) << "load ms"
      << std::setw(10) << "first ms" << std::setw(11) << "median ms" << std::setw(9) << "p90 ms"
      << '\n';
  for (size_t i = 0; i < c.variants.size(); ++i) {
    const auto& v = c.variants[i];
    out << std::left << std::setw(4) << (" " + std::to_string(i + 1)) << std::setw(44)
        << printable(v.env) << std::setw(9) << v.status << std::right << std::setw(7) << v.images
        << std::setw(6) << v.failures << std::setw(8) << percent(v.top1_accuracy) << std::setw(8)
        << percent(v.top5_accuracy) << std::setw(10) << fixed(v.load_ms, 1) << std::setw(10)
        << fixed(v.first_ms, 2) << std::setw(11) << fixed(v.median_ms, 3) << std::setw(9)
        << fixed(v.p90_ms, 3) << '\n';
  }
  std::map<std::pair<std::string, std::string>, const PairSummary*> by_pair;
  for (const auto& p : c.pairs) by_pair[{p.a, p.b}] = &p;
  out << "\nTop-1 label differences (row vs column: differing images / images both ran)\n     ";
  for (size_t j = 0; j < c.variants.size(); ++j) out << std::setw(7) << (j + 1);
  out << '\n';
  for (size_t i = 0; i < c.variants.size(); ++i) {
    out << std::setw(4) << (i + 1) << ' ';
    for (size_t j = 0; j < c.variants.size(); ++j) {
      const PairSummary* p = nullptr;
      if (auto it = by_pair.find({c.variants[std::min(i, j)].env, c.variants[std::max(i, j)].env});
          it != by_pair.end())
        p = it->second;
      out << std::setw(7)
          << (i == j ? "-"
              : p    ? std::to_string(p->top1_differences) + "/" + std::to_string(p->images)
                     : ".");
    }
    out << '\n';
  }
  // Most different first: label flips, then top-5 disagreement, then the largest output gap.
  std::vector<const PairSummary*> ranked;
  for (const auto& p : c.pairs) ranked.push_back(&p);
  std::stable_sort(ranked.begin(), ranked.end(), [](const PairSummary* x, const PairSummary* y) {
    if (x->top1_differences != y->top1_differences)
      return x->top1_differences > y->top1_differences;
    if (x->top5_overlap != y->top5_overlap) return x->top5_overlap < y->top5_overlap;
    return x->max_abs_diff.value_or(0) > y->max_abs_diff.value_or(0);
  });
  const size_t shown = std::min(ranked.size(), kPairsShown);
  out << "\nPairs, most different first (top-5 overlap, output differences)\n";
  out << std::left << std::setw(10) << " pair" << std::right << std::setw(10) << "top-1 diff"
      << std::setw(10) << "top-5 ovl" << std::setw(12) << "max |d|" << std::setw(12) << "mean |d|"
      << "  differing images\n";
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < c.variants.size(); ++i) index[c.variants[i].env] = i + 1;
  for (size_t r = 0; r < shown; ++r) {
    const PairSummary& p = *ranked[r];
    std::string images;
    for (size_t k = 0; k < p.differing_images.size() && k < 5; ++k)
      images += (k ? ", " : "") + printable(p.differing_images[k]);
    if (p.differing_images.size() > 5) images += ", ...";
    out << std::left << std::setw(10)
        << (" " + std::to_string(index[p.a]) + "-" + std::to_string(index[p.b])) << std::right
        << std::setw(10) << percent(p.top1_difference_rate()) << std::setw(10)
        << fixed(p.top5_overlap, 3) << std::setw(12) << scientific(p.max_abs_diff) << std::setw(12)
        << scientific(p.mean_abs_diff) << "  " << images << '\n';
  }
  if (shown < ranked.size()) out << " (" << ranked.size() - shown << " more pairs in --json)\n";
}

}  // namespace deltann
