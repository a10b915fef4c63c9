// `deltann export`: the campaign and its analysis as one JSON document or as CSV tables
// (docs/EXPORT.md describes every field).
#include "deltann/export.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/compare.h"
#include "deltann/environment.h"
#include "deltann/json_number.h"
#include "deltann/store.h"
#include "deltann/version.h"

namespace deltann {
namespace {

using ojson = nlohmann::ordered_json;

// Meta keys a campaign writes (docs/STORAGE.md); read directly when the comparison lacks them.
constexpr const char* kMetaKeys[] = {"schema_version", "created_at",    "deltann_version",
                                     "host",           "dataset",       "images",
                                     "spec_source",    "preprocessing", "timing"};

template <typename T>
std::string shortest(T value) {
  if (!std::isfinite(value)) return nonfinite_word(value);
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc() ? std::string(buffer, end) : std::string("NaN");
}

// A JSON number, or the strings "NaN", "Infinity", "-Infinity" that JSON has no number for.
ojson json_number(double v) { return deltann::json_number<ojson>(v); }

ojson json_number(const std::optional<double>& v) { return deltann::json_number<ojson>(v); }

template <typename T>
ojson json_int(const std::optional<T>& v) {
  return v ? ojson(*v) : ojson(nullptr);
}

// Image keys come from file names, which need not be UTF-8: invalid bytes become U+FFFD.
std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string json_string(const std::string& s) { return dump(ojson(s)); }

// Knobs as in a canonical environment string: opt, device, precision, threads, then by name.
std::string knob_text(const std::map<std::string, std::string>& knobs) {
  Environment env;
  env.framework = "x";
  env.knobs = knobs;
  const std::string text = env.to_string();
  return text.size() > 2 ? text.substr(2) : "";
}

// ---- the rows of each table, as JSON objects; CSV writes the same fields in the same order ----

ojson variant_row(const VariantSummary& v) {
  ojson knobs = ojson::object();
  for (const auto& [key, value] : v.knobs) knobs[key] = value;
  return {{"env", v.env},
          {"model", v.model},
          {"framework", v.framework},
          {"knobs", knobs},
          {"status", v.status},
          {"engine_version", v.engine_version},
          {"images", v.images},
          {"failures", v.failures},
          {"top1_accuracy", json_number(v.top1_accuracy)},
          {"top5_accuracy", json_number(v.top5_accuracy)},
          {"load_ms", json_number(v.load_ms)},
          {"first_inference_ms", json_number(v.first_ms)},
          {"median_ms", json_number(v.median_ms)},
          {"p90_ms", json_number(v.p90_ms)},
          {"p99_ms", json_number(v.p99_ms)},
          {"cv", json_number(v.cv)},
          {"median_ci_low_ms", v.median_ci_ms ? json_number(v.median_ci_ms->low) : nullptr},
          {"median_ci_high_ms", v.median_ci_ms ? json_number(v.median_ci_ms->high) : nullptr},
          {"samples", v.samples},
          {"nonfinite_images", v.nonfinite_images},
          {"nondeterministic_images", v.nondeterministic_images},
          {"max_repeat_diff", json_number(v.max_repeat_diff)}};
}

ojson pair_row(const PairSummary& p) {
  return {{"a", p.a},
          {"b", p.b},
          {"axis", p.axis},
          {"images", p.images},
          {"top1_differences", p.top1_differences},
          {"top1_difference_rate", json_number(p.top1_difference_rate())},
          {"near_tie_flips", p.near_tie_flips},
          {"confident_flips", p.confident_flips},
          {"top5_overlap", json_number(p.top5_overlap)},
          {"top5_jaccard", json_number(p.top5_jaccard)},
          {"rank_correlation", json_number(p.rank_correlation)},
          {"max_abs_diff", json_number(p.max_abs_diff)},
          {"mean_abs_diff", json_number(p.mean_abs_diff)},
          {"relative_l2", json_number(p.relative_l2)},
          {"cosine", json_number(p.cosine)},
          {"min_atol", json_number(p.min_atol)},
          {"min_rtol", json_number(p.min_rtol)},
          {"failing_elements", json_int(p.failing_elements)},
          {"speed_ratio", json_number(p.speed_ratio)},
          {"speed_ratio_ci_low", p.speed_ratio_ci ? json_number(p.speed_ratio_ci->low) : nullptr},
          {"speed_ratio_ci_high", p.speed_ratio_ci ? json_number(p.speed_ratio_ci->high) : nullptr},
          {"p_value", json_number(p.p_value)},
          {"p_adjusted", json_number(p.p_adjusted)},
          {"significant", p.significant},
          {"differing_images", p.differing_images}};
}

ojson unusable_row(const UnusableImage& u) {
  return {{"key", u.key}, {"path", u.path}, {"reason", u.reason}};
}

ojson finding_row(const Finding& f, size_t rank) {
  return {{"rank", rank},       {"kind", f.kind},          {"severity", json_number(f.severity)},
          {"title", f.title},   {"evidence", f.evidence},  {"variants", f.variants},
          {"images", f.images}, {"reproduce", f.reproduce}};
}

// One CSV field from a JSON value of a row: strings as text cells (csv_text_field), numbers in
// shortest round-trip form (a negative number stays a number), booleans as 1/0, null as an empty
// field, arrays and objects as compact JSON text except the knobs object, which reads better as
// the environment's own key=value text.
std::string csv_cell(const std::string& name, const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::null:
      return "";
    case ojson::value_t::string:
      return export_format::csv_text_field(v.get<std::string>());
    case ojson::value_t::boolean:
      return v.get<bool>() ? "1" : "0";
    case ojson::value_t::number_integer:
      return std::to_string(v.get<int64_t>());
    case ojson::value_t::number_unsigned:
      return std::to_string(v.get<uint64_t>());
    case ojson::value_t::number_float:
      return shortest(v.get<double>());
    case ojson::value_t::object:
      if (name == "knobs") {
        std::map<std::string, std::string> knobs;
        for (const auto& [key, value] : v.items()) knobs[key] = value.get<std::string>();
        return export_format::csv_text_field(knob_text(knobs));
      }
      return export_format::csv_text_field(dump(v));
    default:
      return export_format::csv_text_field(dump(v));
  }
}

// Writes fields already made CSV fields (csv_field, csv_text_field).
void write_csv_row(std::ostream& out, const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out << ',';
    out << fields[i];
  }
  out << '\n';
}

