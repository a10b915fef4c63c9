// `deltann report`: the campaign as one self-contained HTML file. Styles, the chart library
// (Debian's libjs-chart.js), the chart data and JPEG thumbnails are all inlined, and a content
// security policy forbids the page to load anything, so it works offline and leaks nothing.
#include "deltann/report.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/error.h"
#include "deltann/spec.h"
#include "deltann/stats.h"
#include "deltann/store.h"
#include "deltann/summary_fields.h"
#include "deltann/text.h"
#include "deltann/version.h"
#include "report_assets.h"  // generated from src/report/assets/ (cmake/embed_assets.cmake)

namespace deltann {
namespace fs = std::filesystem;

std::string html_escape(std::string_view text) {
  return markup_escape(text, "\xEF\xBF\xBD");  // U+FFFD for what HTML text cannot hold
}

std::string json_for_script(const nlohmann::json& value) {
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + 16);
  // JSON puts < > & and U+2028/2029 only inside strings, where a \u escape means the same.
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '<') {
      out += "\\u003c";
    } else if (ch == '>') {
      out += "\\u003e";
    } else if (ch == '&') {
      out += "\\u0026";
    } else if (ch == '\xE2' && i + 2 < text.size() && text[i + 1] == '\x80' &&
               (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
      out += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += ch;
    }
  }
  return out;
}

namespace {

const char* const kDash = "&ndash;";

// Numbers for HTML cells: a dash when absent, the words for NaN and infinities.
std::optional<std::string> special(const std::optional<double>& v) {
  if (!v) return kDash;
  if (std::isnan(*v)) return "NaN";
  if (std::isinf(*v)) return *v > 0 ? "&infin;" : "&minus;&infin;";
  return std::nullopt;
}

std::string percent(const std::optional<double>& v) {
  if (auto s = special(v)) return *s;
  return format_double("%.1f%%", *v * 100);
}

std::string general(const std::optional<double>& v) {
  if (auto s = special(v)) return *s;
  return format_double("%.3g", *v);
}

// Milliseconds from microseconds to minutes without exponents: four significant digits.
std::string ms(const std::optional<double>& v) {
  if (auto s = special(v)) return *s;
  return std::fabs(*v) >= 1000 ? format_double("%.0f", *v) : format_double("%.4g", *v);
}

std::string interval(const std::optional<stats::Interval>& ci,
                     std::string (*fmt)(const std::optional<double>&)) {
  if (!ci) return kDash;
  return "[" + fmt(ci->low) + ", " + fmt(ci->high) + "]";
}

double rounded(double v) { return std::stod(format_double("%.4g", v)); }

std::string utc_time(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buffer;
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) throw Error("cannot read " + path.string());
  return text.str();
}

