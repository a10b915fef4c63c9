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

#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/environment.h"
#include "deltann/json_number.h"
#include "deltann/store.h"
#include "deltann/study_tables.h"
#include "deltann/summary_fields.h"
#include "deltann/version.h"

namespace deltann {
namespace {

using ojson = nlohmann::ordered_json;

template <typename T>
std::string shortest(T value) {
  if (!std::isfinite(value)) return nonfinite_word(value);
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc() ? std::string(buffer, end) : std::string("NaN");
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
// Variants and pairs are the field tables of deltann/summary_fields.h.

ojson variant_row(const VariantSummary& v) { return fields_json<ojson>(variant_fields(), v); }

ojson pair_row(const PairSummary& p) { return fields_json<ojson>(pair_fields(), p); }
ojson shift_row(const ShiftSummary& s) { return fields_json<ojson>(shift_fields(), s); }

ojson study_label_row(const StudyLabelRow& r) {
  return fields_json<ojson>(study_label_fields(), r);
}

ojson study_timing_row(const StudyTimingRow& r) {
  return fields_json<ojson>(study_timing_fields(), r);
}

ojson unusable_row(const UnusableImage& u) {
  return {{"key", u.key}, {"path", u.path}, {"reason", u.reason}};
}

ojson finding_row(const Finding& f, size_t rank) {
  return {{"rank", rank},
          {"kind", std::string(to_string(f.kind))},
          {"severity", field_json<ojson>(f.severity)},
          {"title", f.title},
          {"evidence", f.evidence},
          {"variants", f.variants},
          {"images", f.images},
          {"reproduce", f.reproduce}};
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

// ---- results: one row per stored result, from the campaign as loaded ----

struct ImageInfo {
  std::string key;
  std::optional<int> label;
  std::string json_key;  // the key as a JSON string, when asked for
};

struct ResultRow {
  const std::string* variant;
  const std::string* variant_json;  // when asked for
  const ImageInfo* image;
  const CampaignResult* result;
  std::optional<bool> correct_top1, correct_top5;
};

constexpr int kCsvTopK = 5;

// Calls `emit(row)` for every stored result, variants in id order, images in id order; with
// `json_names`, the rows also carry the variant's and the image's names escaped for JSON.
template <typename Emit>
void for_each_result(const CampaignData& campaign, bool json_names, Emit emit) {
  std::map<int64_t, ImageInfo> images;
  for (const auto& i : campaign.images)
    images[i.id] = {i.key, i.label, json_names ? json_string(i.key) : ""};
  const ImageInfo unknown{"", std::nullopt, "\"\""};
  for (const auto& v : campaign.variants) {
    const std::string variant_json = json_names ? json_string(v.name) : "";
    // Both are ordered by image id, so one forward walk finds every image.
    auto it = images.begin();
    for (const auto& r : v.results) {
      while (it != images.end() && it->first < r.image_id) ++it;
      const ImageInfo& image = it != images.end() && it->first == r.image_id ? it->second : unknown;
      ResultRow row{&v.name, &variant_json, &image, &r, std::nullopt, std::nullopt};
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
  const auto& median_ms = row.result->median_ms;
  line += "],\"median_ms\":";
  line += !median_ms                  ? std::string("null")
          : std::isfinite(*median_ms) ? shortest(*median_ms)
                                      : "\"" + shortest(*median_ms) + "\"";
  line += ",\"samples\":";
  line += std::to_string(row.result->samples);
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
  if (row.result->median_ms) line += shortest(*row.result->median_ms);
  line += ',';
  line += std::to_string(row.result->samples);
  line += ',';
  if (row.correct_top1) line += *row.correct_top1 ? '1' : '0';
  line += ',';
  if (row.correct_top5) line += *row.correct_top5 ? '1' : '0';
  line += '\n';
  out << line;
}

ojson context_of(const CampaignData& campaign, const Comparison& c) {
  // The comparison's meta is the campaign's; the campaign's fills in when there is no comparison.
  std::map<std::string, std::string> values = c.meta;
  values.insert(campaign.meta.begin(), campaign.meta.end());
  ojson meta = ojson::object();
  for (const auto& [key, value] : values) meta[key] = value;
  ojson models = ojson::array();
  for (size_t i = 0; i < campaign.models.size(); ++i) {
    const StoredModel& stored = campaign.models[i].stored;
    ojson m = {{"model", i + 1},
               {"path", stored.path},
               {"sha256", stored.sha256},
               {"spec_source", stored.spec_source},
               {"flops", stored.flops ? ojson(*stored.flops) : ojson(nullptr)}};
    // Whether the file is still the one that ran is the comparison's finding (absent without it).
    if (i < c.models.size()) m["on_disk"] = c.models[i].on_disk;
    models.push_back(std::move(m));
  }
  int images = 0, usable = 0;
  for (const auto& i : campaign.images) {
    ++images;
    if (i.status == ImageStatus::ok) ++usable;
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
  if (name == "shifts") return ExportTable::shifts;
  if (name == "findings") return ExportTable::findings;
  if (name == "results") return ExportTable::results;
  if (name == "unusable_images") return ExportTable::unusable_images;
  if (name == "study_labels") return ExportTable::study_labels;
  if (name == "study_timing") return ExportTable::study_timing;
  return std::nullopt;
}

const char* export_table_name(ExportTable table) {
  switch (table) {
    case ExportTable::variants:
      return "variants";
    case ExportTable::pairs:
      return "pairs";
    case ExportTable::shifts:
      return "shifts";
    case ExportTable::findings:
      return "findings";
    case ExportTable::results:
      return "results";
    case ExportTable::unusable_images:
      return "unusable_images";
    case ExportTable::study_labels:
      return "study_labels";
    case ExportTable::study_timing:
      return "study_timing";
  }
  return "?";
}

void export_json(const CampaignData& campaign, const Comparison& c, std::ostream& out) {
  export_json(campaign, c, out, StudyOptions{});
}

void export_json(const CampaignData& campaign, const Comparison& c, std::ostream& out,
                 const StudyOptions& study) {
  const StudyTables tables = study_tables(campaign, c, study);
  out << "{\n\"schema\": \"deltann.export\",\n\"schema_version\": " << kExportSchemaVersion
      << ",\n\"context\": " << dump(context_of(campaign, c)) << ",\n";
  write_json_array(out, "variants", c.variants,
                   [](const VariantSummary& v, size_t) { return variant_row(v); });
  write_json_array(out, "pairs", c.pairs, [](const PairSummary& p, size_t) { return pair_row(p); });
  write_json_array(out, "shifts", c.shifts,
                   [](const ShiftSummary& s, size_t) { return shift_row(s); });
  write_json_array(out, "findings", c.findings,
                   [](const Finding& f, size_t rank) { return finding_row(f, rank); });
  write_json_array(out, "unusable_images", c.unusable_images,
                   [](const UnusableImage& u, size_t) { return unusable_row(u); });
  write_json_array(out, "study_labels", tables.labels,
                   [](const StudyLabelRow& r, size_t) { return study_label_row(r); });
  write_json_array(out, "study_timing", tables.timing,
                   [](const StudyTimingRow& r, size_t) { return study_timing_row(r); });
  out << "\"results\": [";
  bool first = true;
  for_each_result(campaign, true, [&](const ResultRow& row) {
    out << (first ? "\n" : ",\n");
    first = false;
    write_json_result(out, row);
  });
  out << (first ? "]\n}\n" : "\n]\n}\n");
}

void export_csv(const CampaignData& campaign, const Comparison& c, ExportTable table,
                std::ostream& out) {
  export_csv(campaign, c, table, out, StudyOptions{});
}

void export_csv(const CampaignData& campaign, const Comparison& c, ExportTable table,
                std::ostream& out, const StudyOptions& study) {
  switch (table) {
    case ExportTable::study_labels:
      write_csv_table(
          out, study_tables(campaign, c, study).labels,
          [](const StudyLabelRow& r, size_t) { return study_label_row(r); },
          study_label_row(StudyLabelRow{}));
      return;
    case ExportTable::study_timing:
      write_csv_table(
          out, study_tables(campaign, c, study).timing,
          [](const StudyTimingRow& r, size_t) { return study_timing_row(r); },
          study_timing_row(StudyTimingRow{}));
      return;
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
    case ExportTable::shifts:
      write_csv_table(
          out, c.shifts, [](const ShiftSummary& s, size_t) { return shift_row(s); },
          shift_row(ShiftSummary{}));
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
      for_each_result(campaign, false, [&](const ResultRow& row) { write_csv_result(out, row); });
      return;
    }
  }
}

void export_json(const Store& store, const Comparison& comparison, std::ostream& out) {
  export_json(load_campaign(store, {.outputs = false}), comparison, out);
}

void export_csv(const Store& store, const Comparison& comparison, ExportTable table,
                std::ostream& out) {
  export_csv(load_campaign(store, {.outputs = false}), comparison, table, out);
}

}  // namespace deltann