// Writes rows made by `make_row`, header first, as CSV.
template <typename Items, typename MakeRow>
void write_csv_table(std::ostream& out, const Items& items, MakeRow make_row,
                     const ojson& empty_row) {
  std::vector<std::string> header;
  for (const auto& [key, value] : empty_row.items())
    header.push_back(export_format::csv_field(key));
  write_csv_row(out, header);
  size_t index = 0;
  for (const auto& item : items) {
    const ojson row = make_row(item, ++index);
    std::vector<std::string> fields;
    fields.reserve(header.size());
    for (const auto& [key, value] : row.items()) fields.push_back(csv_cell(key, value));
    write_csv_row(out, fields);
  }
}

// ---- results: streamed from the store, one variant at a time ----

struct ImageInfo {
  std::string key;
  std::optional<int> label;
  std::string json_key;  // the key as a JSON string, when asked for
};

struct ResultRow {
  const std::string* variant;
  const std::string* variant_json;  // when asked for
  const ImageInfo* image;
  const StoredResult* result;
  std::optional<double> median_ms;
  std::optional<bool> correct_top1, correct_top5;
};

constexpr int kCsvTopK = 5;

// Calls `emit(row)` for every stored result, variants in id order, images in id order; with
// `json_names`, the rows also carry the variant's and the image's names escaped for JSON.
template <typename Emit>
void for_each_result(Store& store, bool json_names, Emit emit) {
  std::map<int64_t, ImageInfo> images;
  for (auto& i : store.images()) {
    std::string json_key = json_names ? json_string(i.key) : "";
    images[i.id] = {std::move(i.key), i.label, std::move(json_key)};
  }
  const ImageInfo unknown{"", std::nullopt, "\"\""};
  // Named as the comparison names them: "<env> [model K]" when the database holds several models.
  std::map<int64_t, int> model_index;
  for (const auto& m : store.models()) model_index[m.id] = static_cast<int>(model_index.size()) + 1;
  std::vector<double> samples;
  for (auto v : store.variants()) {
    if (model_index.size() > 1) v.env += " [model " + std::to_string(model_index[v.model_id]) + "]";
    const std::string variant_json = json_names ? json_string(v.env) : "";
    const auto results = store.results(v.id, false);
    // Both are ordered by image id, so one forward walk finds every image.
    auto it = images.begin();
    for (const auto& r : results) {
      while (it != images.end() && it->first < r.image_id) ++it;
      const ImageInfo& image = it != images.end() && it->first == r.image_id ? it->second : unknown;
      ResultRow row{&v.env, &variant_json, &image, &r, std::nullopt, std::nullopt, std::nullopt};
      samples.clear();
      for (int64_t ns : r.samples_ns) samples.push_back(static_cast<double>(ns) / 1e6);
      std::sort(samples.begin(), samples.end());
      if (!samples.empty()) row.median_ms = percentile_sorted(samples, 50);
      if (image.label) {
        row.correct_top1 = !r.top_ids.empty() && r.top_ids[0] == *image.label;
        row.correct_top5 =
            std::find(r.top_ids.begin(), r.top_ids.end(), *image.label) != r.top_ids.end();
      }
      emit(row);
    }
  }
}

