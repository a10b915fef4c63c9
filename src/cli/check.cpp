// `deltann check`: a CI gate. Exit 0 when every variant passes against the baseline, 3 when one
// fails, 1 for an error (so that a broken gate is not taken for a failed variant), 2 for a usage
// error (bad option, missing database, baseline naming no single variant).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "deltann/campaign_data.h"
#include "deltann/check.h"
#include "deltann/error.h"
#include "deltann/store.h"
#include "deltann/text.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

struct CheckArgs {
  std::string db, baseline, max_label_diff, max_slowdown, junit;
};

// CLI11 gives its own exit codes (100 and up) to the errors it finds; the ones found here exit 2.
[[noreturn]] void usage(const std::string& message) {
  throw CLI::ValidationError(message, kExitUsage);
}

double fraction_option(const std::string& name, const std::string& text) {
  try {
    return parse_fraction(text);
  } catch (const Error& e) {
    usage(name + ": " + e.what());
  }
}

void execute(const CLI::App& cmd, const CheckArgs& a) {
  if (!cmd.remaining().empty()) usage("unexpected argument '" + cmd.remaining().front() + "'");
  if (a.db.empty()) usage("--db is required");
  if (a.baseline.empty()) usage("--baseline is required");
  if (a.max_label_diff.empty()) usage("--max-label-diff is required");
  if (!std::filesystem::exists(a.db)) usage("database " + a.db + " does not exist");
  CheckOptions options;
  options.baseline = a.baseline;
  options.max_label_diff = fraction_option("--max-label-diff", a.max_label_diff);
  if (!a.max_slowdown.empty())
    options.max_slowdown = fraction_option("--max-slowdown", a.max_slowdown);

  const CampaignData campaign = load_campaign(Store(a.db, StoreMode::ReadOnly));
  CheckVerdict verdict;
  try {
    verdict = run_check(campaign, options);
  } catch (const BaselineError& e) {
    usage(e.what());
  }
  // Variant and image names come from files: the text is made safe for the terminal.
  std::ostringstream text;
  print_verdict(verdict, text);
  std::cout << terminal_safe_lines(text.str());
  if (!a.junit.empty()) {
    std::ofstream out(a.junit, std::ios::binary | std::ios::trunc);
    out << junit_xml(verdict);
    out.flush();
    if (!out) throw Error("cannot write " + a.junit);
  }
  std::cout.flush();
  if (!verdict.passed())
    throw NegativeAnswer("check failed: " + std::to_string(verdict.failed_count()) + " of " +
                         std::to_string(verdict.variants.size()) + " variants failed against " +
                         verdict.baseline +
                         (verdict.problems.empty() ? "" : "; the baseline is unusable"));
}

}  // namespace

void add_check(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check", "pass/fail gate: compare every variant with a baseline (exit 0 pass, 3 fail)");
  // Values are read as text and checked here, so that every usage error exits 2.
  cmd->add_option("--db", args->db, "campaign database");
  cmd->add_option("--baseline", args->baseline,
                  "baseline variant: its environment, in full or enough of it to name one");
  cmd->add_option("--max-label-diff", args->max_label_diff,
                  "largest share of images whose top-1 label may differ, e.g. 0.5% or 0.005");
  cmd->add_option("--max-slowdown", args->max_slowdown,
                  "largest significant slow-down against the baseline, e.g. 10% or 0.1");
  cmd->add_option("--junit", args->junit, "also write a JUnit XML report to this file");
  cmd->allow_extras();
  cmd->callback([cmd, args] { execute(*cmd, *args); });
}

const VerbRegistration kRegistered{60, add_check};

}  // namespace deltann::cli
