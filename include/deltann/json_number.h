// The one way deltann writes a double into JSON. JSON has no number for NaN or the infinities, and
// `null` means "missing" in every document deltann writes, so those three are written as the
// strings "NaN", "Infinity" and "-Infinity" (the words JavaScript uses; Python's float() and
// JavaScript's Number() read them back). Finite values are plain JSON numbers. Used by `compare
// --json`, `export`, `localize --json`, `bisect --json` and the stored localisations
// (docs/EXPORT.md, "Non-finite numbers").
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace deltann {

// "NaN", "Infinity" or "-Infinity" for a non-finite value; "" for a finite one.
inline std::string nonfinite_word(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return "";
}

// `v` as a JSON number, or as the word for it when it is not finite. Json is nlohmann::json or
// nlohmann::ordered_json.
template <typename Json = nlohmann::json>
Json json_number(double v) {
  if (std::isfinite(v)) return Json(v);
  return Json(nonfinite_word(v));
}

// The same, with null for a missing value.
template <typename Json = nlohmann::json>
Json json_number(const std::optional<double>& v) {
  return v ? json_number<Json>(*v) : Json(nullptr);
}

// Reads back what json_number wrote: a number, or one of the three words; nullopt for null and
// for anything else.
template <typename Json>
std::optional<double> number_from_json(const Json& j) {
  if (j.is_number()) return j.template get<double>();
  if (!j.is_string()) return std::nullopt;
  const auto& s = j.template get_ref<const std::string&>();
  if (s == "NaN") return std::nan("");
  if (s == "Infinity") return HUGE_VAL;
  if (s == "-Infinity") return -HUGE_VAL;
  return std::nullopt;
}

}  // namespace deltann