std::string base64(const std::vector<unsigned char>& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

struct Thumbnail {
  std::string data_uri;  // empty when the image could not be shown
  std::string problem;
  int width = 0, height = 0;  // display size
  bool upscaled = false;      // displayed larger than its pixels: draw them as blocks
};

Thumbnail make_thumbnail(const fs::path& path, int max_px) {
  Thumbnail t;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    t.problem = "image file not found";
    return t;
  }
  cv::Mat image;
  try {
    image = cv::imread(path.string(), cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty() || image.cols <= 0 || image.rows <= 0) {
    t.problem = "image file could not be decoded";
    return t;
  }
  const int longer = std::max(image.cols, image.rows);
  if (longer > max_px) {
    const double scale = static_cast<double>(max_px) / longer;
    cv::Mat small;
    cv::resize(image, small,
               cv::Size(std::max(1, static_cast<int>(std::lround(image.cols * scale))),
                        std::max(1, static_cast<int>(std::lround(image.rows * scale)))),
               0, 0, cv::INTER_AREA);
    image = small;
  }
  std::vector<unsigned char> jpeg;
  try {
    if (!cv::imencode(".jpg", image, jpeg, {cv::IMWRITE_JPEG_QUALITY, 85})) jpeg.clear();
  } catch (const cv::Exception&) {
    jpeg.clear();
  }
  if (jpeg.empty()) {
    t.problem = "image could not be encoded";
    return t;
  }
  t.data_uri = "data:image/jpeg;base64," + base64(jpeg);
  // Small images are shown enlarged so that their pixels can be seen.
  const int shown = std::max(image.cols, image.rows);
  const double scale = static_cast<double>(max_px) / shown;
  t.upscaled = shown < max_px;
  t.width = std::max(1, static_cast<int>(std::lround(image.cols * scale)));
  t.height = std::max(1, static_cast<int>(std::lround(image.rows * scale)));
  return t;
}

// The ECDF of sorted samples as at most `points` (x, y) points, the largest sample included.
nlohmann::json cdf_points(const std::vector<double>& sorted, int points) {
  nlohmann::json out = nlohmann::json::array();
  const size_t n = sorted.size();
  if (n == 0) return out;
  const size_t count = std::min(n, static_cast<size_t>(std::max(points, 2)));
  size_t previous = n;
  for (size_t k = 0; k < count; ++k) {
    const size_t i = count == 1
                         ? n - 1
                         : static_cast<size_t>(std::llround(static_cast<double>(k) * (n - 1) /
                                                            static_cast<double>(count - 1)));
    if (i == previous) continue;
    previous = i;
    out.push_back({rounded(sorted[i]), rounded(static_cast<double>(i + 1) / n)});
  }
  return out;
}

struct Context {
  Context(const CampaignData& campaign_data, const Comparison& comparison,
          const HtmlReportOptions& report_options)
      : campaign(campaign_data), c(comparison), options(report_options) {}
  const CampaignData& campaign;
  const Comparison& c;
  const HtmlReportOptions& options;
  std::string db_path;
  // campaign.variants[i] is c.variants[i] (both in database order); by image id for the gallery.
  std::vector<std::map<int64_t, const CampaignResult*>> results;
  std::map<std::string, size_t> number;    // variant name -> 1-based variant number
  std::map<int64_t, size_t> number_by_id;  // stored variant id -> number
  std::map<std::string, const StoredImage*> image_by_key;
  std::map<int64_t, std::vector<std::string>> class_names;  // by model id
  std::vector<std::string> notes;                           // shown under the header
  std::map<std::string, std::string> meta;

  std::string meta_value(const std::string& key) const {
    const auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  }
};

// An environment string, escaped, that may wrap after its commas.
std::string env_html(const std::string& env) {
  std::string out;
  for (const char ch : html_escape(env)) {
    out += ch;
    if (ch == ',') out += "<wbr>";
  }
  return out;
}

std::string variant_ref(const Context& ctx, const std::string& env) {
  const auto it = ctx.number.find(env);
  if (it == ctx.number.end()) return "<span class=\"env\">" + env_html(env) + "</span>";
  return "<span class=\"vref\" title=\"" + html_escape(env) + "\">#" + std::to_string(it->second) +
         "</span>";
}

std::string class_label(const Context& ctx, int64_t model_id, int id) {
  const auto it = ctx.class_names.find(model_id);
  if (it != ctx.class_names.end() && id >= 0 && static_cast<size_t>(id) < it->second.size() &&
      !it->second[static_cast<size_t>(id)].empty())
    return "<span class=\"cls\" title=\"class " + std::to_string(id) + "\">" +
           html_escape(it->second[static_cast<size_t>(id)]) + "</span>";
  return "<span class=\"cls\">class " + std::to_string(id) + "</span>";
}

void load_context(Context& ctx) {
  const CampaignData& campaign = ctx.campaign;
  ctx.meta = campaign.meta;
  for (const auto& [key, value] : ctx.c.meta) ctx.meta.emplace(key, value);
  for (const auto& model : campaign.models) {
    if (!model.spec) {
      ctx.notes.push_back("class names of model " + model.stored.path +
                          " are unavailable, class ids are shown instead: " + model.spec_error);
      continue;
    }
    try {
      ctx.class_names[model.stored.id] = load_class_names(model.spec->output);
    } catch (const std::exception& e) {
      ctx.notes.push_back("class names of model " + model.stored.path +
                          " are unavailable, class ids are shown instead: " + e.what());
    }
  }
  for (const auto& image : campaign.images) ctx.image_by_key[image.key] = &image;
  ctx.results.resize(ctx.c.variants.size());
  for (size_t i = 0; i < ctx.c.variants.size(); ++i) {
    ctx.number.emplace(ctx.c.variants[i].env, i + 1);
    if (i >= campaign.variants.size()) continue;
    const CampaignVariant& v = campaign.variants[i];
    ctx.number_by_id[v.stored.id] = i + 1;
    for (const auto& r : v.results) ctx.results[i].emplace(r.image_id, &r);
  }
}

// The model's name in its spec, or its file name.
std::string model_title(const CampaignModel& model) {
  if (model.spec && !model.spec->name.empty()) return model.spec->name;
  return fs::path(model.stored.path).stem().string();
}

// The stored variant behind c.variants[i]; nullptr when the comparison has more variants than the
// campaign (never, for a comparison of this campaign).
const CampaignVariant* stored_variant(const Context& ctx, size_t i) {
  return i < ctx.campaign.variants.size() ? &ctx.campaign.variants[i] : nullptr;
}

// --- page parts ---------------------------------------------------------------------------

const char* const kStyle = kReportCss;  // src/report/assets/report.css

// Installed before anything else runs: every error, rejected promise or blocked load ends up in
// the (normally hidden) <pre id="js-errors">, where a person or a headless browser can read it.
const char* const kErrorScript = kReportErrorsJs;  // src/report/assets/errors.js

const char* const kChartScript = kReportChartsJs;  // src/report/assets/charts.js

void write_header(const Context& ctx, std::ostream& out) {
  const Comparison& c = ctx.c;
  out << "<section id=\"summary\">\n<table class=\"facts wide\">\n";
  auto fact = [&out](const std::string& name, const std::string& html) {
    out << "<tr><th>" << name << "</th><td>" << html << "</td></tr>\n";
  };
  std::string models;
  if (!ctx.meta_value("model").empty()) models = html_escape(ctx.meta_value("model")) + "<br>";
  const auto& campaign_models = ctx.campaign.models;
  for (size_t i = 0; i < campaign_models.size(); ++i) {
    const StoredModel& model = campaign_models[i].stored;
    // With several models, variant names end in " [model K]": say which K is which.
    if (campaign_models.size() > 1) models += "model " + std::to_string(i + 1) + ": ";
    models += "<b>" + html_escape(model_title(campaign_models[i])) + "</b> <span class=\"path\">" +
              html_escape(model.path) + "</span> <span class=\"muted\">sha256 " +
              html_escape(model.sha256.substr(0, 12)) +
              (model.spec_source.empty() ? "" : ", spec: " + html_escape(model.spec_source)) +
              "</span>";
    if (i < c.models.size() && c.models[i].on_disk != "unchanged")
      models += " <b class=\"bad-mark\">file " + html_escape(c.models[i].on_disk) + " since</b>";
    models += "<br>";
  }
  fact("Model", models.empty() ? kDash : models);
  for (const auto& warning : c.warnings)
    fact("Warning", "<b class=\"bad-mark\">" + html_escape(warning) + "</b>");
  const auto meta_fact = [&](const char* title, const char* key) {
    const std::string v = ctx.meta_value(key);
    fact(title, v.empty() ? kDash : "<span class=\"env\">" + html_escape(v) + "</span>");
  };
  meta_fact("Dataset", "dataset");
  fact("Model spec",
       ctx.meta.count("spec_source")
           ? "<span class=\"env\">" + html_escape(ctx.meta_value("spec_source")) + "</span>"
           : std::string("not recorded (a campaign of an older deltann)"));
  meta_fact("Host", "host");
  meta_fact("Preprocessing", "preprocessing");
  meta_fact("Timing", "timing");
  std::string created = ctx.meta_value("created_at");
  if (!created.empty()) {
    try {
      created = utc_time(static_cast<std::time_t>(std::stoll(created)));
    } catch (const std::exception&) {
    }
  }
  fact("Campaign started", created.empty() ? kDash : html_escape(created));
  const std::string version = ctx.meta_value("deltann_version");
  fact("deltann version", (version.empty() ? std::string(kDash) : html_escape(version)) +
                              " (campaign); " + html_escape(kVersion) + " (this report, " +
                              html_escape(utc_time(std::time(nullptr))) + ")");
  fact("Database", "<span class=\"env\">" + html_escape(ctx.db_path) + "</span>");
  out << "</table>\n";

  std::map<std::string, int> by_status;
  for (const auto& v : c.variants) ++by_status[std::string(to_string(v.status))];
  std::string statuses;
  for (const auto& [status, n] : by_status)
    statuses += (statuses.empty() ? "" : ", ") + std::to_string(n) + " " + html_escape(status);
  int ok_images = 0;
  for (const auto& image : ctx.campaign.images) ok_images += image.status == ImageStatus::ok;
  int differing_pairs = 0;
  for (const auto& p : c.pairs) differing_pairs += p.top1_differences > 0;
  const auto count = [&out](int64_t n, const std::string& what, const std::string& detail) {
    out << "<div class=\"count\"><b>" << n << "</b> " << what << "<br><span>" << detail
        << "</span></div>\n";
  };
  out << "<div class=\"counts\">\n";
  count(static_cast<int64_t>(c.variants.size()), "variants", statuses);
  count(static_cast<int64_t>(ctx.campaign.images.size()), "images",
        std::to_string(ok_images) + " usable, " + std::to_string(c.labelled_images) + " labelled" +
            (c.unusable_images.empty()
                 ? ""
                 : ", <a href=\"#unusable\">" + std::to_string(c.unusable_images.size()) +
                       " unusable</a>"));
  count(static_cast<int64_t>(c.pairs.size()), "pairs",
        std::to_string(differing_pairs) + " with top-1 differences");
  count(static_cast<int64_t>(c.findings.size()), "findings", "ranked below");
  count(static_cast<int64_t>(ctx.campaign.failures.size()), "failures", "recorded by the run");
  out << "</div>\n";
  for (const auto& note : ctx.notes) out << "<p class=\"note\">" << html_escape(note) << "</p>\n";
  out << "</section>\n";
}

void write_findings(const Context& ctx, std::ostream& out) {
  out << "<section id=\"findings\"><h2>Findings</h2>\n";
  if (ctx.c.findings.empty()) {
    out << "<p class=\"muted\">No findings: nothing in this campaign needs attention.</p>\n"
           "</section>\n";
    return;
  }
  out << "<ol class=\"findings\">\n";
  for (const auto& f : ctx.c.findings) {
    const std::string_view kind = to_string(f.kind);  // a fixed name: safe as a class and as text
    out << "<li class=\"kind-" << kind << "\"><div><span class=\"badge\">" << kind
        << "</span><strong>" << html_escape(f.title) << "</strong><span class=\"sev\">severity "
        << general(f.severity) << "</span></div>\n";
    if (!f.evidence.empty())
      out << "<div class=\"evidence\">" << html_escape(f.evidence) << "</div>\n";
    if (!f.variants.empty()) {
      out << "<div>Variants: ";
      for (size_t i = 0; i < f.variants.size(); ++i)
        out << (i ? ", " : "") << variant_ref(ctx, f.variants[i]) << " <span class=\"env\">"
            << env_html(f.variants[i]) << "</span>";
      out << "</div>\n";
    }
    if (!f.images.empty()) {
      constexpr size_t kShown = 10;
      out << "<div>Images: ";
      for (size_t i = 0; i < f.images.size() && i < kShown; ++i)
        out << (i ? ", " : "") << "<span class=\"env\">" << html_escape(f.images[i]) << "</span>";
      if (f.images.size() > kShown) out << " and " << f.images.size() - kShown << " more";
      out << "</div>\n";
    }
    if (!f.reproduce.empty())
      out << "<pre class=\"repro\"><code>" << html_escape(f.reproduce) << "</code></pre>\n";
    out << "</li>\n";
  }
  out << "</ol>\n</section>\n";
}

// A summary field's value as an HTML cell's content: its format (summary_fields.h) and its
// interval when it has one, escaped, with a dash for an absent value and the signs for
// infinities.
template <typename Row>
std::string field_html(const Field<Row>& field, const Row& row) {
  const std::string text = format_with_interval(field, row);
  if (text == "-") return kDash;
  if (text == "inf") return "&infin;";
  if (text == "-inf") return "&minus;&infin;";
  return html_escape(text);
}

template <typename Row>
std::string field_th(const Field<Row>& field) {
  return std::string("<th") + (field.format == FieldFormat::text ? "" : " class=\"n\"") +
         " title=\"" + html_escape(field.description) + "\">" + html_escape(field.heading) +
         "</th>";
}

// The variants table: the fields below from the field table, decorated where a value needs
// attention (a failed status, failures, a CV above --max-cv), and the interval of the median.
void write_variants(const Context& ctx, std::ostream& out) {
  static const char* const kColumns[] = {"env",
                                         "status",
                                         "engine_version",
                                         "images",
                                         "failures",
                                         "top1_accuracy",
                                         "top5_accuracy",
                                         "load_ms",
                                         "first_inference_ms",
                                         "median_ms",
                                         "p90_ms",
                                         "p99_ms",
                                         "cv",
                                         "gflops",
                                         "peak_share"};
  out << "<section id=\"variants\"><h2>Variants</h2>\n"
         "<p class=\"note\">Accuracy over the labelled images with a result, with its "
         "Clopper-Pearson interval in brackets; latencies over every timed sample. CV: "
         "coefficient of variation of the samples; accuracy and median CI: intervals at "
      << percent(ctx.c.options.confidence)
      << ".</p>\n<div class=\"scroll\"><table class=\"wide\">\n<tr><th class=\"n\">#</th>";
  for (const char* name : kColumns) out << field_th(variant_field(name));
  out << "<th class=\"n\">median CI ms</th>" << field_th(variant_field("samples")) << "</tr>\n";
  for (size_t i = 0; i < ctx.c.variants.size(); ++i) {
    const auto& v = ctx.c.variants[i];
    out << "<tr><td class=\"n\"><b>#" << i + 1 << "</b></td>";
    for (const char* name : kColumns) {
      const VariantField& field = variant_field(name);
      const std::string name_text = name;
      std::string cell = field_html(field, v);
      std::string cell_class = field.format == FieldFormat::text ? "" : "n";
      if (name_text == "env") {
        cell = env_html(v.env);
        cell_class = "env";
      } else if (name_text == "engine_version") {
        cell_class = "env";
      } else if (name_text == "status") {
        cell_class = "status-" + std::string(to_string(v.status));  // a fixed name: a safe class
      } else if (name_text == "failures" && v.failures > 0) {
        cell = "<span class=\"slower\">" + cell + "</span>";
      } else if (name_text == "cv" && v.cv && *v.cv > ctx.c.options.max_cv) {
        cell = "<span class=\"slower\" title=\"above " + percent(ctx.c.options.max_cv) + "\">" +
               cell + "</span>";
      }
      out << "<td" << (cell_class.empty() ? "" : " class=\"" + cell_class + "\"") << ">" << cell
          << "</td>";
    }
    const CampaignVariant* stored = stored_variant(ctx, i);
    const int64_t samples =
        v.samples > 0 || !stored ? v.samples : static_cast<int64_t>(stored->samples_ms.size());
    out << "<td class=\"n\">" << interval(v.median_ci_ms, ms) << "</td><td class=\"n\">" << samples
        << "</td></tr>\n";
  }
  out << "</table></div>\n</section>\n";
}

// What each variant computed on (docs/ENVIRONMENTS.md, "Hardware"): the device identity's fields
// from the field table, and the pairs whose identities differ. Everything in it comes from the
// machine or the engine (model names, driver strings), so every cell is escaped.
void write_devices(const Context& ctx, std::ostream& out) {
  static const char* const kColumns[] = {"env",
                                         "device_identity",
                                         "isa",
                                         "accelerator",
                                         "host",
                                         "cpu_model",
                                         "cpu_cores",
                                         "cpu_mhz_measured",
                                         "cpu_mhz_reported",
                                         "cpu_isa_flags",
                                         "gpus",
                                         "other_machines",
                                         "engine_hardware"};
  out << "<section id=\"devices\"><h2>Devices</h2>\n"
         "<p class=\"note\">Where each variant computed: the instruction-set level in effect "
         "(the isa cap, or native with the CPU's highest level), the OpenCL device or GPUs, the "
         "machine the process that ran it recorded (MHz: one busy core's measured clock; cpuinfo "
         "MHz: the kernel's figure) and what the engine reported at load.</p>\n"
         "<div class=\"scroll\"><table class=\"wide\">\n<tr><th class=\"n\">#</th>";
  for (const char* name : kColumns) out << field_th(variant_field(name));
  out << "</tr>\n";
  for (size_t i = 0; i < ctx.c.variants.size(); ++i) {
    const auto& v = ctx.c.variants[i];
    out << "<tr><td class=\"n\"><b>#" << i + 1 << "</b></td>";
    for (const char* name : kColumns) {
      const VariantField& field = variant_field(name);
      const bool text = field.format == FieldFormat::text || field.format == FieldFormat::list;
      out << "<td class=\"" << (text ? "env" : "n") << "\">"
          << (std::string_view(name) == "env" ? env_html(v.env) : field_html(field, v));
      if (std::string_view(name) == "env" && !v.device.note.empty())
        out << "<br><span class=\"muted\">" << html_escape(v.device.note) << "</span>";
      out << "</td>";
    }
    out << "</tr>\n";
  }
  out << "</table></div>\n";
  std::vector<const PairSummary*> differing;
  for (const auto& p : ctx.c.pairs)
    if (!p.device_differences.empty()) differing.push_back(&p);
  if (!differing.empty()) {
    out << "<h3>Pairs on different hardware</h3>\n<ul>\n";
    for (const PairSummary* p : differing)
      out << "<li>" << variant_ref(ctx, p->a) << " vs " << variant_ref(ctx, p->b) << ": "
          << html_escape(joined(p->device_differences, "; ")) << "</li>\n";
    out << "</ul>\n";
  }
  out << "</section>\n";
}

std::map<std::pair<std::string, std::string>, const PairSummary*> pairs_by_env(
    const Comparison& c) {
  std::map<std::pair<std::string, std::string>, const PairSummary*> by;
  for (const auto& p : c.pairs) {
    by[{p.a, p.b}] = &p;
    by[{p.b, p.a}] = &p;
  }
  return by;
}

void write_legend(const Context& ctx, std::ostream& out) {
  out << "<div class=\"legend\">";
  for (size_t i = 0; i < ctx.c.variants.size(); ++i)
    out << "<div><b>#" << i + 1 << "</b> <span class=\"env\">" << env_html(ctx.c.variants[i].env)
        << "</span></div>";
  out << "</div>\n";
}

void write_heatmap(const Context& ctx, std::ostream& out) {
  const auto& vs = ctx.c.variants;
  const auto by = pairs_by_env(ctx.c);
  out << "<section id=\"heatmap\"><h2>Top-1 label differences</h2>\n"
         "<p class=\"note\">Cell: images whose top-1 class differs between the row and the column "
         "variant / images both ran. Darker is more different.</p>\n"
         "<div class=\"scroll\"><table class=\"heat\">\n<tr><th></th>";
  for (size_t j = 0; j < vs.size(); ++j)
    out << "<th title=\"" << html_escape(vs[j].env) << "\">#" << j + 1 << "</th>";
  out << "</tr>\n";
  for (size_t i = 0; i < vs.size(); ++i) {
    out << "<tr><th title=\"" << html_escape(vs[i].env) << "\">#" << i + 1 << "</th>";
    for (size_t j = 0; j < vs.size(); ++j) {
      if (i == j) {
        out << "<td class=\"muted\">&mdash;</td>";
        continue;
      }
      const auto it = by.find({vs[i].env, vs[j].env});
      if (it == by.end() || it->second->images == 0) {
        out << "<td class=\"muted\" title=\"no image in common\">&middot;</td>";
        continue;
      }
      const PairSummary& p = *it->second;
      const double rate = p.top1_difference_rate();
      std::string style;
      if (p.top1_differences == 0) {
        style = "background:#f0fff4;color:#2f855a";
      } else {
        // Square-root scale so that a few flips among many images still show.
        const double lightness = 92 - 52 * std::sqrt(std::clamp(rate, 0.0, 1.0));
        style = "background:hsl(350,75%," + format_double("%.0f", lightness) +
                "%);color:" + (lightness < 62 ? "#fff" : "#1d2430");
      }
      out << "<td style=\"" << style << "\" title=\"#" << i + 1 << " vs #" << j + 1 << ": "
          << html_escape(format_with_interval(pair_field("top1_difference_rate"), p)) << "\">"
          << p.top1_differences << "/" << p.images << "</td>";
    }
    out << "</tr>\n";
  }
  out << "</table></div>\n";
  write_legend(ctx, out);
  out << "</section>\n";
}

int axis_rank(const std::string& axis) {
  static const std::vector<std::string> order{"framework", "opt", "device", "threads", "precision"};
  const auto it = std::find(order.begin(), order.end(), axis);
  if (it != order.end()) return static_cast<int>(it - order.begin());
  if (axis == "mixed") return 1000;
  if (axis.empty()) return 1001;
  return 100;
}

// The pairs table of one axis: the pair, the label counts, these numeric fields from the field
// table, the speed ratio with its interval, and the timing test.
constexpr const char* kNumericColumns[] = {
    "top5_difference_rate", "top5_jaccard", "rank_correlation", "max_abs_diff",
    "relative_l2",          "cosine",       "failing_elements"};

void write_axes(const Context& ctx, std::ostream& out) {
  const AnalysisOptions& o = ctx.c.options;
  out << "<section id=\"axes\"><h2>Pairs by what changed</h2>\n<p class=\"note\">Pairs are "
         "grouped by the one setting that differs between their environments (\"mixed\": more "
         "than one). Flips are near-ties when both top-2 gaps are below "
      << general(o.near_tie_gap) << ". Numeric columns need stored full outputs: max |d| is the "
      << "largest element difference, rel L2 and cosine the worst image; failing elements use "
         "atol "
      << general(o.atol) << ", rtol " << general(o.rtol)
      << ". Speed ratio: median(B) / median(A) with its " << percent(o.confidence)
      << " interval (above 1: B is slower); p from a Mann-Whitney U test, p adj. that p adjusted "
         "by Holm's method over all "
      << ctx.c.timing_tests() << " timing tests of the campaign; significant when p adj. &lt; "
      << general(o.alpha) << " and the interval excludes 1.</p>\n";
  if (ctx.c.pairs.empty()) {
    out << "<p class=\"muted\">No pair of variants has an image in common.</p>\n</section>\n";
    return;
  }
  std::map<std::string, std::vector<const PairSummary*>> groups;
  for (const auto& p : ctx.c.pairs) groups[p.axis].push_back(&p);
  std::vector<std::string> axes;
  for (const auto& [axis, _] : groups) axes.push_back(axis);
  std::stable_sort(axes.begin(), axes.end(), [](const std::string& x, const std::string& y) {
    return axis_rank(x) < axis_rank(y);
  });
  for (const auto& axis : axes) {
    auto pairs = groups[axis];
    std::stable_sort(pairs.begin(), pairs.end(), [](const PairSummary* x, const PairSummary* y) {
      if (x->top1_differences != y->top1_differences)
        return x->top1_differences > y->top1_differences;
      return x->max_abs_diff.value_or(0) > y->max_abs_diff.value_or(0);
    });
    out << "<h3>" << (axis.empty() ? std::string("unclassified") : html_escape(axis)) << " <span "
        << "class=\"muted\">(" << pairs.size() << (pairs.size() == 1 ? " pair" : " pairs")
        << ")</span></h3>\n<div class=\"scroll\"><table class=\"wide\">\n"
        << "<tr><th>pair</th>" << field_th(pair_field("images"))
        << "<th class=\"n\">top-1 diff</th><th class=\"n\">near-tie / confident</th>";
    for (const char* name : kNumericColumns) out << field_th(pair_field(name));
    out << "<th class=\"n\">speed ratio B/A</th>" << field_th(pair_field("p_value"))
        << field_th(pair_field("p_adjusted")) << "<th>significant</th></tr>\n";
    for (const PairSummary* p : pairs) {
      std::string ratio = kDash;
      if (p->speed_ratio) {
        ratio = format_double("%.3f&times;", *p->speed_ratio);
        if (p->speed_ratio_ci)
          ratio += "<br><span class=\"muted\">" + interval(p->speed_ratio_ci, general) + "</span>";
        if (p->significant)
          ratio = "<span class=\"" + std::string(*p->speed_ratio > 1 ? "slower" : "faster") +
                  "\">" + ratio + "</span>";
      }
      out << "<tr" << (p->top1_differences > 0 ? " class=\"flip\"" : "") << "><td class=\"pair\">"
          << variant_ref(ctx, p->a) << " vs " << variant_ref(ctx, p->b)
          << "<div class=\"env muted\">A: " << env_html(p->a)
          << "</div><div class=\"env muted\">B: " << env_html(p->b) << "</div></td><td class=\"n\">"
          << field_html(pair_field("images"), *p) << "</td><td class=\"n\">"
          << field_html(pair_field("top1_difference_rate"), *p) << " <span class=\"muted\">("
          << p->top1_differences << ")</span></td><td class=\"n\">" << p->near_tie_flips << " / "
          << p->confident_flips << "</td>";
      for (const char* name : kNumericColumns)
        out << "<td class=\"n\">" << field_html(pair_field(name), *p) << "</td>";
      out << "<td class=\"n\">" << ratio << "</td><td class=\"n\">"
          << field_html(pair_field("p_value"), *p) << "</td><td class=\"n\">"
          << field_html(pair_field("p_adjusted"), *p) << "</td><td>"
          << (p->p_value || p->speed_ratio ? (p->significant ? "<b>yes</b>" : "no")
                                           : std::string(kDash))
          << "</td></tr>\n";
    }
    out << "</table></div>\n";
  }
  out << "</section>\n";
}

// A stored localization's JSON, or null when it cannot be read (a file from another version).
nlohmann::json parse_localization(const StoredLocalization& l) {
  const auto j = nlohmann::json::parse(l.json, nullptr, false);
  return j.is_object() && j.contains("layers") && j.at("layers").is_array() ? j : nlohmann::json();
}

// A relative error as the chart plots it: numbers as they are, "Infinity"/"NaN" (json_number.h)
// and absent values as null (a gap in the line); exact agreement (0) cannot sit on a log axis, so
// it is drawn at the floor and said so in the caption.
constexpr double kPlotFloor = 1e-16;
nlohmann::json plotted(const nlohmann::json& v) {
  if (!v.is_number()) return nullptr;
  const double x = v.get<double>();
  return std::isfinite(x) ? nlohmann::json(std::max(x, kPlotFloor)) : nlohmann::json(nullptr);
}

// Per stored localization: layer names, A-vs-B relative error along the graph, each reference's
// distance to A and to B, and the first-jump layer, for the line charts.
nlohmann::json localization_series(const Context& ctx) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t n = 0; n < ctx.campaign.localizations.size(); ++n) {
    const nlohmann::json j = parse_localization(ctx.campaign.localizations[n]);
    if (j.is_null()) continue;
    nlohmann::json names = nlohmann::json::array(), rel = nlohmann::json::array();
    std::map<std::string, std::pair<nlohmann::json, nlohmann::json>> refs;
    const auto& layers = j.at("layers");
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& layer = layers[i];
      names.push_back(layer.value("name", "") + " (" + layer.value("op_a", "") + ")");
      rel.push_back(plotted(layer.value("rel_l2", nlohmann::json())));
      for (const auto& r : layer.value("references", nlohmann::json::array())) {
        auto& [to_a, to_b] = refs[r.value("env", "")];
        if (to_a.is_null()) to_a = to_b = nlohmann::json::array();
        while (to_a.size() < i) to_a.push_back(nullptr), to_b.push_back(nullptr);
        to_a.push_back(plotted(r.value("rel_a", nlohmann::json())));
        to_b.push_back(plotted(r.value("rel_b", nlohmann::json())));
      }
    }
    nlohmann::json references = nlohmann::json::array();
    for (auto& [env, series] : refs) {
      while (series.first.size() < layers.size())
        series.first.push_back(nullptr), series.second.push_back(nullptr);
      references.push_back({{"env", env}, {"to_a", series.first}, {"to_b", series.second}});
    }
    nlohmann::json jump = nullptr;
    if (j.contains("jump") && j.at("jump").is_object())
      jump = j.at("jump").value("position", nlohmann::json());
    // "position" is the index in A's execution order; the charts index matched layers.
    nlohmann::json jump_index = nullptr;
    for (size_t i = 0; i < layers.size() && !jump.is_null(); ++i)
      if (layers[i].value("position", nlohmann::json()) == jump) jump_index = i;
    out.push_back(
        {{"canvas", "chart-localization-" + std::to_string(n + 1)},
         {"layers", names},
         {"rel", rel},
         {"references", references},
         {"jump", jump_index},
         {"threshold",
          j.value("options", nlohmann::json::object()).value("threshold", nlohmann::json())}});
  }
  return out;
}

