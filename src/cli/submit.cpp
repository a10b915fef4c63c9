// `deltann submit --slurm DIR`: a plan folder's shards as one Slurm job array per hardware group,
// and a merge job that runs once they have all ended well (docs/SCALE_OUT.md).
#include <iostream>
#include <string>
#include <vector>

#include "deltann/error.h"
#include "deltann/text.h"
#include "run/plan_folder.h"
#include "run/shard.h"
#include "run/slurm_submit.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

struct SubmitOptions {
  std::string dir;
  bool slurm = false;
  bool dry_run = false;
  SlurmOptions slurm_options;
};

// The shards that are not done: a resubmission runs only what is left. A shard whose place in
// results/ holds another plan's database is refused: its job could only refuse to run, and the
// merge job after it to merge.
std::vector<int> pending_shards(const std::filesystem::path& dir, const CampaignPlan& plan) {
  std::vector<int> pending;
  std::string foreign;
  for (const auto& status : shard_statuses(dir, plan)) {
    if (status.state == ShardState::foreign)
      foreign += "\n  shard " + std::to_string(status.index) + " foreign: " + status.detail;
    if (status.state != ShardState::done) pending.push_back(status.index);
  }
  if (!foreign.empty())
    throw Error(dir.string() + " holds results of another plan; nothing was submitted:" + foreign);
  return pending;
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& word : argv) line += (line.empty() ? "" : " ") + word;
  return line;
}

void execute(SubmitOptions& o) {
  if (!o.slurm) throw Error("deltann submit needs a scheduler: --slurm (the only one so far)");
  const std::filesystem::path dir = std::filesystem::absolute(o.dir).lexically_normal();
  const CampaignPlan plan = read_plan_folder(dir);
  o.slurm_options.deltann = std::filesystem::read_symlink("/proc/self/exe");
  const std::vector<int> pending = pending_shards(dir, plan);
  SlurmSubmission jobs = slurm_jobs(dir, plan, pending, o.slurm_options);

  if (o.dry_run) {
    std::vector<std::string> after;
    for (const auto& job : jobs.arrays) {
      std::cout << "# " << job.script.string() << "\n" << job.text << "\n";
      after.push_back("<job id of " + job.script.filename().string() + ">");
    }
    std::cout << "# " << jobs.merge.script.string() << "\n" << jobs.merge.text << "\n";
    std::cout << "# would run (nothing was submitted):\n";
    for (const auto& job : jobs.arrays) std::cout << command_line(sbatch_command(job, {})) << "\n";
    std::cout << command_line(sbatch_command(jobs.merge, after)) << "\n";
    return;
  }
  for (const auto& line : cancel_pending_merge_jobs(dir)) std::cout << terminal_safe(line) << '\n';
  submit_slurm_jobs(dir, jobs);
  for (const auto& job : jobs.arrays)
    std::cout << "submitted job " << job.job_id << ": hardware group " << terminal_safe(job.group)
              << ", shards " << index_ranges(job.shards) << " (" << job.script.string() << ")\n";
  std::cout << "submitted job " << jobs.merge.job_id << ": merge into "
            << (dir / "campaign.db").string() << " once "
            << (jobs.arrays.empty() ? "submitted" : "the arrays have ended well") << "\n"
            << "follow it with: deltann status " << dir.string() << "\n";
}

}  // namespace

void add_submit(CLI::App& app) {
  auto options = std::make_shared<SubmitOptions>();
  CLI::App* submit = app.add_subcommand(
      "submit", "submit a plan folder's shards to a cluster's scheduler (docs/SCALE_OUT.md)");
  submit->add_option("dir", options->dir, "plan folder (made by `deltann plan`)")->required();
  submit->add_flag("--slurm", options->slurm,
                   "submit to Slurm: one job array per hardware group, then a merge job");
  submit->add_flag("--dry-run", options->dry_run,
                   "print the batch scripts and the sbatch commands; submit nothing");
  submit->add_option("--partition", options->slurm_options.partition,
                     "the partition of every job (default: the cluster's)");
  submit->add_option("--time", options->slurm_options.time,
                     "the time limit of every job (sbatch --time, e.g. 2:00:00)");
  submit
      ->add_option("--sbatch-arg", options->slurm_options.sbatch_args,
                   "one more sbatch option for every job, e.g. --sbatch-arg=--account=proj "
                   "(repeat for more)")
      ->allow_extra_args(false);
  submit->callback([options] { execute(*options); });
}

const VerbRegistration kRegistered{13, add_submit};

}  // namespace deltann::cli
