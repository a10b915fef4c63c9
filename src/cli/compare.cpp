// `deltann compare`: pairwise label, output and timing comparison of a campaign database.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "analysis_options.h"
#include "deltann/campaign_data.h"
#include "deltann/compare.h"
#include "deltann/error.h"
#include "deltann/store.h"
#include "verbs.h"

namespace deltann::cli {

void add_compare(CLI::App& app) {
  struct Options {
    std::string db;
    AnalysisOptions analysis;
    bool json = false;
    TerminalOptions terminal;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("compare", "compare the variants stored in a campaign database");
  cmd->add_option("--db", options->db, "campaign database")->required();
  add_analysis_options(cmd, options->analysis);
  cmd->add_flag("--json", options->json, "machine-readable output");
  cmd->add_flag("--matrix", options->terminal.matrix,
                "print the variant x variant matrix of label differences even when it is wider "
                "than 100 columns");
  cmd->callback([options] {
    if (!std::filesystem::exists(options->db))
      throw Error("database " + options->db + " does not exist");
    const Store store(options->db, StoreMode::ReadOnly);
    print(compare_variants(load_campaign(store), options->analysis), options->json,
          options->terminal);
  });
}

const VerbRegistration kRegistered{20, add_compare};

}  // namespace deltann::cli