// For a campaign over an expanded set: each pair's top-1 differences by severity and by transform,
// every rate with its interval. Only the pairs with a difference get a table (one where two
// variants always agree would be rows of zeros); the others are counted.
void write_shifts(const Context& ctx, std::ostream& out) {
  if (ctx.c.shifts.empty()) return;
  std::vector<std::pair<std::string, std::string>> pairs;  // in the comparison's order
  std::map<std::pair<std::string, std::string>, std::vector<const ShiftSummary*>> rows;
  for (const auto& s : ctx.c.shifts) {
    auto& of_pair = rows[{s.a, s.b}];
    if (of_pair.empty()) pairs.emplace_back(s.a, s.b);
    of_pair.push_back(&s);
  }
  std::erase_if(pairs, [&](const auto& pair) {
    const auto& of_pair = rows[pair];
    return std::none_of(of_pair.begin(), of_pair.end(),
                        [](const ShiftSummary* s) { return s->top1_differences > 0; });
  });
  const size_t agreeing = rows.size() - pairs.size();
  out << "<section id=\"shifts\"><h2>Label differences by transform and severity</h2>\n"
         "<p class=\"note\">The images are an expanded set (<code>deltann expand</code>): each "
         "photo, and its corruptions at severities 1 to 5. Per pair, the top-1 difference rate "
         "over the images of each severity and of each transform, with its "
      << percent(ctx.c.options.confidence) << " Clopper-Pearson interval. "
      << (agreeing == 0
              ? std::string()
              : std::to_string(agreeing) + (agreeing == 1 ? " pair agrees" : " pairs agree") +
                    " on every image and is not shown. ")
      << "</p>\n";
  const auto field = [](const char* name) { return shift_field(name); };
  for (const auto& pair : pairs) {
    out << "<h3>" << variant_ref(ctx, pair.first) << " vs " << variant_ref(ctx, pair.second)
        << "</h3>\n<div class=\"scroll\"><table>\n<tr>" << field_th(field("by"))
        << field_th(field("shift")) << field_th(field("images"))
        << field_th(field("top1_differences")) << field_th(field("top1_difference_rate"))
        << "</tr>\n";
    for (const ShiftSummary* s : rows[pair]) {
      out << "<tr" << (s->top1_differences > 0 ? " class=\"flip\"" : "") << ">";
      for (const char* name : {"by", "shift", "images", "top1_differences", "top1_difference_rate"})
        out << "<td" << (field(name).format == FieldFormat::text ? "" : " class=\"n\"") << ">"
            << field_html(field(name), *s) << "</td>";
      out << "</tr>\n";
    }
    out << "</table></div>\n";
  }
  out << "</section>\n";
}

