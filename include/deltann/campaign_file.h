// A campaign file: the campaign of `deltann run` written down in TOML (docs/CAMPAIGN_FILE.md), so
// that it can be kept, reviewed and run again, and the placement of its variants on a cluster's
// hardware described beside it.
//
// The file gives what the command line's flags give (one key per flag, the flag's name with '_'
// for '-': `build_timeout` for --build-timeout; the timing under [timing]) plus placement:
// [[hardware_group]] tables saying which variants run on which kind of machine (Slurm
// constraint, gres, licenses, exclusive) and how many images a shard holds. Placement is parsed
// and checked here and kept in CampaignFile for whoever splits a campaign across machines; a
// campaign run on one machine (`deltann run FILE`) ignores it.
//
// The file is untrusted input: it is read as text (no shell, no expansion of `~` or variables),
// every key is checked (an unknown key, a value of the wrong type or out of range is an Error
// naming the file, the line and the key), and relative paths are taken relative to the file's
// folder, so a campaign file and its model can move together.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "deltann/campaign.h"
#include "deltann/environment.h"

namespace deltann {

// One kind of machine and the variants that run on it.
struct HardwareGroup {
  std::string name;  // unique in the file
  // Which variants belong: those whose framework is in `engines` and whose device (the
  // environment's `device` knob, `cpu` when it has none) is in `devices`; an empty list matches
  // any. At least one of the two is given.
  std::vector<std::string> engines;
  std::vector<std::string> devices;
  // Slurm placement, passed on as given (sbatch --constraint, --gres, --licenses, --exclusive);
  // empty: not asked for. Printable characters without spaces.
  std::string constraint;
  std::string gres;
  std::string licenses;
  bool exclusive = false;
  // Images per shard for this group's variants; nullopt: the file's shard_images.
  std::optional<int64_t> shard_images;
  int line = 0;  // where the group's table starts in the file, for messages

  bool matches(const Environment& environment) const;
};

struct CampaignFile {
  std::filesystem::path path;  // the file, as it was named
  // The campaign as the equivalent flags give it. cache_dir is empty when the file names no
  // cache, and worker_dir always is: the caller fills them in (default_cache_dir(),
  // default_worker_dir()), as it does for flags.
  CampaignConfig config;
  // Placement, in file order; the first group that matches a variant takes it, and a variant no
  // group matches runs without placement options.
  std::vector<HardwareGroup> groups;
  // Images per shard for the variants of groups that give none; nullopt: no sharding (every
  // variant runs every image in one job).
  std::optional<int64_t> shard_images;
};

// Reads and checks a campaign file. Throws Error naming the file (and the line and key where
// there is one) when it cannot be read, is not TOML, has an unknown key, a value of the wrong type
// or out of range, or lacks a required key (model, images, db, environments).
CampaignFile read_campaign_file(const std::filesystem::path& path);

// The same for a file's text already in memory; `path` names it in messages and is the base of
// relative paths.
CampaignFile parse_campaign_file(std::string_view text, const std::filesystem::path& path);

// The group that takes the variant of `environment`: the first that matches, or null.
const HardwareGroup* hardware_group_for(const CampaignFile& file, const Environment& environment);

// Whether `text` can be passed on as a Slurm value (an #SBATCH line's option): printable ASCII
// without spaces, so that it cannot end the line or add another option.
bool is_placement_word(std::string_view text);

// Images per shard for the variants of `group` (null: of no group); nullopt: no sharding.
std::optional<int64_t> shard_images_for(const CampaignFile& file, const HardwareGroup* group);

}  // namespace deltann