const char* json_bool(const std::optional<bool>& b) { return !b ? "null" : *b ? "true" : "false"; }

// A results row as one line of JSON, written by hand: a million of them go through here.
void write_json_result(std::ostream& out, const ResultRow& row) {
  std::string line;
  line.reserve(256);
  line += "{\"variant\":";
  line += *row.variant_json;
  line += ",\"image\":";
  line += row.image->json_key;
  line += ",\"label\":";
  line += row.image->label ? std::to_string(*row.image->label) : "null";
  line += ",\"top_ids\":[";
  for (size_t i = 0; i < row.result->top_ids.size(); ++i) {
    if (i) line += ',';
    line += std::to_string(row.result->top_ids[i]);
  }
  line += "],\"top_scores\":[";
  for (size_t i = 0; i < row.result->top_scores.size(); ++i) {
    if (i) line += ',';
    const float s = row.result->top_scores[i];
    line += std::isfinite(s) ? shortest(s) : "\"" + shortest(s) + "\"";
  }
  line += "],\"median_ms\":";
  line += !row.median_ms                  ? std::string("null")
          : std::isfinite(*row.median_ms) ? shortest(*row.median_ms)
                                          : "\"" + shortest(*row.median_ms) + "\"";
  line += ",\"samples\":";
  line += std::to_string(row.result->samples_ns.size());
  line += ",\"correct_top1\":";
  line += json_bool(row.correct_top1);
  line += ",\"correct_top5\":";
  line += json_bool(row.correct_top5);
  line += '}';
  out << line;
}

void write_csv_result(std::ostream& out, const ResultRow& row) {
  std::string line = export_format::csv_text_field(*row.variant);
  line += ',';
  line += export_format::csv_text_field(row.image->key);
  line += ',';
  if (row.image->label) line += std::to_string(*row.image->label);
  const auto& ids = row.result->top_ids;
  const auto& scores = row.result->top_scores;
  for (size_t i = 0; i < kCsvTopK; ++i) {
    line += ',';
    if (i < ids.size()) line += std::to_string(ids[i]);
  }
  for (size_t i = 0; i < kCsvTopK; ++i) {
    line += ',';
    if (i < scores.size()) line += shortest(scores[i]);
  }
  line += ',';
  if (row.median_ms) line += shortest(*row.median_ms);
  line += ',';
  line += std::to_string(row.result->samples_ns.size());
  line += ',';
  if (row.correct_top1) line += *row.correct_top1 ? '1' : '0';
  line += ',';
  if (row.correct_top5) line += *row.correct_top5 ? '1' : '0';
  line += '\n';
  out << line;
}

ojson context_of(Store& store, const Comparison& c) {
  ojson meta = ojson::object();
  std::map<std::string, std::string> values = c.meta;
  for (const char* key : kMetaKeys)
    if (!values.count(key))
      if (auto value = store.meta(key)) values[key] = *value;
  for (const auto& [key, value] : values) meta[key] = value;
  ojson models = ojson::array();
  const auto stored = store.models();
  for (size_t i = 0; i < stored.size(); ++i) {
    ojson m = {{"model", i + 1},
               {"path", stored[i].path},
               {"sha256", stored[i].sha256},
               {"spec_source", stored[i].spec_source}};
    // Whether the file is still the one that ran is the comparison's finding (absent without it).
    if (i < c.models.size()) m["on_disk"] = c.models[i].on_disk;
    models.push_back(std::move(m));
  }
  int images = 0, usable = 0;
  for (const auto& i : store.images()) {
    ++images;
    if (i.status == "ok") ++usable;
  }
  const AnalysisOptions& o = c.options;
  return {{"exported_by", std::string("deltann ") + kVersion},
          {"meta", meta},
          {"models", models},
          {"warnings", c.warnings},
          {"images", images},
          {"usable_images", usable},
          {"labelled_images", c.labelled_images},
          {"analysis",
           {{"near_tie_gap", o.near_tie_gap},
            {"atol", o.atol},
            {"rtol", o.rtol},
            {"confidence", o.confidence},
            {"alpha", o.alpha},
            {"max_cv", o.max_cv},
            {"min_slowdown", o.min_slowdown}}}};
}