// A localisation over a campaign's images (`localize --images`): the groups, where the separation
// starts, and the five layers whose error best separates the images whose top-1 differs.
void write_campaign_localization(const nlohmann::json& j, std::ostream& out) {
  const auto number = [](const nlohmann::json& v, const char* format) {
    return v.is_number() ? format_double(format, v.get<double>())
                         : html_escape(v.is_string() ? v.get<std::string>() : "-");
  };
  const auto& groups = j.value("groups", nlohmann::json::object());
  out << "<table class=\"facts\"><tr><th>images</th><td>" << groups.value("differing", 0)
      << " whose top-1 differs, " << groups.value("agreeing", 0)
      << " where it agrees</td></tr><tr><th>separation starts</th><td>";
  const auto& first = j.value("first_separating", nlohmann::json());
  if (first.is_object())
    out << "<code>" << html_escape(first.value("name", "")) << "</code> ("
        << html_escape(first.value("op", "")) << ")";
  else
    out << "no layer's error is significantly higher on the differing images";
  out << "</td></tr></table>\n<div class=\"scroll\"><table>\n<tr><th>layer</th><th>op</th>"
         "<th>auc</th><th>p (Holm)</th><th>median rel L2, differing</th><th>median rel L2, "
         "agreeing</th></tr>\n";
  const auto& ranked = j.value("ranked_layers", nlohmann::json::array());
  for (size_t i = 0; i < std::min<size_t>(5, ranked.size()); ++i) {
    const auto& l = ranked[i];
    out << "<tr><td><code>" << html_escape(l.value("name", "")) << "</code></td><td>"
        << html_escape(l.value("op", "")) << "</td><td class=\"n\">"
        << number(l.value("auc", nlohmann::json()), "%.3f") << "</td><td class=\"n\">"
        << number(l.value("p_holm", nlohmann::json()), "%.2g") << "</td><td class=\"n\">"
        << number(l.value("median_rel_l2_differing", nlohmann::json()), "%.2e")
        << "</td><td class=\"n\">"
        << number(l.value("median_rel_l2_agreeing", nlohmann::json()), "%.2e") << "</td></tr>\n";
  }
  out << "</table></div>\n";
}

