// Submitting a plan folder to Slurm (`deltann submit --slurm DIR`, docs/SCALE_OUT.md): one job
// array per hardware group, placed by the group's constraint, gres, licenses and exclusivity, and
// a merge job that runs once every array has ended well.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "plan_folder.h"

namespace deltann {

struct SlurmOptions {
  std::filesystem::path deltann;         // the deltann the jobs run (absolute)
  std::string partition;                 // --partition for every job; empty: the cluster's default
  std::string time;                      // --time for every job; empty: the partition's default
  std::vector<std::string> sbatch_args;  // more #SBATCH options for every job, as given
};

// One batch script: a hardware group's job array, or the merge job.
struct SlurmJob {
  std::string group;        // the hardware group; empty for the merge job
  std::vector<int> shards;  // the array's shard indices; empty for the merge job
  std::filesystem::path script;
  std::string text;    // the script's content
  std::string job_id;  // once submitted
};

struct SlurmSubmission {
  std::vector<SlurmJob> arrays;  // the groups with shards to run, in name order
  SlurmJob merge;
};

// The scripts for the shards of `plan` (read from `dir`) that are not done: one job array per
// hardware group running `deltann run --plan DIR` with the group's placement, and the merge job
// (`deltann merge DIR -o DIR/campaign.db`). Throws Error naming the value when a placement value,
// an option or the folder's path cannot be written into a batch script.
SlurmSubmission slurm_jobs(const std::filesystem::path& dir, const CampaignPlan& plan,
                           const std::vector<int>& pending, const SlurmOptions& options);

// The sbatch command of a job: `--parsable`, the dependency on `after` (job ids; the merge job
// waits for them with afterok) and the script. An argument vector.
std::vector<std::string> sbatch_command(const SlurmJob& job, const std::vector<std::string>& after);

// Writes the scripts into DIR/slurm (and makes DIR/slurm/logs for their output), submits the
// arrays and then the merge job, and records the job ids in DIR/slurm/jobs.json. When sbatch
// refuses an array (a placement no node satisfies), cancels the arrays already submitted
// (scancel), submits no merge job and throws Error naming the group and Slurm's message.
void submit_slurm_jobs(const std::filesystem::path& dir, SlurmSubmission& jobs);

// Cancels (scancel) the merge jobs that earlier submissions recorded in DIR/slurm/jobs.json and
// that Slurm still holds pending. After a submission whose arrays did not all end well, its merge
// job waits on a dependency that can never be satisfied; a new submission queues a merge job of
// its own, which merges every shard. Returns a line per job: cancelled, or why it could not be.
std::vector<std::string> cancel_pending_merge_jobs(const std::filesystem::path& dir);

// The job ids that the last `deltann submit` recorded in DIR/slurm/jobs.json, one line per job;
// empty when there is none.
std::vector<std::string> submitted_slurm_jobs(const std::filesystem::path& dir);

}  // namespace deltann
