// The two ways a localisation is written (docs/LOCALIZE.md, "Output"): the JSON document of
// `deltann localize --json` (and of the campaign database's localisations) and the terminal table.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "deltann/localize.h"

namespace deltann {

nlohmann::json to_json(const Localization& l, const LocalizeOptions& options);
// The terminal table: `rows` matched layers around the jump, then a summary.
std::string localization_text(const Localization& l, const LocalizeOptions& options,
                              size_t rows = 20);

}  // namespace deltann