void write_localizations(const Context& ctx, std::ostream& out) {
  out << "<section id=\"localizations\"><h2>Localisations</h2>\n";
  if (ctx.campaign.localizations.empty()) {
    out << "<p class=\"muted\">No localisation is stored. <code>deltann localize --db "
        << html_escape(ctx.db_path)
        << " --a ENV --b ENV</code> adds one: where in the network two variants part.</p>\n"
           "</section>\n";
    return;
  }
  out << "<p class=\"note\">Relative L2 error between A and B at every matched layer, in A's "
         "execution order (log scale; exact agreement is drawn at "
      << kPlotFloor
      << "), each reference's distance to A and to B, the threshold, and the first layer where "
         "the error jumps (marked). docs/LOCALIZE.md explains the rule.</p>\n";
  for (size_t n = 0; n < ctx.campaign.localizations.size(); ++n) {
    const auto& l = ctx.campaign.localizations[n];
    const nlohmann::json j = parse_localization(l);
    out << "<h3>#" << l.id << ": " << env_html(l.env_a) << " vs " << env_html(l.env_b) << " on "
        << html_escape(l.image_key) << " <span class=\"muted\">(" << html_escape(l.recorded_at)
        << " UTC)</span></h3>\n";
    if (const auto campaign = nlohmann::json::parse(l.json, nullptr, false);
        campaign.is_object() && campaign.value("kind", "") == "campaign") {
      write_campaign_localization(campaign, out);
      continue;
    }
    if (j.is_null()) {
      out << "<p class=\"muted\">This localisation's record cannot be read.</p>\n";
      continue;
    }
    out << "<table class=\"facts\">";
    const auto row = [&](const std::string& key, const std::string& value_html) {
      out << "<tr><th>" << html_escape(key) << "</th><td>" << value_html << "</td></tr>";
    };
    const auto& jump = j.value("jump", nlohmann::json());
    if (jump.is_object()) {
      const auto rel = jump.value("rel_l2", nlohmann::json());
      // A number, or the word json_number wrote for a non-finite one.
      const std::string rel_text = rel.is_number()   ? format_double("%.3g", rel.get<double>())
                                   : rel.is_string() ? rel.get<std::string>()
                                                     : rel.dump();
      row("first jump", "<code>" + html_escape(jump.value("name", "")) + "</code> (" +
                            html_escape(jump.value("op_a", "")) + "), relative error " +
                            html_escape(rel_text) + ", rule " +
                            html_escape(jump.value("rule", "")));
    } else {
      row("first jump", "none: no layer above the threshold");
    }
    row("layers matched",
        std::to_string(j.at("layers").size()) +
            " (only in A: " + std::to_string(j.value("only_a", nlohmann::json::array()).size()) +
            ", only in B: " + std::to_string(j.value("only_b", nlohmann::json::array()).size()) +
            ")");
    const auto verdict = j.value("verdict", nlohmann::json());
    if (verdict.is_string())
      row("references say", verdict == "a"   ? "A deviates"
                            : verdict == "b" ? "B deviates"
                                             : html_escape(verdict.get<std::string>()));
    for (const auto& c : j.value("cause", nlohmann::json::array()))
      row("cause",
          html_escape(c.value("node", "") + ": " + c.value("what", "") + ": " + c.value("a", "") +
                      " -> " + c.value("b", "") +
                      (c.contains("kind_text") ? " [" + c.value("kind_text", "") + "]" : "")));
    for (const char* side : {"a", "b"})
      if (j.contains(side) && j.at(side).is_object())
        row(std::string("capture ") + (side[0] == 'a' ? "A" : "B"),
            html_escape(j.at(side).value("mode", "")));
    out << "</table>\n";
    if (!j.at("layers").empty()) {
      out << "<div class=\"chart-box\"><canvas id=\"chart-localization-" << n + 1
          << "\" role=\"img\" aria-label=\"relative error along the graph\"></canvas></div>\n";
    }
  }
  out << "</section>\n";
}

