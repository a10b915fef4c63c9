// Running one shard of a plan folder (`deltann run --plan DIR --shard I`) and telling the state
// of every shard (`deltann status DIR`), with no scheduler to ask (docs/SCALE_OUT.md).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "plan_folder.h"

namespace deltann {

// Which shard to run: `flag` (--shard) when given, else $SLURM_ARRAY_TASK_ID (a Slurm job
// array), else $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job). `getenv` reads a variable
// (nullptr when unset). Throws Error when none names one, or the value is no index.
struct ShardChoice {
  int index = 0;
  std::string source;  // "--shard", "SLURM_ARRAY_TASK_ID" or "JOB_COMPLETION_INDEX"
};
ShardChoice choose_shard(std::optional<int> flag,
                         const std::function<const char*(const char*)>& getenv);

// The machine a shard ran on, as the shard database's meta `node` records it: host name, CPU
// model and cores, the scheduler's job ids where set, and the GPUs with their clocks as
// nvidia-smi reports them (or why there are none to report).
nlohmann::json node_record();

struct ShardRunOptions {
  std::filesystem::path plan_dir;
  std::optional<int> shard;  // --shard; else from the environment (choose_shard)
  // Node-local folder for the database while the shard runs: --local-dir, else $TMPDIR, else
  // /tmp. SQLite's write-ahead log needs a local file system.
  std::filesystem::path local_dir;
  std::filesystem::path cache_dir;
  std::filesystem::path worker_dir;
  // --jobs: variants at a time for the shard's untimed images (CampaignConfig::jobs). How the
  // shard runs, not what it computes, so it is not part of the plan.
  int jobs = 1;
};

struct ShardRun {
  int index = 0;
  std::string source;            // where the index came from
  bool already_done = false;     // its result was in the plan folder: nothing ran
  std::filesystem::path result;  // DIR/results/shard-NNNN.db
  CampaignOutcome outcome;
};

// Runs the shard into a database on node-local storage, records the node, and publishes the
// finished database into DIR/results atomically (a copy under a temporary name in that folder,
// synced, then renamed). Writes DIR/state/NNNN.json when it starts and when it ends (done or
// failed, with the reason). A shard whose result is already there is not run again.
ShardRun run_shard(const ShardRunOptions& options, CampaignObserver& events);

enum class ShardState {
  done,     // its database is in DIR/results
  failed,   // it recorded a failure, or its process is gone without a result
  started,  // it recorded its start and nothing since: running, or killed on another node
  missing,  // it never started (or its state was removed)
  foreign,  // DIR/results holds a database of another plan under its name: it must be removed
};
const char* to_string(ShardState state);

struct ShardStatus {
  int index = 0;
  std::string group;
  ShardState state = ShardState::missing;
  std::string detail;     // where and when it ran, or why it failed
  nlohmann::json record;  // its state file, when there is one
};
// A result counts as done only when its database is of this plan (check_shard_database): one of
// another plan (copied or left there) is `foreign`, with the path and both plan hashes.
std::vector<ShardStatus> shard_statuses(const std::filesystem::path& dir, const CampaignPlan& plan);

}  // namespace deltann
