// `deltann run`: with no arguments, the demo campaign; otherwise the given model, images and
// environments.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "analysis_options.h"
#include "campaign_options.h"
#include "deltann/campaign.h"
#include "deltann/compare.h"
#include "deltann/error.h"
#include "deltann/preprocess.h"
#include "deltann/store.h"
#include "deltann/text.h"
#include "run/locate.h"
#include "run/shard.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

std::string duration_text(double seconds) {
  const long s = std::lround(seconds);
  return s >= 60 ? std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s"
                 : std::to_string(s) + " s";
}

// What a person sees of a campaign on standard error: its events as lines, and a progress line
// that rewrites itself on a terminal (and appears at each tenth of the work otherwise).
class TerminalDisplay final : public MessageLines {
 public:
  explicit TerminalDisplay(bool quiet)
      : MessageLines([this](const std::string& line) { print(line); }), quiet_(quiet) {}

  void on_progress(int64_t done, int64_t total, double eta) override {
    if (quiet_) return;
    const std::string text = std::to_string(done) + "/" + std::to_string(total) + " inferences (" +
                             std::to_string(100 * done / std::max<int64_t>(total, 1)) +
                             "%), about " + duration_text(eta) + " left";
    if (tty_) {
      std::cerr << "\r\033[K" << text << std::flush;
      if (done == total) std::cerr << '\n';
    } else if (const int decile = static_cast<int>(10 * done / std::max<int64_t>(total, 1));
               decile != last_decile_) {
      last_decile_ = decile;
      std::cerr << text << '\n';
    }
  }

 private:
  void print(const std::string& line) const {
    if (tty_) std::cerr << "\r\033[K";
    std::cerr << terminal_safe(line) << '\n';  // lines name images and quote engine messages
  }

  bool quiet_;
  bool tty_ = ::isatty(STDERR_FILENO);
  int last_decile_ = -1;
};

struct RunOptions {
  CampaignOptions campaign;
  AnalysisOptions analysis;
  std::string events;
  // A shard of a plan folder instead of a campaign of its own (docs/SCALE_OUT.md).
  std::string plan, local_dir;
  std::optional<int> shard;
  bool json = false;
  bool quiet = false;
};

void print_outcome(const CampaignOutcome& outcome, const std::filesystem::path& db) {
  std::cerr << "campaign: " << outcome.variants_run << " variants run, " << outcome.variants_failed
            << " failed, " << outcome.variants_skipped << " skipped or already complete; "
            << outcome.images_ok << " images ready, " << outcome.images_bad << " unusable, "
            << outcome.images_duplicate << " duplicate entries run once as their first copy; "
            << outcome.images_timed << " images timed; " << outcome.results_written
            << " results written to " << db.string() << "\n";
}

// One shard of a plan folder: the campaign comes from the folder, the result goes into its
// results/ (docs/SCALE_OUT.md). No comparison is printed: a shard is a part of the campaign.
void execute_shard(const RunOptions& o, const CLI::App& command, CampaignObserver& events) {
  // What shapes results comes from the plan: an option that would change it is refused rather
  // than ignored.
  for (const char* option :
       {"--model", "--spec", "--images", "--labels", "--synsets", "--env", "--warmup", "--repeat",
        "--timing-images", "--keep-outputs", "--timeout", "--build-timeout", "--shuffle", "--db",
        "--json", "--retry-failed", "--new-model"})
    if (command.count(option) > 0)
      throw Error(std::string("run --plan takes the campaign from the plan folder: ") + option +
                  " cannot be given with it (plan again to change the campaign)");
  if (!o.campaign.campaign_file.empty())
    throw Error("run --plan takes the campaign from the plan folder: a campaign file (" +
                o.campaign.campaign_file + ") cannot be given with it");
  ShardRunOptions options;
  options.plan_dir = o.plan;
  options.shard = o.shard;
  options.local_dir = o.local_dir;
  options.cache_dir =
      o.campaign.cache.empty() ? default_cache_dir() : std::filesystem::path(o.campaign.cache);
  options.worker_dir = default_worker_dir();
  options.jobs = o.campaign.config.jobs;
  const ShardRun run = run_shard(options, events);
  if (run.already_done) {
    std::cerr << "shard " << run.index << " (from " << run.source
              << ") is already done: " << run.result.string() << "; nothing to run\n";
    return;
  }
  print_outcome(run.outcome, run.result);
}