nlohmann::json chart_data(const Context& ctx) {
  nlohmann::json variants = nlohmann::json::array();
  for (size_t i = 0; i < ctx.c.variants.size(); ++i) {
    static const std::vector<double> kNone;
    const CampaignVariant* stored = stored_variant(ctx, i);
    const auto& samples = stored ? stored->samples_ms : kNone;
    nlohmann::json v{{"index", i},
                     {"name", "#" + std::to_string(i + 1)},
                     {"env", ctx.c.variants[i].env},
                     {"cdf", cdf_points(samples, ctx.options.cdf_points)}};
    if (!samples.empty()) {
      v["p10"] = rounded(stats::percentile_sorted(samples, 10));
      v["p50"] = rounded(stats::percentile_sorted(samples, 50));
      v["p90"] = rounded(stats::percentile_sorted(samples, 90));
    }
    variants.push_back(std::move(v));
  }
  return {{"variants", variants}, {"localizations", localization_series(ctx)}};
}

void write_timing(const Context& ctx, std::ostream& out) {
  size_t timed = 0;
  for (const auto& v : ctx.campaign.variants) timed += !v.samples_ms.empty();
  out << "<section id=\"timing\"><h2>Timing distributions</h2>\n";
  if (timed == 0) {
    out << "<p class=\"muted\">No timing samples are stored.</p>\n</section>\n";
    return;
  }
  out << "<p class=\"note\">Empirical cumulative distribution of the latency of every timed "
         "inference, per variant (at most "
      << ctx.options.cdf_points
      << " points each). A curve further left is faster; a steep curve is stable.</p>\n"
         "<div class=\"chart-box\"><canvas id=\"chart-cdf\" role=\"img\" "
         "aria-label=\"latency CDF per variant\"></canvas></div>\n"
         "<p class=\"note\">Median (black mark) and the 10th to 90th percentile range (bar) per "
         "variant.</p>\n"
         "<div class=\"chart-box\" style=\"height:320px\"><canvas id=\"chart-medians\" "
         "role=\"img\" "
         "aria-label=\"median latency per variant\"></canvas></div>\n</section>\n";
}

