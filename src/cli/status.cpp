// `deltann status DIR`: which shards of a plan folder are done, started, failed or missing, and
// which hold another plan's database (foreign).
#include <iostream>
#include <map>

#include "deltann/text.h"
#include "run/plan_folder.h"
#include "run/shard.h"
#include "run/slurm_submit.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

void execute(const std::string& dir) {
  const CampaignPlan plan = read_plan_folder(dir);
  const std::vector<ShardStatus> statuses = shard_statuses(dir, plan);
  std::map<ShardState, std::vector<int>> by_state;
  for (const auto& s : statuses) {
    by_state[s.state].push_back(s.index);
    std::cout << "shard " << s.index << " [" << s.group << "] " << to_string(s.state)
              << (s.detail.empty() ? "" : ": " + terminal_safe(s.detail)) << '\n';
  }
  std::cout << statuses.size() << " shards: ";
  for (const ShardState state : {ShardState::done, ShardState::started, ShardState::failed,
                                 ShardState::missing, ShardState::foreign})
    std::cout << by_state[state].size() << ' ' << to_string(state)
              << (state == ShardState::foreign ? "\n" : ", ");
  std::vector<int> resubmit = by_state[ShardState::failed];
  resubmit.insert(resubmit.end(), by_state[ShardState::missing].begin(),
                  by_state[ShardState::missing].end());
  // The jobs `deltann submit --slurm` queued: Slurm's accounting (sacct -j ID) tells how they ran.
  for (const auto& line : submitted_slurm_jobs(dir)) std::cout << terminal_safe(line) << '\n';
  if (!resubmit.empty())
    std::cout << "to run again: --array=" << index_ranges(resubmit)
              << "  (or: deltann submit --slurm " << dir << ")\n";
  if (by_state[ShardState::done].size() != statuses.size())
    throw NegativeAnswer(std::to_string(statuses.size() - by_state[ShardState::done].size()) +
                         " of " + std::to_string(statuses.size()) + " shards are not done");
}

}  // namespace

void add_status(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* status =
      app.add_subcommand("status", "the shards of a plan folder: done, started, failed, missing");
  status->add_option("dir", *dir, "plan folder (made by `deltann plan`)")->required();
  status->callback([dir] { execute(*dir); });
}

const VerbRegistration kRegistered{14, add_status};

}  // namespace deltann::cli
