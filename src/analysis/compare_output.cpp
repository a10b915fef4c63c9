// Terminal and JSON forms of a Comparison.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/compare.h"
#include "deltann/json_number.h"
#include "deltann/text.h"

namespace deltann {
namespace {

constexpr size_t kPairsShown = 15;
constexpr size_t kFindingsShown = 10;

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

constexpr size_t kUnusableShown = 20;

// Image names and engine messages come from files: keep control characters out of the terminal.
std::string printable(const std::string& text) { return terminal_safe(text); }

// The images no variant ran, with the reason, so that a smaller dataset is never taken silently.
void print_unusable(const Comparison& c, std::ostream& out) {
  if (c.unusable_images.empty()) return;
  out << '\n' << c.unusable_images.size() << " images unusable (no variant ran them)\n";
  size_t width = 6;
  for (size_t i = 0; i < c.unusable_images.size() && i < kUnusableShown; ++i)
    width = std::max(width, printable(c.unusable_images[i].key).size() + 2);
  out << ' ' << std::left << std::setw(static_cast<int>(width)) << "image"
      << "reason\n";
  for (size_t i = 0; i < c.unusable_images.size() && i < kUnusableShown; ++i) {
    const UnusableImage& u = c.unusable_images[i];
    out << ' ' << std::setw(static_cast<int>(width)) << printable(u.key) << printable(u.reason)
        << '\n';
  }
  out << std::right;
  if (c.unusable_images.size() > kUnusableShown)
    out << " (" << c.unusable_images.size() - kUnusableShown << " more in --json)\n";
}

template <typename T>
nlohmann::json optional_json(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// JSON has no infinity: an infinite difference (NaN against a number) is written as a string.
nlohmann::json number_json(std::optional<double> v) { return json_number(v); }

nlohmann::json interval_json(const std::optional<stats::Interval>& v) {
  if (!v) return nullptr;
  return nlohmann::json::array({number_json(v->low), number_json(v->high)});
}

}  // namespace

nlohmann::json to_json(const AnalysisOptions& o) {
  return {{"near_tie_gap", o.near_tie_gap}, {"atol", o.atol},   {"rtol", o.rtol},
          {"confidence", o.confidence},     {"alpha", o.alpha}, {"max_cv", o.max_cv},
          {"min_slowdown", o.min_slowdown}};
}

nlohmann::json to_json(const Finding& f) {
  return {{"kind", f.kind},          {"severity", f.severity}, {"title", f.title},
          {"evidence", f.evidence},  {"variants", f.variants}, {"images", f.images},
          {"reproduce", f.reproduce}};
}

nlohmann::json to_json(const Comparison& c) {
  nlohmann::json variants = nlohmann::json::array(), pairs = nlohmann::json::array(),
                 findings = nlohmann::json::array();
  for (const auto& v : c.variants)
    variants.push_back({{"env", v.env},
                        {"model", v.model},
                        {"framework", v.framework},
                        {"knobs", v.knobs},
                        {"status", v.status},
                        {"engine_version", v.engine_version},
                        {"images", v.images},
                        {"failures", v.failures},
                        {"top1_accuracy", optional_json(v.top1_accuracy)},
                        {"top5_accuracy", optional_json(v.top5_accuracy)},
                        {"compile_ms", optional_json(v.compile_ms)},
                        {"load_ms", optional_json(v.load_ms)},
                        {"first_inference_ms", optional_json(v.first_ms)},
                        {"samples", v.samples},
                        {"median_ms", number_json(v.median_ms)},
                        {"median_ci_ms", interval_json(v.median_ci_ms)},
                        {"median_bootstrap_ci_ms", interval_json(v.median_bootstrap_ci_ms)},
                        {"p90_ms", number_json(v.p90_ms)},
                        {"p99_ms", number_json(v.p99_ms)},
                        {"cv", number_json(v.cv)},
                        {"nonfinite_images", v.nonfinite_images},
                        {"nondeterministic_images", v.nondeterministic_images},
                        {"max_repeat_diff", number_json(v.max_repeat_diff)}});
  for (const auto& p : c.pairs)
    pairs.push_back({{"a", p.a},
                     {"b", p.b},
                     {"axis", p.axis},
                     {"images", p.images},
                     {"top1_differences", p.top1_differences},
                     {"top1_difference_rate", p.top1_difference_rate()},
                     {"near_tie_flips", p.near_tie_flips},
                     {"confident_flips", p.confident_flips},
                     {"differing_images", p.differing_images},
                     {"top5_overlap", p.top5_overlap},
                     {"top5_jaccard", p.top5_jaccard},
                     {"rank_correlation", p.rank_correlation},
                     {"max_abs_diff", number_json(p.max_abs_diff)},
                     {"mean_abs_diff", number_json(p.mean_abs_diff)},
                     {"relative_l2", number_json(p.relative_l2)},
                     {"cosine", number_json(p.cosine)},
                     {"min_atol", number_json(p.min_atol)},
                     {"min_rtol", number_json(p.min_rtol)},
                     {"failing_elements", optional_json(p.failing_elements)},
                     {"speed_ratio", number_json(p.speed_ratio)},
                     {"speed_ratio_ci", interval_json(p.speed_ratio_ci)},
                     {"p_value", number_json(p.p_value)},
                     {"p_adjusted", number_json(p.p_adjusted)},
                     {"significant", p.significant}});
  for (const auto& f : c.findings) findings.push_back(to_json(f));
  nlohmann::json models = nlohmann::json::array();
  for (size_t i = 0; i < c.models.size(); ++i)
    models.push_back({{"model", i + 1},
                      {"path", c.models[i].path},
                      {"sha256", c.models[i].sha256},
                      {"spec_source", c.models[i].spec_source},
                      {"on_disk", c.models[i].on_disk}});
  nlohmann::json unusable = nlohmann::json::array();
  for (const auto& u : c.unusable_images)
    unusable.push_back({{"key", u.key}, {"path", u.path}, {"reason", u.reason}});
  return {{"schema", "deltann.compare"},
          {"schema_version", 2},
          {"meta", c.meta},
          {"warnings", c.warnings},
          {"models", models},
          {"options", to_json(c.options)},
          {"labelled_images", c.labelled_images},
          {"unusable_images", unusable},
          {"variants", variants},
          {"pairs", pairs},
          {"findings", findings}};
}

void print_comparison(const Comparison& c, std::ostream& out) {
  for (const auto& w : c.warnings) out << "warning: " << printable(w) << '\n';
  // Which model each variant ran, whenever that is not simply "the one model, as it is now".
  if (c.models.size() > 1 || !c.warnings.empty()) {
    out << "Models (variants are compared only with variants of the same model)\n";
    for (size_t i = 0; i < c.models.size(); ++i) {
      const ModelSummary& m = c.models[i];
      out << " model " << (i + 1) << ": " << printable(m.path) << "  sha256 "
          << m.sha256.substr(0, 12) << "...  spec: " << printable(m.spec_source)
          << (m.on_disk == "unchanged" ? "" : "  [file " + m.on_disk + " since]") << '\n';
    }
    out << '\n';
  }
  int width = 14;  // the environment column fits the longest environment string
  const bool compiled =
      std::any_of(c.variants.begin(), c.variants.end(),
                  [](const VariantSummary& v) { return v.compile_ms.has_value(); });
  for (const auto& v : c.variants) width = std::max(width, static_cast<int>(v.env.size()) + 2);
  const auto spec = c.meta.find("spec_source");
  out << "Model spec: "
      << (spec == c.meta.end() ? "not recorded (a campaign of an older deltann)"
                               : printable(spec->second))
      << "\n\n";
  out << "Variants (" << c.labelled_images << " labelled images)\n";
  out << std::left << std::setw(4) << " #" << std::setw(width) << "environment" << std::setw(9)
      << "status" << std::right << std::setw(7) << "images" << std::setw(6) << "fail"
      << std::setw(8) << "top-1" << std::setw(8) << "top-5";
  if (compiled) out << std::setw(12) << "compile ms";
  out << std::setw(10) << "load ms" << std::setw(10) << "first ms" << std::setw(11) << "median ms"
      << std::setw(9) << "p90 ms" << std::setw(8) << "cv" << '\n';
  for (size_t i = 0; i < c.variants.size(); ++i) {
    const auto& v = c.variants[i];
    out << std::left << std::setw(4) << (" " + std::to_string(i + 1)) << std::setw(width)
        << printable(v.env) << std::setw(9) << v.status << std::right << std::setw(7) << v.images
        << std::setw(6) << v.failures << std::setw(8) << percent(v.top1_accuracy) << std::setw(8)
        << percent(v.top5_accuracy);
    if (compiled) out << std::setw(12) << fixed(v.compile_ms, 1);
    out << std::setw(10) << fixed(v.load_ms, 1) << std::setw(10) << fixed(v.first_ms, 2)
        << std::setw(11) << fixed(v.median_ms, 3) << std::setw(9) << fixed(v.p90_ms, 3)
        << std::setw(8) << percent(v.cv) << '\n';
  }
  print_unusable(c, out);
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
  out << "\nPairs, most different first (top-5 overlap, output differences, speed ratio b/a)\n";
  out << std::left << std::setw(10) << " pair" << std::setw(11) << "axis" << std::right
      << std::setw(10) << "top-1 diff" << std::setw(8) << "conf" << std::setw(10) << "top-5 ovl"
      << std::setw(12) << "max |d|" << std::setw(12) << "mean |d|" << std::setw(9) << "speed"
      << std::setw(10) << "p" << std::setw(10) << "p adj"
      << "  differing images\n";
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < c.variants.size(); ++i) index[c.variants[i].env] = i + 1;
  for (size_t r = 0; r < shown; ++r) {
    const PairSummary& p = *ranked[r];
    std::string images;
    for (size_t k = 0; k < p.differing_images.size() && k < 5; ++k)
      images += (k ? ", " : "") + printable(p.differing_images[k]);
    if (p.differing_images.size() > 5) images += ", ...";
    const std::string speed =
        p.speed_ratio ? fixed(*p.speed_ratio, 3) + (p.significant ? "*" : " ") : std::string("-");
    out << std::left << std::setw(10)
        << (" " + std::to_string(index[p.a]) + "-" + std::to_string(index[p.b])) << std::setw(11)
        << p.axis << std::right << std::setw(10) << percent(p.top1_difference_rate())
        << std::setw(8) << p.confident_flips << std::setw(10) << fixed(p.top5_overlap, 3)
        << std::setw(12) << scientific(p.max_abs_diff) << std::setw(12)
        << scientific(p.mean_abs_diff) << std::setw(9) << speed << std::setw(10)
        << scientific(p.p_value) << std::setw(10) << scientific(p.p_adjusted) << "  " << images
        << '\n';
  }
  if (shown < ranked.size()) out << " (" << ranked.size() - shown << " more pairs in --json)\n";
  out << " conf = confident flips (not near-ties); * = significant: p adj < " << c.options.alpha
      << " and the interval of the ratio excludes 1\n p = Mann-Whitney, p adj = p adjusted by "
      << "Holm's method over the " << c.timing_tests() << " timing tests\n";

  out << "\nFindings (" << c.findings.size() << ", most severe first)\n";
  if (c.findings.empty()) out << " none\n";
  for (size_t i = 0; i < c.findings.size() && i < kFindingsShown; ++i) {
    const Finding& f = c.findings[i];
    out << " [" << f.kind << "] " << printable(f.title) << '\n';
    if (!f.evidence.empty()) out << "     " << printable(f.evidence) << '\n';
    out << "     reproduce: " << printable(f.reproduce) << '\n';
  }
  if (c.findings.size() > kFindingsShown)
    out << " (" << c.findings.size() - kFindingsShown << " more findings in --json)\n";
}

}  // namespace deltann