void write_gallery(const Context& ctx, std::ostream& out) {
  out << "<section id=\"gallery\"><h2>Images with top-1 disagreements</h2>\n";
  // Images ranked by the number of pairs that disagree on them.
  std::map<std::string, int> disagreeing;
  for (const auto& p : ctx.c.pairs)
    for (const auto& key : p.differing_images) ++disagreeing[key];
  if (disagreeing.empty()) {
    out << "<p class=\"muted\">Every pair of variants agrees on the top-1 class of every image "
           "both ran.</p>\n</section>\n";
    return;
  }
  std::vector<std::pair<std::string, int>> ranked(disagreeing.begin(), disagreeing.end());
  const auto id_of = [&ctx](const std::string& key) {
    const auto it = ctx.image_by_key.find(key);
    return it == ctx.image_by_key.end() ? INT64_MAX : it->second->id;
  };
  std::stable_sort(ranked.begin(), ranked.end(), [&](const auto& x, const auto& y) {
    if (x.second != y.second) return x.second > y.second;
    return id_of(x.first) < id_of(y.first);
  });
  const size_t shown =
      std::min(ranked.size(), static_cast<size_t>(std::max(ctx.options.gallery_images, 0)));
  out << "<p class=\"note\">" << ranked.size() << " image" << (ranked.size() == 1 ? "" : "s")
      << " where at least one pair of variants disagrees on the top-1 class";
  if (shown < ranked.size()) out << "; the " << shown << " with the most disagreeing pairs shown";
  out << ". Each variant's three best classes with their scores; top-1 cells of the same colour "
         "name the same class.</p>\n<div class=\"gallery\">\n";
  for (size_t r = 0; r < shown; ++r) {
    const std::string& key = ranked[r].first;
    const auto it = ctx.image_by_key.find(key);
    const StoredImage* image = it == ctx.image_by_key.end() ? nullptr : it->second;
    out << "<figure class=\"card\"><div class=\"top\">";
    const Thumbnail thumb = image ? make_thumbnail(image->path, ctx.options.thumbnail_px)
                                  : Thumbnail{"", "image is not in the database", 0, 0, false};
    if (thumb.data_uri.empty()) {
      out << "<div class=\"thumb missing\">" << html_escape(thumb.problem) << "</div>";
    } else {
      out << "<div class=\"thumb\"><img" << (thumb.upscaled ? " class=\"pixelated\"" : "")
          << " src=\"" << thumb.data_uri << "\" width=\"" << thumb.width << "\" height=\""
          << thumb.height << "\" alt=\"" << html_escape(key) << "\"></div>";
    }
    out << "<figcaption><div class=\"key\">" << html_escape(key) << "</div>";
    if (image) out << "<div class=\"path muted\">" << html_escape(image->path) << "</div>";
    int64_t model_id = 0;
    if (!ctx.campaign.variants.empty()) model_id = ctx.campaign.variants.front().stored.model_id;
    if (image && image->label)
      out << "<div>label: " << class_label(ctx, model_id, *image->label) << "</div>";
    out << "<div>disagreeing pairs: " << ranked[r].second << " of " << ctx.c.pairs.size()
        << "</div></figcaption></div>\n";

    // Up to three classes per variant; fewer when the model has fewer.
    size_t columns = 1;
    for (const auto& results : ctx.results)
      if (image)
        if (auto found = results.find(image->id); found != results.end())
          columns = std::max(columns, std::min<size_t>(found->second->top_ids.size(), 3));
    out << "<table class=\"preds\"><tr><th>#</th>";
    for (size_t k = 0; k < columns; ++k) out << "<th>top-" << k + 1 << "</th>";
    out << "</tr>\n";
    std::vector<int> distinct_top1;
    for (size_t i = 0; i < ctx.results.size(); ++i) {
      const auto& results = ctx.results[i];
      out << "<tr><td>" << variant_ref(ctx, ctx.c.variants[i].env) << "</td>";
      const CampaignResult* result = nullptr;
      if (image)
        if (auto found = results.find(image->id); found != results.end()) result = found->second;
      if (!result || result->top_ids.empty()) {
        out << "<td colspan=\"" << columns << "\" class=\"muted\">no result</td></tr>\n";
        continue;
      }
      const int64_t mid = ctx.campaign.variants[i].stored.model_id;
      for (size_t k = 0; k < columns; ++k) {
        if (k >= result->top_ids.size()) {
          out << "<td></td>";
          continue;
        }
        const int id = result->top_ids[k];
        out << "<td";
        if (k == 0) {
          auto pos = std::find(distinct_top1.begin(), distinct_top1.end(), id);
          if (pos == distinct_top1.end()) pos = distinct_top1.insert(distinct_top1.end(), id);
          out << " class=\"l" << std::min<long>(pos - distinct_top1.begin(), 7) << "\"";
        }
        out << ">" << class_label(ctx, mid, id);
        if (k < result->top_scores.size())
          out << " <span class=\"score\" title=\"" << format_double("%.9g", result->top_scores[k])
              << "\">" << format_double("%.4g", result->top_scores[k]) << "</span>";
        if (k == 0 && image->label)
          out << (id == *image->label
                      ? " <span class=\"ok-mark\" title=\"correct\">&#10003;</span>"
                      : " <span class=\"bad-mark\" title=\"wrong\">&#10007;</span>");
        out << "</td>";
      }
      out << "</tr>\n";
    }
    out << "</table></figure>\n";
  }
  out << "</div>\n</section>\n";
}

void write_failures(const Context& ctx, std::ostream& out) {
  out << "<section id=\"failures\"><h2>Failures</h2>\n";
  const auto& failures = ctx.campaign.failures;
  if (failures.empty()) {
    out << "<p class=\"muted\">No failure was recorded.</p>\n</section>\n";
    return;
  }
  constexpr size_t kShown = 100;
  out << "<div class=\"scroll\"><table class=\"wide\"><tr><th>variant</th><th>image</th>"
         "<th>stage</th><th>symptom</th><th>message</th></tr>\n";
  for (size_t i = 0; i < failures.size() && i < kShown; ++i) {
    const auto& f = failures[i];
    std::string variant = "variant " + std::to_string(f.variant_id);
    if (const auto it = ctx.number_by_id.find(f.variant_id); it != ctx.number_by_id.end())
      variant = variant_ref(ctx, ctx.c.variants[it->second - 1].env);
    std::string image = kDash;
    if (f.image_id) {
      const StoredImage* stored = ctx.campaign.image(*f.image_id);
      image = !stored ? "image " + std::to_string(*f.image_id)
                      : "<span class=\"env\">" + html_escape(stored->key) + "</span>";
    }
    out << "<tr><td>" << variant << "</td><td>" << image << "</td><td>" << to_string(f.stage)
        << "</td><td>" << to_string(f.symptom) << "</td><td class=\"msg\">"
        << html_escape(f.message) << "</td></tr>\n";
  }
  out << "</table></div>\n";
  if (failures.size() > kShown)
    out << "<p class=\"note\">" << failures.size() - kShown
        << " more failures are in the database (table failures).</p>\n";
  out << "</section>\n";
}

// The images no variant ran, with the reason: a campaign is never silently smaller than its
// dataset.
void write_unusable(const Context& ctx, std::ostream& out) {
  const auto& unusable = ctx.c.unusable_images;
  out << "<section id=\"unusable\"><h2>" << unusable.size() << " images unusable</h2>\n";
  if (unusable.empty()) {
    out << "<p class=\"muted\">Every image of the dataset could be used.</p>\n</section>\n";
    return;
  }
  out << "<p class=\"note\">No variant ran these images; the numbers above leave them out.</p>\n"
         "<div class=\"scroll\"><table class=\"wide\"><tr><th>image</th><th>path</th>"
         "<th>reason</th></tr>\n";
  for (const auto& u : unusable)
    out << "<tr><td class=\"env\">" << html_escape(u.key) << "</td><td class=\"path\">"
        << html_escape(u.path) << "</td><td class=\"msg\">" << html_escape(u.reason)
        << "</td></tr>\n";
  out << "</table></div>\n</section>\n";
}

void write_meta(const Context& ctx, std::ostream& out) {
  out << "<section id=\"meta\"><details><summary>All campaign metadata</summary>\n"
         "<table class=\"wide\">\n";
  for (const auto& [key, value] : ctx.meta) {
    out << "<tr><th>" << html_escape(key) << "</th><td class=\"env\">" << html_escape(value)
        << "</td></tr>\n";
  }
  out << "</table></details></section>\n";
}

