// The HTML report of a campaign: one self-contained file (styles, data, chart library and image
// thumbnails inlined) that opens offline in any browser.
#pragma once

#include <cstddef>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "deltann/study_tables.h"

namespace deltann {

class Store;
struct CampaignData;
struct Comparison;

// Where Debian's libjs-chart.js (Chart.js 3.9) installs its UMD build.
inline constexpr const char* kDefaultChartJs = "/usr/share/javascript/chart.js/chart.min.js";

struct HtmlReportOptions {
  std::filesystem::path chart_js = kDefaultChartJs;  // inlined into the report
  int gallery_images = 24;  // at most this many disagreeing images get a thumbnail
  int thumbnail_px = 160;   // longer side of a thumbnail
  int cdf_points = 200;     // latency CDF points per variant (the samples are downsampled)
  std::string title;        // empty: "deltann report: <model>"
  StudyOptions study;       // the baselines of the "Study tables" section
};

// Writes the report of `comparison` (made by compare_variants of `campaign`), with the images,
// results, failures and model specs of `campaign`. Throws Error when the chart library is
// missing. Every text that came from a file, a model or an engine is HTML-escaped.
void write_html_report(const CampaignData& campaign, const Comparison& comparison,
                       std::ostream& out, const HtmlReportOptions& options = {});
// The same, reading the campaign (without full outputs) from `store`.
void write_html_report(const Store& store, const Comparison& comparison, std::ostream& out,
                       const HtmlReportOptions& options = {});

// Text for HTML element content and quoted attribute values: & < > " ' become entities and
// control characters (other than tab, newline, carriage return) become U+FFFD.
std::string html_escape(std::string_view text);

// JSON that may sit inside a <script> element: < > & and U+2028/U+2029 are written as \uXXXX
// escapes, so no string in it can close the element; invalid UTF-8 becomes U+FFFD.
std::string json_for_script(const nlohmann::json& value);

}  // namespace deltann
