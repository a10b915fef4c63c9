// Machine-readable export of a campaign database and its analysis (schemas in docs/EXPORT.md):
// one JSON document holding every table, or one CSV table at a time.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace deltann {

class Store;
struct CampaignData;
struct Comparison;
struct StudyOptions;

inline constexpr int kExportSchemaVersion = 1;

// The tables of an export. JSON holds all of them; CSV holds one per file.
enum class ExportTable {
  variants,
  pairs,
  shifts,
  findings,
  results,
  unusable_images,
  study_labels,
  study_timing
};

// "variants", "pairs", "shifts", "findings", "results", "unusable_images", "study_labels" or
// "study_timing"; nullopt for anything else.
std::optional<ExportTable> parse_export_table(std::string_view name);
const char* export_table_name(ExportTable table);

// Writes the JSON document: schema, schema_version, context (the database's meta table, models,
// image counts, the analysis options), then variants, pairs, shifts, findings, unusable_images,
// the study tables (study_labels, study_timing: deltann/study_tables.h, made with `study`) and
// results. `comparison` must come from compare_variants of the same campaign (or be empty when
// only the results are wanted).
void export_json(const CampaignData& campaign, const Comparison& comparison, std::ostream& out,
                 const StudyOptions& study);
void export_json(const CampaignData& campaign, const Comparison& comparison, std::ostream& out);

// Writes one table as CSV with a header row (RFC 4180 quoting, LF line ends).
void export_csv(const CampaignData& campaign, const Comparison& comparison, ExportTable table,
                std::ostream& out, const StudyOptions& study);
void export_csv(const CampaignData& campaign, const Comparison& comparison, ExportTable table,
                std::ostream& out);

// The same, reading the campaign (without full outputs, which no table holds) from `store`.
void export_json(const Store& store, const Comparison& comparison, std::ostream& out);
void export_csv(const Store& store, const Comparison& comparison, ExportTable table,
                std::ostream& out);

// Formatting shared by both formats, exposed for tests.
namespace export_format {
// The field quoted when it holds a comma, a quote, CR or LF (quotes doubled); otherwise as is.
// For numbers and deltann's own words.
std::string csv_field(std::string_view text);
// A text cell whose content may come from a file (an image key, a message, an environment): a
// spreadsheet would run a cell that starts with =, +, -, @, a tab or CR as a formula, so such a
// cell gets a leading ' (the OWASP CSV-injection guidance), then it is quoted as csv_field.
std::string csv_text_field(std::string_view text);
// Shortest decimal text that reads back to the same value of its type (at most 9 significant
// digits for float, 17 for double); "NaN", "Infinity", "-Infinity" for non-finite values.
std::string number(float value);
std::string number(double value);
}  // namespace export_format

}  // namespace deltann
