// `deltann report`: the comparison of a campaign database as one self-contained HTML file.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "analysis_options.h"
#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/environment.h"
#include "deltann/error.h"
#include "deltann/report.h"
#include "deltann/store.h"
#include "verbs.h"

namespace deltann::cli {

void add_report(CLI::App& app) {
  struct Options {
    std::string db;
    AnalysisOptions analysis;
    std::string output;
    HtmlReportOptions report;
    std::string chart_js = kDefaultChartJs;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "report", "write the comparison of a campaign database as one self-contained HTML file");
  cmd->add_option("--db", options->db, "campaign database")->required();
  add_analysis_options(cmd, options->analysis);
  cmd->add_option("-o,--output", options->output, "HTML file to write ('-': standard output)")
      ->required();
  cmd->add_option("--chart-js", options->chart_js,
                  "Chart.js 3 UMD build to inline (Debian package libjs-chart.js)")
      ->capture_default_str();
  cmd->add_option("--gallery", options->report.gallery_images,
                  "at most this many disagreeing images get a thumbnail")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--title", options->report.title, "page title (default: from the model)");
  cmd->add_option("--baseline", options->report.study.baselines,
                  "environment each model's variants are compared with in the study tables "
                  "(repeatable: the first that names a variant of the model; default: the model's "
                  "first variant)");
  cmd->callback([options] {
    if (!std::filesystem::exists(options->db))
      throw Error("database " + options->db + " does not exist");
    options->report.chart_js = options->chart_js;
    for (const auto& baseline : options->report.study.baselines)
      parse_environment(baseline);  // a typo fails before the campaign is read
    const CampaignData campaign = load_campaign(Store(options->db, StoreMode::ReadOnly));
    const Comparison comparison = compare_variants(campaign, options->analysis);
    // Built in memory first, so that a failure never leaves half a report behind.
    std::ostringstream html;
    write_html_report(campaign, comparison, html, options->report);
    if (options->output == "-") {
      std::cout << html.str();
      return;
    }
    const std::filesystem::path path = options->output;
    const std::filesystem::path temporary = path.string() + ".tmp";
    {
      std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
      if (!file) throw Error("cannot write " + temporary.string());
      file << html.str();
      file.close();
      if (!file) throw Error("cannot write " + temporary.string());
    }
    std::error_code ec;
    std::filesystem::rename(temporary, path, ec);
    if (ec) {
      std::filesystem::remove(temporary, ec);
      throw Error("cannot write " + path.string());
    }
    std::cout << "report written to " << path.string() << " (" << (html.str().size() + 1023) / 1024
              << " KiB)\n";
  });
}

const VerbRegistration kRegistered{40, add_report};

}  // namespace deltann::cli