void execute(RunOptions& o, const CLI::App& command) {
  if (o.plan.empty() && (o.shard || !o.local_dir.empty()))
    throw Error("--shard and --local-dir run a shard of a plan folder: give --plan DIR too");
  TerminalDisplay terminal(o.quiet);
  CampaignEventFanout events;
  events.subscribe(terminal);
  std::ofstream event_file;
  std::optional<JsonEventLog> event_log;
  if (!o.events.empty()) {
    event_file.open(o.events, std::ios::trunc);
    if (!event_file) throw Error("cannot write the event log " + o.events);
    events.subscribe(event_log.emplace(event_file));
  }
  if (!o.plan.empty()) return execute_shard(o, command, events);

  const bool demo = resolve_campaign(o.campaign, command, "run");
  CampaignConfig& c = o.campaign.config;
  if (c.db.empty() && demo) c.db = "demo.db";
  if (c.db.empty())
    throw Error("run needs --db FILE for the results (or `db` in the campaign file)");
  const CampaignOutcome outcome = run_campaign(c, events);
  print_outcome(outcome, c.db);
  Store store(c.db, StoreMode::ReadOnly);
  const Comparison comparison = compare_variants(store, o.analysis);
  print(comparison, o.json);
  // A campaign that produced nothing must not pass for one that did: a pipeline stops here.
  const bool any_result = std::any_of(comparison.variants.begin(), comparison.variants.end(),
                                      [](const VariantSummary& v) { return v.images > 0; });
  if (!any_result)
    throw NegativeAnswer(
        "no variant produced a result: " + std::to_string(comparison.variants.size()) +
        " variant(s), " + std::to_string(outcome.variants_failed) + " failed, " +
        std::to_string(outcome.variants_skipped) + " skipped" +
        (outcome.images_ok == 0 ? ", and no image was usable" : "") + " (reasons above)");
}

}  // namespace

void add_run(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* run =
      app.add_subcommand("run",
                         "run a campaign (no arguments: the demo campaign; no --env: the demo's "
                         "environments on --model/--images; FILE: a campaign file)");
  add_campaign_options(run, options->campaign);
  run->add_option("--db", options->campaign.db, "campaign database (demo: demo.db)");
  run->add_option("--jobs", options->campaign.config.jobs,
                  "variants run at a time, on cores of their own, for the images outside the "
                  "timing sample; timed images always run one inference at a time, the variants "
                  "taking turns")
      ->capture_default_str();
  run->add_flag("--retry-failed", options->campaign.config.retry_failed,
                "run variants and images that failed before again");
  run->add_flag("--new-model", options->campaign.config.new_model,
                "add the model to a database that holds results of another model file or spec "
                "(refused otherwise)");
  run->add_flag("--wait", options->campaign.config.wait_for_lock,
                "wait for another campaign using the same --db instead of refusing to start");
  add_analysis_options(run, options->analysis);
  run->add_flag("--json", options->json, "print the summary as JSON");
  run->add_flag("--quiet", options->quiet, "no progress line");
  run->add_option("--plan", options->plan,
                  "run one shard of this plan folder (made by `deltann plan`) instead");
  run->add_option("--shard", options->shard,
                  "with --plan: the shard to run (default: $SLURM_ARRAY_TASK_ID, else "
                  "$JOB_COMPLETION_INDEX)");
  run->add_option("--local-dir", options->local_dir,
                  "with --plan: node-local folder for the shard's database while it runs "
                  "(default: $TMPDIR, else /tmp)");
  run->add_option("--events", options->events,
                  "also write the campaign's events to this file, one JSON object per line");
  run->callback([options, run] { execute(*options, *run); });
}

const VerbRegistration kRegistered{10, add_run};

}  // namespace deltann::cli