// The published study's two tables (deltann/study_tables.h): label differences against each
// model's baseline, and the median time per opt level with the slow-down against the lowest.
void write_study(const Context& ctx, std::ostream& out) {
  const StudyTables tables = study_tables(ctx.campaign, ctx.c, ctx.options.study);
  const AnalysisOptions& o = ctx.c.options;
  out << "<section id=\"study\"><h2>Study tables</h2>\n<p class=\"note\">The tables of the "
         "published DeltaNN study. Label differences: each variant against its model's baseline "
         "(the first variant of the model unless <code>--baseline</code> names one), with the "
      << percent(o.confidence)
      << " interval of each rate. Optimisation levels: the median time of each opt level of one "
         "engine setting and its ratio to the lowest level (above 1: slower), with the "
      << percent(o.confidence)
      << " interval of the ratio; significant as in the pairs table. <code>deltann export "
         "--format csv --table study_labels</code> (or <code>study_timing</code>) writes them as "
         "CSV.</p>\n";
  // The column named `name` of a study field table (a programming error when there is none).
  const auto named = [](const auto& fields, const std::string& name) -> const auto& {
    for (const auto& f : fields)
      if (name == f.name) return f;
    throw std::out_of_range("no study column " + name);
  };
  const auto cell = [](const auto& field, const auto& row) {
    return "<td" + std::string(field.format == FieldFormat::text ? "" : " class=\"n\"") + ">" +
           html_escape(format_value(field.format, field.value(row))) + "</td>";
  };
  // A rate with its interval, "3.1% [1.2–6.5]", from the companions `<name>_ci_low/high`.
  const auto rate_cell = [&named](const auto& fields, const auto& row, const std::string& name) {
    const auto& value = named(fields, name);
    return "<td class=\"n\">" +
           html_escape(format_value(value.format, value.value(row)) +
                       format_interval(value.format, named(fields, name + "_ci_low").value(row),
                                       named(fields, name + "_ci_high").value(row))) +
           "</td>";
  };
  if (tables.labels.empty() && tables.timing.empty()) {
    out << "<p class=\"muted\">No model has two variants.</p>\n</section>\n";
    return;
  }
  const auto& lf = study_label_fields();
  const auto& tf = study_timing_fields();
  for (size_t m = 1; m <= ctx.c.models.size(); ++m) {
    std::vector<const StudyLabelRow*> labels;
    for (const auto& r : tables.labels)
      if (static_cast<size_t>(r.model) == m) labels.push_back(&r);
    std::vector<const StudyTimingRow*> timing;
    for (const auto& r : tables.timing)
      if (static_cast<size_t>(r.model) == m) timing.push_back(&r);
    if (labels.empty() && timing.empty()) continue;
    out << "<h3>" << html_escape(ctx.c.models[m - 1].path) << "</h3>\n";
    if (!labels.empty()) {
      out << "<p>Baseline: <span class=\"env\">" << env_html(labels.front()->baseline)
          << "</span></p>\n<div class=\"scroll\"><table class=\"wide\">\n<tr>"
          << field_th(named(lf, "variant")) << field_th(named(lf, "axis"))
          << field_th(named(lf, "images")) << field_th(named(lf, "top1_differences"))
          << field_th(named(lf, "top1_difference_rate")) << field_th(named(lf, "top5_differences"))
          << field_th(named(lf, "top5_difference_rate")) << "</tr>\n";
      for (const StudyLabelRow* r : labels)
        out << "<tr><td><span class=\"env\">" << env_html(r->variant) << "</span></td>"
            << cell(named(lf, "axis"), *r) << cell(named(lf, "images"), *r)
            << cell(named(lf, "top1_differences"), *r) << rate_cell(lf, *r, "top1_difference_rate")
            << cell(named(lf, "top5_differences"), *r) << rate_cell(lf, *r, "top5_difference_rate")
            << "</tr>\n";
      out << "</table></div>\n";
    }
    if (!timing.empty()) {
      out << "<div class=\"scroll\"><table class=\"wide\">\n<tr>" << field_th(named(tf, "engine"))
          << field_th(named(tf, "setting")) << field_th(named(tf, "opt"))
          << field_th(named(tf, "samples")) << field_th(named(tf, "median_ms"))
          << "<th class=\"n\">median CI ms</th>" << field_th(named(tf, "ratio"))
          << "<th class=\"n\">ratio CI</th>" << field_th(named(tf, "p_adjusted"))
          << field_th(named(tf, "significant")) << "</tr>\n";
      for (const StudyTimingRow* r : timing) {
        const bool slower = r->significant && r->ratio && *r->ratio > 1;
        const bool faster = r->significant && r->ratio && *r->ratio < 1;
        out << "<tr>" << cell(named(tf, "engine"), *r) << cell(named(tf, "setting"), *r)
            << cell(named(tf, "opt"), *r) << cell(named(tf, "samples"), *r)
            << cell(named(tf, "median_ms"), *r) << "<td class=\"n\">"
            << interval(r->median_ci_ms, ms) << "</td><td class=\"n\">"
            << (slower   ? "<span class=\"slower\">"
                : faster ? "<span class=\"faster\">"
                         : "")
            << html_escape(format_value(named(tf, "ratio").format, named(tf, "ratio").value(*r)))
            << (slower || faster ? "</span>" : "") << "</td><td class=\"n\">"
            << interval(r->ratio_ci, general) << "</td>" << cell(named(tf, "p_adjusted"), *r)
            << cell(named(tf, "significant"), *r) << "</tr>\n";
      }
      out << "</table></div>\n";
    }
  }
  out << "</section>\n";
}
}  // namespace

void write_html_report(const Store& store, const Comparison& comparison, std::ostream& out,
                       const HtmlReportOptions& options) {
  write_html_report(load_campaign(store, {.outputs = false}), comparison, out, options);
}

void write_html_report(const CampaignData& campaign, const Comparison& comparison,
                       std::ostream& out, const HtmlReportOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(options.chart_js, ec))
    throw Error("the chart library " + options.chart_js.string() +
                " does not exist; install the Debian package libjs-chart.js (apt-get install "
                "libjs-chart.js) or name another Chart.js 3 UMD build");
  std::string chart_js = read_text_file(options.chart_js);
  // The library goes inside <script>: nothing in it may end the element early.
  for (size_t at = 0; (at = chart_js.find("</", at)) != std::string::npos; at += 2) {
    std::string tag = chart_js.substr(at + 2, 6);
    std::transform(tag.begin(), tag.end(), tag.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (tag == "script") chart_js.replace(at, 2, "<\\/");
  }

  Context ctx(campaign, comparison, options);
  load_context(ctx);
  ctx.db_path = fs::absolute(campaign.db_path).string();

  std::string model_name;
  if (!campaign.models.empty()) model_name = model_title(campaign.models.front());
  const std::string title = !options.title.empty()
                                ? options.title
                                : "deltann report" + (model_name.empty() ? "" : ": " + model_name);

  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
         "base-uri 'none'; form-action 'none'\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta name=\"generator\" content=\"deltann "
      << html_escape(kVersion) << "\">\n<title>" << html_escape(title) << "</title>\n<script>"
      << kErrorScript << "</script>\n<style>" << kStyle << "</style>\n</head>\n<body>\n"
      << "<pre id=\"js-errors\" hidden></pre>\n<header class=\"top\"><h1>" << html_escape(title)
      << "</h1><nav><a href=\"#summary\">Summary</a><a href=\"#findings\">Findings</a>"
         "<a href=\"#variants\">Variants</a><a href=\"#devices\">Devices</a>"
         "<a href=\"#heatmap\">Label differences</a>"
         "<a href=\"#axes\">Pairs by axis</a>"
      << (comparison.shifts.empty() ? "" : "<a href=\"#shifts\">By transform</a>")
      << "<a href=\"#timing\">Timing</a>"
         "<a href=\"#study\">Study tables</a>"
         "<a href=\"#localizations\">Localisations</a>"
         "<a href=\"#gallery\">Disagreeing images</a><a href=\"#unusable\">Unusable images</a>"
         "<a href=\"#failures\">Failures</a>"
         "<a href=\"#meta\">Metadata</a></nav></header>\n<main>\n";
  write_header(ctx, out);
  write_findings(ctx, out);
  write_variants(ctx, out);
  write_devices(ctx, out);
  write_heatmap(ctx, out);
  write_axes(ctx, out);
  write_shifts(ctx, out);
  write_timing(ctx, out);
  write_study(ctx, out);
  write_localizations(ctx, out);
  write_gallery(ctx, out);
  write_unusable(ctx, out);
  write_failures(ctx, out);
  write_meta(ctx, out);
  out << "</main>\n<script type=\"application/json\" id=\"deltann-data\">"
      << json_for_script(chart_data(ctx)) << "</script>\n<script>\n"
      << chart_js << "\n</script>\n<script>" << kChartScript << "</script>\n</body>\n</html>\n";
}

}  // namespace deltann
