// A campaign planned for many machines: the plan folder that `deltann plan` writes, its shards
// (one hardware group's variants over a block of images) and the checks that keep a folder and
// its results honest (docs/SCALE_OUT.md).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "deltann/campaign_file.h"
#include "deltann/environment.h"

namespace deltann {

inline constexpr int kPlanFormat = 1;

// Images per shard unless --shard-images says otherwise. A shard pays fixed costs on its node
// (starting each variant's worker, loading the model, on a fresh node converting and compiling
// the artifacts: minutes for TVM), so it should run long enough for inference to dominate; it
// should also be small enough that a lost shard is cheap to redo and that a large dataset spreads
// over many machines (ImageNet's 50,000 validation images: 100 shards per hardware group).
inline constexpr int kDefaultShardImages = 500;

struct PlanVariant {
  std::string env;             // canonical environment text
  std::string engine;          // its framework
  std::string engine_version;  // as the engine described itself at planning ("" if it could not)
  std::string device;          // its device knob ("cpu" for an engine without one)
  std::string group;           // its hardware group: the shards that run it need this hardware
};

// A hardware group as planned (groups.json): the kind of node its shards need, as Slurm
// placement options (empty: not asked for), and its images per shard. A group that no campaign
// file's [[hardware_group]] gave (a variant's device) has no placement.
struct PlanGroup {
  std::string name;
  std::string constraint;  // sbatch --constraint
  std::string gres;        // sbatch --gres
  std::string licenses;    // sbatch --licenses
  bool exclusive = false;  // sbatch --exclusive
  int shard_images = kDefaultShardImages;
};

struct PlanImage {
  std::string key;  // the dataset's key
  std::string path;
  std::string sha256;  // of the file's content; "" when it could not be read at planning
  std::optional<int> label;
  // The key of the entry this one repeats (the same file named twice, or the same content):
  // it goes to its first copy's block, where the campaign records it as that copy's duplicate.
  std::string duplicate_of;
  int block = 0;  // its block of images
};

// One shard: what `deltann run --plan DIR --shard I` runs.
struct ShardManifest {
  int index = 0;
  std::string group;
  int block = 0;
  std::vector<std::string> variants;    // canonical texts, in the plan's order
  std::vector<std::string> image_keys;  // in the dataset's order
  std::vector<std::string> timed_keys;  // those of its images in the campaign's timing sample
};

struct CampaignPlan {
  nlohmann::json campaign;  // the campaign's options (campaign.json)
  std::vector<PlanVariant> variants;
  std::vector<PlanImage> images;
  std::vector<ShardManifest> shards;
  std::vector<PlanGroup> groups;  // in name order
  std::string hash;               // over every file of the plan (plan_hash)
};

// A variant's hardware group: the value of its device knob, "cpu" when it has none.
std::string hardware_group(const Environment& env);
// The same with a campaign file's groups: the first of them that matches the variant, else its
// device as above.
std::string hardware_group(const Environment& env, const CampaignFile* placement);

// Puts the images into blocks of at most `shard_images` entries in the dataset's order, each
// duplicate in its first copy's block (where it does not count). Returns the number of blocks.
int assign_blocks(std::vector<PlanImage>& images, int shard_images);

// One shard per hardware group and block: the groups in name order, the blocks in order within
// each, so that a group's shards have consecutive indices (one job array per group).
std::vector<ShardManifest> assign_shards(const std::vector<PlanVariant>& variants,
                                         const std::vector<PlanImage>& images,
                                         const std::set<std::string>& timed_keys, int blocks);
// The same with each group's own shard size (`groups`, by name, must hold every variant's group):
// each group's blocks are cut from the dataset at its size.
std::vector<ShardManifest> assign_shards(const std::vector<PlanVariant>& variants,
                                         const std::vector<PlanImage>& images,
                                         const std::set<std::string>& timed_keys,
                                         const std::vector<PlanGroup>& groups);

// Plans the campaign of `config` (its db is not used): the variants as `deltann run` plans them
// here, the images with their content hashes, the timing sample over the whole dataset, and the
// shards. Throws Error for what would stop `deltann run` (a malformed environment, no images).
// `placement`: a campaign file whose [[hardware_group]]s group the variants and place their
// shards (a group's own shard_images, else `shard_images`); null: groups by device.
CampaignPlan make_plan(const CampaignConfig& config, int shard_images, CampaignObserver& events,
                       const CampaignFile* placement = nullptr);

// The plan's files other than plan.json, by name relative to the folder, as written.
std::map<std::string, std::string> plan_files(const CampaignPlan& plan);
// The hash over those files' names and contents.
std::string plan_hash(const std::map<std::string, std::string>& files);

// Writes the plan into `dir` (made when missing) and sets plan.hash. A folder that already holds
// the same plan is left as it is; one holding another plan is refused.
void write_plan_folder(const std::filesystem::path& dir, CampaignPlan& plan);
// Reads a plan folder and checks every file against plan.json's hashes: an edited, missing or
// added file is refused, naming it.
CampaignPlan read_plan_folder(const std::filesystem::path& dir);

// The campaign's configuration as planned (db, cache and worker folder left empty), and one
// shard's slice of it.
CampaignConfig config_of_plan(const CampaignPlan& plan);
CampaignSlice slice_of_shard(const CampaignPlan& plan, const ShardManifest& shard);

// Where a shard's finished database and its state record go inside the plan folder.
std::filesystem::path shard_result_path(const std::filesystem::path& dir, int index);
std::filesystem::path shard_state_path(const std::filesystem::path& dir, int index);

// The shard indices of one hardware group, in order.
std::vector<int> shards_of_group(const CampaignPlan& plan, const std::string& group);

// Indices as a scheduler's array takes them, ranges joined: {3, 4, 5, 17} -> "3-5,17".
std::string index_ranges(const std::vector<int>& indices);

}  // namespace deltann
