// `deltann export`: the campaign database and its analysis as JSON or CSV (docs/EXPORT.md).
#include <filesystem>
#include <fstream>
#include <iostream>

#include "analysis_options.h"
#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/environment.h"
#include "deltann/error.h"
#include "deltann/export.h"
#include "deltann/store.h"
#include "deltann/study_tables.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

struct ExportOptions {
  std::string db, format, table, output;
  AnalysisOptions analysis;
  StudyOptions study;
};

void write(const CampaignData& campaign, const Comparison& comparison, const ExportOptions& o,
           std::ostream& out) {
  if (o.format == "json") {
    export_json(campaign, comparison, out, o.study);
  } else {
    export_csv(campaign, comparison, *parse_export_table(o.table.empty() ? "results" : o.table),
               out, o.study);
  }
}

void execute(const ExportOptions& o) {
  if (o.format == "json" && !o.table.empty())
    throw CLI::ValidationError("--table", "applies to --format csv only (JSON holds every table)");
  if (!std::filesystem::exists(o.db)) throw Error("database " + o.db + " does not exist");
  for (const auto& baseline : o.study.baselines) parse_environment(baseline);  // fails early
  // The results table needs neither the analysis nor the full outputs it compares.
  const bool results_only = o.format == "csv" && (o.table.empty() || o.table == "results");
  const CampaignData campaign =
      load_campaign(Store(o.db, StoreMode::ReadOnly), {.outputs = !results_only});
  const Comparison comparison =
      results_only ? Comparison{} : compare_variants(campaign, o.analysis);
  if (o.output.empty() || o.output == "-") {
    write(campaign, comparison, o, std::cout);
    std::cout.flush();
    if (!std::cout) throw Error("cannot write the export to standard output");
    return;
  }
  // Written beside the target and renamed at the end, so a failed export leaves no partial file.
  const std::filesystem::path target = o.output;
  const std::filesystem::path partial = target.string() + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot create " + partial.string());
    try {
      write(campaign, comparison, o, out);
      out.flush();
    } catch (...) {
      out.close();
      std::filesystem::remove(partial);
      throw;
    }
    if (!out) {
      out.close();
      std::filesystem::remove(partial);
      throw Error("cannot write " + target.string() + " (disk full?)");
    }
  }
  std::filesystem::rename(partial, target);
}

}  // namespace

void add_export(CLI::App& app) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write a campaign database and its analysis as JSON or CSV (docs/EXPORT.md)");
  cmd->add_option("--db", options->db, "campaign database")->required();
  cmd->add_option("--format", options->format, "json (every table) or csv (one table)")
      ->required()
      ->check(CLI::IsMember({"csv", "json"}));
  cmd->add_option("--table", options->table,
                  "with --format csv: variants, pairs, shifts, findings, unusable_images, "
                  "study_labels, study_timing or results (default: results)")
      ->check(CLI::IsMember({"variants", "pairs", "shifts", "findings", "unusable_images",
                             "study_labels", "study_timing", "results"}));
  cmd->add_option("--baseline", options->study.baselines,
                  "environment each model's variants are compared with in the study tables "
                  "(repeatable: the first that names a variant of the model; default: the model's "
                  "first variant)");
  cmd->add_option("-o,--output", options->output, "output file (default: standard output)");
  add_analysis_options(cmd, options->analysis);
  cmd->callback([options] { execute(*options); });
}

const VerbRegistration kRegistered{50, add_export};

}  // namespace deltann::cli