template <typename Items, typename MakeRow>
void write_json_array(std::ostream& out, const char* name, const Items& items, MakeRow make_row) {
  out << "\"" << name << "\": [";
  size_t index = 0;
  for (const auto& item : items) {
    out << (index ? ",\n" : "\n") << dump(make_row(item, index + 1));
    ++index;
  }
  out << (index ? "\n],\n" : "],\n");
}

}  // namespace

namespace export_format {

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char ch : text) {
    if (ch == '"') quoted += '"';
    quoted += ch;
  }
  quoted += '"';
  return quoted;
}

std::string csv_text_field(std::string_view text) {
  if (!text.empty() && std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos)
    return csv_field("'" + std::string(text));
  return csv_field(text);
}

std::string number(float value) { return shortest(value); }
std::string number(double value) { return shortest(value); }

}  // namespace export_format

std::optional<ExportTable> parse_export_table(std::string_view name) {
  if (name == "variants") return ExportTable::variants;
  if (name == "pairs") return ExportTable::pairs;
  if (name == "findings") return ExportTable::findings;
  if (name == "results") return ExportTable::results;
  if (name == "unusable_images") return ExportTable::unusable_images;
  return std::nullopt;
}

const char* export_table_name(ExportTable table) {
  switch (table) {
    case ExportTable::variants:
      return "variants";
    case ExportTable::pairs:
      return "pairs";
    case ExportTable::findings:
      return "findings";
    case ExportTable::results:
      return "results";
    case ExportTable::unusable_images:
      return "unusable_images";
  }
  return "?";
}

void export_json(Store& store, const Comparison& c, std::ostream& out) {
  out << "{\n\"schema\": \"deltann.export\",\n\"schema_version\": " << kExportSchemaVersion
      << ",\n\"context\": " << dump(context_of(store, c)) << ",\n";
  write_json_array(out, "variants", c.variants,
                   [](const VariantSummary& v, size_t) { return variant_row(v); });
  write_json_array(out, "pairs", c.pairs, [](const PairSummary& p, size_t) { return pair_row(p); });
  write_json_array(out, "findings", c.findings,
                   [](const Finding& f, size_t rank) { return finding_row(f, rank); });
  write_json_array(out, "unusable_images", c.unusable_images,
                   [](const UnusableImage& u, size_t) { return unusable_row(u); });
  out << "\"results\": [";
  bool first = true;
  for_each_result(store, true, [&](const ResultRow& row) {
    out << (first ? "\n" : ",\n");
    first = false;
    write_json_result(out, row);
  });
  out << (first ? "]\n}\n" : "\n]\n}\n");
}

void export_csv(Store& store, const Comparison& c, ExportTable table, std::ostream& out) {
  switch (table) {
    case ExportTable::variants:
      write_csv_table(
          out, c.variants, [](const VariantSummary& v, size_t) { return variant_row(v); },
          variant_row(VariantSummary{}));
      return;
    case ExportTable::pairs:
      write_csv_table(
          out, c.pairs, [](const PairSummary& p, size_t) { return pair_row(p); },
          pair_row(PairSummary{}));
      return;
    case ExportTable::findings:
      write_csv_table(
          out, c.findings, [](const Finding& f, size_t rank) { return finding_row(f, rank); },
          finding_row(Finding{}, 0));
      return;
    case ExportTable::unusable_images:
      write_csv_table(
          out, c.unusable_images, [](const UnusableImage& u, size_t) { return unusable_row(u); },
          unusable_row(UnusableImage{}));
      return;
    case ExportTable::results: {
      std::vector<std::string> header{"variant", "image", "label"};
      for (int i = 1; i <= kCsvTopK; ++i) header.push_back("top" + std::to_string(i));
      for (int i = 1; i <= kCsvTopK; ++i) header.push_back("score" + std::to_string(i));
      for (const char* name : {"median_ms", "samples", "correct_top1", "correct_top5"})
        header.push_back(name);
      for (auto& name : header) name = export_format::csv_field(name);
      write_csv_row(out, header);
      for_each_result(store, false, [&](const ResultRow& row) { write_csv_result(out, row); });
      return;
    }
  }
}

}  // namespace deltann
