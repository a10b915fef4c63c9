// The fields of the summary rows (one per variant, one per pair, one per pair and natural shift of
// an expanded set), declared once: name, heading,
// unit, format, description and how to read the value. Every output is driven by these tables —
// `compare --json`, the export's JSON and CSV, the terminal tables of `compare` and the HTML
// report's tables — so a new metric is one entry here plus its computation in compare.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/compare.h"

namespace deltann {

// How a value is written for people (terminal, HTML). Machine outputs write the exact value.
enum class FieldFormat {
  text,        // as is
  count,       // integer
  percent,     // a fraction shown as "12.3%"
  fixed1,      // "84.3": rates in the tens and hundreds
  fixed3,      // "0.123"
  fixed6,      // "0.999999": close to 1, where the digits that matter are far out
  ms,          // milliseconds, four significant digits, no exponent below 1000 ms ("12.35")
  ratio,       // "1.234"
  scientific,  // "1.23e-04"
  flag,        // "yes" / "no"
  list,        // names joined by ", "
};

// A field's value: absent (printed "-", JSON null), a number, text, a flag, names or knobs.
using FieldValue = std::variant<std::monostate, int64_t, double, std::string, bool,
                                std::vector<std::string>, std::map<std::string, std::string>>;

// What the tables' value functions build values from: absent (JSON null, "-") when the optional
// is, the interval's ends as two fields.
namespace field_values {
inline FieldValue number(const std::optional<double>& v) {
  return v ? FieldValue(*v) : FieldValue(std::monostate{});
}
inline FieldValue low(const std::optional<stats::Interval>& v) {
  return v ? FieldValue(v->low) : FieldValue(std::monostate{});
}
inline FieldValue high(const std::optional<stats::Interval>& v) {
  return v ? FieldValue(v->high) : FieldValue(std::monostate{});
}
inline FieldValue count(int64_t v) { return FieldValue(v); }
}  // namespace field_values

template <typename Row>
struct Field {
  const char* name;         // JSON key and CSV column
  const char* heading;      // column heading in the terminal and the HTML report
  const char* unit;         // "ms", "count", "fraction", "ratio", "probability", ... ("" for text)
  FieldFormat format;       // how people see it
  const char* description;  // one line, as docs/EXPORT.md explains the column
  FieldValue (*value)(const Row&);
};

using VariantField = Field<VariantSummary>;
using PairField = Field<PairSummary>;
using ShiftField = Field<ShiftSummary>;

// In the order of the export's columns.
const std::vector<VariantField>& variant_fields();
const std::vector<PairField>& pair_fields();
const std::vector<ShiftField>& shift_fields();

// The entry named `name`; throws std::out_of_range for an unknown name (a programming error).
const VariantField& variant_field(std::string_view name);
const PairField& pair_field(std::string_view name);
const ShiftField& shift_field(std::string_view name);

// The value as people read it (terminal and HTML): "-" when absent, "NaN", "inf", "-inf".
std::string format_value(FieldFormat format, const FieldValue& value);

// An interval as people read it after its value, " [1.2–6.5]" (a percent's sign stays on the
// value); "" when either end is absent.
std::string format_interval(FieldFormat format, const FieldValue& low, const FieldValue& high);

// The value as people read it, followed by its interval when it is a rate (a percent field) and
// the table has one: every rate `name` with an interval has the companion fields `name_ci_low`
// and `name_ci_high`, so that the terminal and the HTML report show "3.1% [1.2–6.5]" where the
// machine outputs have three columns. Other intervals (of the median, of the speed ratio) have
// columns of their own where there is room for them.
template <typename Row>
std::string format_with_interval(const Field<Row>& field, const Row& row) {
  const std::vector<Field<Row>>* table = nullptr;
  if constexpr (std::is_same_v<Row, VariantSummary>)
    table = &variant_fields();
  else if constexpr (std::is_same_v<Row, ShiftSummary>)
    table = &shift_fields();
  else
    table = &pair_fields();
  const auto& fields = *table;
  const std::string low_name = std::string(field.name) + "_ci_low";
  const std::string high_name = std::string(field.name) + "_ci_high";
  const Field<Row>* low = nullptr;
  const Field<Row>* high = nullptr;
  for (const auto& f : fields) {
    if (low_name == f.name) low = &f;
    if (high_name == f.name) high = &f;
  }
  std::string text = format_value(field.format, field.value(row));
  if (field.format == FieldFormat::percent && low && high)
    text += format_interval(field.format, low->value(row), high->value(row));
  return text;
}

// The value as JSON: null when absent; NaN and infinities as the strings "NaN", "Infinity",
// "-Infinity" (JSON has no number for them and null means "missing"); knobs as an object.
template <typename Json>
Json field_json(const FieldValue& value);
extern template nlohmann::json field_json<nlohmann::json>(const FieldValue&);
extern template nlohmann::ordered_json field_json<nlohmann::ordered_json>(const FieldValue&);

// A row as a JSON object with every field of the table, in table order.
template <typename Json, typename Row>
Json fields_json(const std::vector<Field<Row>>& fields, const Row& row) {
  Json object = Json::object();
  for (const auto& field : fields) object[field.name] = field_json<Json>(field.value(row));
  return object;
}

}  // namespace deltann
