// `deltann plan`: the campaign `deltann run` would run, written as a plan folder of shards for
// many machines (docs/SCALE_OUT.md).
#include <iostream>
#include <map>

#include "campaign_options.h"
#include "deltann/campaign_events.h"
#include "deltann/text.h"
#include "run/plan_folder.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

struct PlanOptions {
  CampaignOptions campaign;
  std::string out;
  int shard_images = kDefaultShardImages;
};

void execute(PlanOptions& o, const CLI::App& command) {
  resolve_campaign(o.campaign, command, "plan");
  // A campaign file's shard size, unless --shard-images overrides it.
  if (o.campaign.file && o.campaign.file->shard_images && command.count("--shard-images") == 0)
    o.shard_images = static_cast<int>(*o.campaign.file->shard_images);
  MessageLines notes([](const std::string& line) { std::cerr << terminal_safe(line) << '\n'; });
  CampaignPlan plan = make_plan(o.campaign.config, o.shard_images, notes);
  write_plan_folder(o.out, plan);
  std::map<std::string, std::vector<int>> by_group;
  for (const auto& shard : plan.shards) by_group[shard.group].push_back(shard.index);
  std::cout << "plan " << plan.hash << " in " << o.out << ": " << plan.variants.size()
            << " variants, " << plan.images.size() << " images, " << plan.shards.size()
            << " shards of at most " << o.shard_images << " images\n";
  for (const auto& [group, indices] : by_group)
    std::cout << "  hardware group " << group << ": shards " << index_ranges(indices)
              << "  (e.g. sbatch --array=" << index_ranges(indices) << " ... deltann run --plan "
              << o.out << ")\n";
  std::cout << "then: deltann merge " << o.out << " -o campaign.db\n";
}

}  // namespace

void add_plan(CLI::App& app) {
  auto options = std::make_shared<PlanOptions>();
  CLI::App* plan = app.add_subcommand(
      "plan", "write a campaign as a plan folder of shards for many machines (docs/SCALE_OUT.md)");
  add_campaign_options(plan, options->campaign);
  plan->add_option("--out", options->out, "the plan folder to write")->required();
  plan->add_option("--shard-images", options->shard_images,
                   "images per shard (each hardware group runs every block of images)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  plan->callback([options, plan] { execute(*options, *plan); });
}

const VerbRegistration kRegistered{12, add_plan};

}  // namespace deltann::cli
