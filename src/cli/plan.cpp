// `deltann plan`: the campaign `deltann run` would run, written as a plan folder of shards for
// many machines (docs/SCALE_OUT.md).
#include <iostream>
#include <optional>

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
  // A campaign file's shard sizes (its own and its groups'), unless --shard-images overrides
  // them all, as any flag beside the file takes the place of the file's value.
  std::optional<CampaignFile> placement = o.campaign.file;
  if (placement && command.count("--shard-images") == 0 && placement->shard_images)
    o.shard_images = static_cast<int>(*placement->shard_images);
  if (placement && command.count("--shard-images") > 0)
    for (auto& group : placement->groups) group.shard_images.reset();
  MessageLines notes([](const std::string& line) { std::cerr << terminal_safe(line) << '\n'; });
  CampaignPlan plan =
      make_plan(o.campaign.config, o.shard_images, notes, placement ? &*placement : nullptr);
  write_plan_folder(o.out, plan);
  std::cout << "plan " << plan.hash << " in " << o.out << ": " << plan.variants.size()
            << " variants, " << plan.images.size() << " images, " << plan.shards.size()
            << " shards\n";
  for (const auto& group : plan.groups) {
    const std::string indices = index_ranges(shards_of_group(plan, group.name));
    std::cout << "  hardware group " << terminal_safe(group.name) << ": shards " << indices
              << " of at most " << group.shard_images << " images  (e.g. sbatch --array=" << indices
              << " ... deltann run --plan " << o.out << ")\n";
  }
  std::cout << "then: deltann submit --slurm " << o.out << "  (or deltann merge " << o.out
            << " -o campaign.db once the shards are done)\n";
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
