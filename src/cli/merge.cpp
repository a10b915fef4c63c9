// `deltann merge DIR -o FILE`: the shard databases of a plan folder as one campaign database.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "deltann/error.h"
#include "deltann/shard_merge.h"
#include "deltann/text.h"
#include "run/plan_folder.h"
#include "run/shard.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

struct MergeOptions {
  std::string dir, out;
  bool partial = false;
  bool force = false;
};

void execute(const MergeOptions& o) {
  const CampaignPlan plan = read_plan_folder(o.dir);
  std::vector<ShardDatabase> present;
  std::vector<int> absent;
  std::string why;
  for (const auto& s : shard_statuses(o.dir, plan)) {
    if (s.state == ShardState::done) {
      present.push_back({s.index, shard_result_path(o.dir, s.index)});
      continue;
    }
    absent.push_back(s.index);
    why += "\n  shard " + std::to_string(s.index) + " [" + s.group + "] " + to_string(s.state) +
           (s.detail.empty() ? "" : ": " + s.detail);
  }
  const std::string resubmit =
      absent.empty() ? "" : "; run them again (e.g. sbatch --array=" + index_ranges(absent) + ")";
  if (!absent.empty() && !o.partial)
    throw Error(std::to_string(absent.size()) + " of " + std::to_string(plan.shards.size()) +
                " shards have no result:" + why + "\n" + resubmit.substr(2) +
                ", or merge what exists with --partial");
  if (present.empty()) throw Error("no shard of " + o.dir + " has a result yet");
  // --force replaces the output only with a finished merge: a refused shard (another plan's, a
  // damaged file) leaves the database merged before in place, rather than none at all.
  const std::filesystem::path out = o.out;
  const std::filesystem::path target =
      o.force && std::filesystem::exists(out)
          ? out.parent_path() /
                ("." + out.filename().string() + ".replacing" + std::to_string(::getpid()))
          : out;
  if (target != out) std::filesystem::remove(target);  // left by a killed merge of this pid
  const MergeOutcome merged = merge_shard_databases(
      present, plan.hash, target, [](const std::string& line) { std::cerr << line << '\n'; });
  if (target != out) std::filesystem::rename(target, out);
  std::cerr << "merged " << merged.shards << " of " << plan.shards.size() << " shards into "
            << o.out << ": " << merged.results << " results, " << merged.failures << " failures\n";
  if (!absent.empty())
    std::cerr << "partial: missing" << terminal_safe(why) << "\n" << resubmit.substr(2) << '\n';
}

}  // namespace

void add_merge(CLI::App& app) {
  auto options = std::make_shared<MergeOptions>();
  CLI::App* merge = app.add_subcommand(
      "merge", "merge the shard databases of a plan folder into one campaign database");
  merge->add_option("dir", options->dir, "plan folder (made by `deltann plan`)")->required();
  merge->add_option("-o,--out", options->out, "the campaign database to write")->required();
  merge->add_flag("--partial", options->partial,
                  "merge the shards that have a result even when others do not");
  merge->add_flag("--force", options->force, "replace the output file when it exists");
  merge->callback([options] { execute(*options); });
}

const VerbRegistration kRegistered{16, add_merge};

}  // namespace deltann::cli
