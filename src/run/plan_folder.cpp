#include "plan_folder.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/spec.h"
#include "engine_registry.h"
#include "planner.h"
#include "timing_sample.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json path_or_null(const std::optional<fs::path>& path) {
  return path ? json(fs::absolute(*path).string()) : json();
}

// What shapes the results, as campaign.json holds it: the options `deltann run` takes (paths
// absolute) and the content hashes of the model and spec, which a shard checks before it runs.
json campaign_options(const CampaignConfig& config, int shard_images, bool keep_outputs) {
  const std::optional<fs::path> spec_file = model_spec_file(config.model, config.spec);
  json j;
  j["model"] = fs::absolute(config.model).string();
  j["model_sha256"] = sha256_file(config.model);
  j["spec"] = path_or_null(config.spec);
  j["spec_file"] = path_or_null(spec_file);
  j["spec_sha256"] = spec_file ? json(sha256_file(*spec_file)) : json();
  j["images"] = fs::absolute(config.images).string();
  j["labels"] = path_or_null(config.dataset.labels);
  j["synsets"] = path_or_null(config.dataset.synsets);
  j["environments"] = config.environments;
  j["warmup"] = config.warmup;
  j["repeat"] = config.repeat;
  j["timing_images"] = config.timing_images ? json(*config.timing_images) : json("all");
  j["keep_outputs_up_to"] = config.keep_outputs_up_to;
  j["keep_outputs"] = keep_outputs;
  j["timeout_s"] = config.timeout_s;
  j["build_timeout_s"] = config.build_timeout_s;
  j["shuffle"] = config.shuffle_seed ? json(*config.shuffle_seed) : json();
  j["shard_images"] = shard_images;
  return j;
}

// The dataset's entries with their content hashes, each duplicate pointing at its first copy
// the way the campaign will find it (src/run/campaign.cpp, prepare_images): the same file named
// twice, or the same content under another key among the entries that can run.
std::vector<PlanImage> plan_images(const Dataset& dataset, const ModelSpec& spec,
                                   std::vector<SampleCandidate>& candidates) {
  std::vector<PlanImage> images;
  std::map<std::string, std::string> first_with_content;
  for (const auto& entry : dataset.images) {
    PlanImage image{entry.key, entry.path.string(), "", entry.label, entry.duplicate_of, 0};
    const bool label_ok = !entry.label || (*entry.label >= 0 && *entry.label < spec.output.classes);
    if (entry.usable() && label_ok) {
      try {
        image.sha256 = sha256_file(entry.path);
      } catch (const Error&) {
        // Unreadable here: the shard that runs it records why.
      }
    }
    if (image.duplicate_of.empty() && !image.sha256.empty()) {
      const auto [first, fresh] = first_with_content.try_emplace(image.sha256, image.key);
      if (!fresh) {
        image.duplicate_of = first->second;
      } else {
        candidates.push_back({static_cast<int64_t>(images.size()), image.sha256, image.key});
      }
    }
    images.push_back(std::move(image));
  }
  return images;
}

std::string dumped(const json& j) { return j.dump(2) + "\n"; }

json to_json(const PlanVariant& v) {
  return {{"env", v.env},
          {"engine", v.engine},
          {"engine_version", v.engine_version},
          {"device", v.device},
          {"group", v.group}};
}

json to_json(const PlanImage& i) {
  return {{"key", i.key},
          {"path", i.path},
          {"sha256", i.sha256},
          {"label", i.label ? json(*i.label) : json()},
          {"duplicate_of", i.duplicate_of},
          {"block", i.block}};
}

json to_json(const PlanGroup& g) {
  return {{"name", g.name},         {"constraint", g.constraint}, {"gres", g.gres},
          {"licenses", g.licenses}, {"exclusive", g.exclusive},   {"shard_images", g.shard_images}};
}

json to_json(const ShardManifest& s) {
  return {{"shard", s.index},       {"group", s.group},       {"block", s.block},
          {"variants", s.variants}, {"images", s.image_keys}, {"timed_images", s.timed_keys}};
}

std::string shard_file_name(int index) {
  std::string number = std::to_string(index);
  if (number.size() < 4) number.insert(0, 4 - number.size(), '0');
  return number;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes the file whole or not at all: a plan folder is read by many machines at once.
void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  const fs::path temporary = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error("cannot write " + temporary.string());
  }
  fs::rename(temporary, path);
}

json parse_file(const fs::path& dir, const std::string& name, const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error((dir / name).string() + " is not valid JSON (" + e.what() + ")");
  }
}

// The files a plan folder holds besides plan.json: campaign, variants, images and shards.
std::vector<std::string> listed_shard_files(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir / "shards", ec))
    names.push_back("shards/" + entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A group its shards name but groups.json does not list (a plan without groups.json): no
// placement, the campaign's shard size.
void add_unlisted_groups(CampaignPlan& plan) {
  std::map<std::string, PlanGroup> groups;
  for (const auto& g : plan.groups) groups.emplace(g.name, g);
  for (const auto& s : plan.shards)
    groups.emplace(s.group, PlanGroup{s.group, "", "", "", false,
                                      plan.campaign.value("shard_images", kDefaultShardImages)});
  plan.groups.clear();
  for (auto& [name, group] : groups) plan.groups.push_back(std::move(group));
}

}  // namespace

std::string hardware_group(const Environment& env) {
  const std::string device = env.knob("device");
  return device.empty() ? "cpu" : device;
}

std::string hardware_group(const Environment& env, const CampaignFile* placement) {
  const HardwareGroup* group = placement ? hardware_group_for(*placement, env) : nullptr;
  return group ? group->name : hardware_group(env);
}

int assign_blocks(std::vector<PlanImage>& images, int shard_images) {
  if (shard_images < 1) throw Error("--shard-images must be at least 1");
  std::map<std::string, int> block_of;
  int block = 0, in_block = 0;
  for (auto& image : images) {
    if (const auto first = block_of.find(image.duplicate_of);
        !image.duplicate_of.empty() && first != block_of.end()) {
      image.block = first->second;
    } else {
      if (in_block == shard_images) {
        ++block;
        in_block = 0;
      }
      image.block = block;
      ++in_block;
    }
    block_of.emplace(image.key, image.block);
  }
  return images.empty() ? 0 : block + 1;
}

namespace {

// Appends one shard per block of `group`, its variants over the block's images (`images` carry
// the blocks at that group's size).
void append_group_shards(const std::string& group, const std::vector<PlanVariant>& variants,
                         const std::vector<PlanImage>& images,
                         const std::set<std::string>& timed_keys, int blocks,
                         std::vector<ShardManifest>& shards) {
  for (int block = 0; block < blocks; ++block) {
    ShardManifest shard;
    shard.index = static_cast<int>(shards.size());
    shard.group = group;
    shard.block = block;
    for (const auto& v : variants)
      if (v.group == group) shard.variants.push_back(v.env);
    for (const auto& image : images) {
      if (image.block != block) continue;
      shard.image_keys.push_back(image.key);
      if (timed_keys.count(image.key)) shard.timed_keys.push_back(image.key);
    }
    shards.push_back(std::move(shard));
  }
}

}  // namespace

std::vector<ShardManifest> assign_shards(const std::vector<PlanVariant>& variants,
                                         const std::vector<PlanImage>& images,
                                         const std::set<std::string>& timed_keys, int blocks) {
  std::set<std::string> groups;
  for (const auto& v : variants) groups.insert(v.group);
  std::vector<ShardManifest> shards;
  for (const auto& group : groups)
    append_group_shards(group, variants, images, timed_keys, blocks, shards);
  return shards;
}

std::vector<ShardManifest> assign_shards(const std::vector<PlanVariant>& variants,
                                         const std::vector<PlanImage>& images,
                                         const std::set<std::string>& timed_keys,
                                         const std::vector<PlanGroup>& groups) {
  std::map<std::string, int> size_of;
  for (const auto& g : groups) size_of[g.name] = g.shard_images;
  std::set<std::string> names;
  for (const auto& v : variants) names.insert(v.group);
  std::vector<ShardManifest> shards;
  for (const auto& name : names) {
    const auto size = size_of.find(name);
    if (size == size_of.end()) throw Error("hardware group '" + name + "' has no shard size");
    std::vector<PlanImage> blocked = images;
    const int blocks = assign_blocks(blocked, size->second);
    append_group_shards(name, variants, blocked, timed_keys, blocks, shards);
  }
  return shards;
}

namespace {

// The groups of the planned variants in name order, with the campaign file's placement where a
// [[hardware_group]] took them. A variant no group took is grouped by its device; a file group
// of that name would mix two kinds of machine in one group, so it is refused.
std::vector<PlanGroup> plan_groups(const std::vector<PlanVariant>& variants, int shard_images,
                                   const CampaignFile* placement) {
  std::map<std::string, PlanGroup> groups;
  for (const auto& v : variants) {
    const Environment env = parse_environment(v.env);
    const HardwareGroup* file_group = placement ? hardware_group_for(*placement, env) : nullptr;
    PlanGroup group{v.group, "", "", "", false, shard_images};
    if (file_group) {
      group.constraint = file_group->constraint;
      group.gres = file_group->gres;
      group.licenses = file_group->licenses;
      group.exclusive = file_group->exclusive;
      group.shard_images =
          static_cast<int>(shard_images_for(*placement, file_group).value_or(shard_images));
    } else if (placement) {
      for (const auto& g : placement->groups)
        if (g.name == v.group)
          throw Error(placement->path.string() + ":" + std::to_string(g.line) + ": " + v.env +
                      " matches no hardware group, so it is grouped by its device '" + v.group +
                      "', which is also the name of the hardware group on this line: give the "
                      "group another name or make one of the groups match the variant");
    }
    groups.emplace(group.name, group);
  }
  std::vector<PlanGroup> ordered;
  for (auto& [name, group] : groups) ordered.push_back(std::move(group));
  return ordered;
}

}  // namespace

CampaignPlan make_plan(const CampaignConfig& config, int shard_images, CampaignObserver& events,
                       const CampaignFile* placement) {
  if (!fs::is_regular_file(config.model))
    throw Error("model file " + config.model.string() + " does not exist");
  const ModelSpec spec = load_model_spec(config.model, config.spec);
  if (!model_spec_file(config.model, config.spec)) events.on_note(default_spec_note(config.model));
  const Dataset dataset = load_dataset(config.images, config.dataset);
  if (dataset.images.empty()) throw Error(config.images.string() + " holds no images to plan");
  const std::vector<PlannedVariant> planned =
      plan(config, spec, EngineRegistry::shared(config.worker_dir, config.cache_dir));

  CampaignPlan result;
  for (const auto& v : planned) {
    if (!v.skip_reason.empty())
      events.on_note("note: " + v.text + " cannot run on this machine (" + v.skip_reason +
                     "); the shards of its group decide where they run");
    const std::string device = v.env.knob("device");
    result.variants.push_back({v.text, v.env.framework, v.engine ? v.engine->version : "",
                               device.empty() ? "cpu" : device, hardware_group(v.env, placement)});
  }
  std::vector<SampleCandidate> candidates;
  result.images = plan_images(dataset, spec, candidates);
  const bool keep_outputs = static_cast<int64_t>(candidates.size()) <= config.keep_outputs_up_to;
  std::set<std::string> timed;
  for (const int64_t row : choose_timing_sample(candidates, config.timing_images))
    timed.insert(result.images[static_cast<size_t>(row)].key);
  // images.json records the blocks at the campaign's shard size; a group with a size of its own
  // cuts its blocks at that size (its shard manifests list their images).
  assign_blocks(result.images, shard_images);
  result.groups = plan_groups(result.variants, shard_images, placement);
  result.shards = assign_shards(result.variants, result.images, timed, result.groups);
  result.campaign = campaign_options(config, shard_images, keep_outputs);
  return result;
}

std::map<std::string, std::string> plan_files(const CampaignPlan& plan) {
  std::map<std::string, std::string> files;
  files["campaign.json"] = dumped(plan.campaign);
  json variants = json::array(), images = json::array();
  for (const auto& v : plan.variants) variants.push_back(to_json(v));
  for (const auto& i : plan.images) images.push_back(to_json(i));
  files["variants.json"] = dumped(variants);
  files["images.json"] = dumped(images);
  json groups = json::array();
  for (const auto& g : plan.groups) groups.push_back(to_json(g));
  files["groups.json"] = dumped(groups);
  for (const auto& s : plan.shards)
    files["shards/" + shard_file_name(s.index) + ".json"] = dumped(to_json(s));
  return files;
}

std::string plan_hash(const std::map<std::string, std::string>& files) {
  std::string listing;
  for (const auto& [name, text] : files) listing += name + " " + sha256_text(text) + "\n";
  return sha256_text(listing);
}

void write_plan_folder(const fs::path& dir, CampaignPlan& plan) {
  const auto files = plan_files(plan);
  plan.hash = plan_hash(files);
  json index;
  index["format"] = kPlanFormat;
  index["plan_hash"] = plan.hash;
  index["shards"] = plan.shards.size();
  for (const auto& [name, text] : files) index["files"][name] = sha256_text(text);
  if (fs::exists(dir / "plan.json")) {
    const json existing = parse_file(dir, "plan.json", read_text(dir / "plan.json"));
    if (existing.value("plan_hash", "") == plan.hash) return;
    throw Error(dir.string() + " already holds another plan (plan_hash " +
                existing.value("plan_hash", "?").substr(0, 12) +
                "...); its results would be mixed with this one's: give another --out");
  }
  for (const auto& [name, text] : files) write_text(dir / name, text);
  fs::create_directories(dir / "results");
  fs::create_directories(dir / "state");
  write_text(dir / "plan.json", dumped(index));  // last: a folder without it is no plan yet
}

CampaignPlan read_plan_folder(const fs::path& dir) {
  if (!fs::is_regular_file(dir / "plan.json"))
    throw Error(dir.string() + " is not a plan folder (no plan.json; `deltann plan` writes one)");
  const json index = parse_file(dir, "plan.json", read_text(dir / "plan.json"));
  if (index.value("format", 0) != kPlanFormat)
    throw Error((dir / "plan.json").string() + " has plan format " +
                index.value("format", json()).dump() + "; this deltann reads format " +
                std::to_string(kPlanFormat));
  const json listed = index.value("files", json::object());
  std::map<std::string, std::string> files;
  for (const auto& [name, hash] : listed.items()) {
    if (!fs::is_regular_file(dir / name))
      throw Error("plan folder " + dir.string() + ": " + name + " is missing");
    files[name] = read_text(dir / name);
    if (sha256_text(files[name]) != hash.get<std::string>())
      throw Error("plan folder " + dir.string() + ": " + name +
                  " was changed after planning (its sha256 is not the one plan.json records); "
                  "plan again with `deltann plan` into a new folder instead of editing one");
  }
  for (const auto& name : listed_shard_files(dir))
    if (!files.count(name))
      throw Error("plan folder " + dir.string() + ": " + name +
                  " is not part of the plan (added after planning)");
  CampaignPlan plan;
  plan.hash = plan_hash(files);
  if (plan.hash != index.value("plan_hash", ""))
    throw Error("plan folder " + dir.string() +
                ": plan.json was changed after planning (its plan_hash does not match its files)");
  try {
    plan.campaign = json::parse(files.at("campaign.json"));
    for (const auto& v : json::parse(files.at("variants.json")))
      plan.variants.push_back(
          {v.at("env"), v.at("engine"), v.at("engine_version"), v.at("device"), v.at("group")});
    for (const auto& i : json::parse(files.at("images.json")))
      plan.images.push_back(
          {i.at("key"), i.at("path"), i.at("sha256"),
           i.at("label").is_null() ? std::nullopt : std::optional<int>(i.at("label")),
           i.at("duplicate_of"), i.at("block")});
    if (files.count("groups.json"))
      for (const auto& g : json::parse(files.at("groups.json")))
        plan.groups.push_back({g.at("name"), g.at("constraint"), g.at("gres"), g.at("licenses"),
                               g.at("exclusive"), g.at("shard_images")});
    for (const auto& [name, text] : files) {
      if (name.rfind("shards/", 0) != 0) continue;
      const json s = json::parse(text);
      plan.shards.push_back({s.at("shard"), s.at("group"), s.at("block"), s.at("variants"),
                             s.at("images"), s.at("timed_images")});
    }
  } catch (const json::exception& e) {
    throw Error("plan folder " + dir.string() + " is malformed (" + e.what() + ")");
  }
  for (size_t i = 0; i < plan.shards.size(); ++i)
    if (plan.shards[i].index != static_cast<int>(i))
      throw Error("plan folder " + dir.string() + ": shard " + std::to_string(i) +
                  " is missing or misnumbered");
  add_unlisted_groups(plan);
  return plan;
}

CampaignConfig config_of_plan(const CampaignPlan& plan) {
  const json& j = plan.campaign;
  const auto optional = [&](const char* key) {
    return j.at(key).is_null() ? std::nullopt
                               : std::optional<fs::path>(j.at(key).get<std::string>());
  };
  CampaignConfig config;
  try {
    config.model = j.at("model").get<std::string>();
    config.spec = optional("spec");
    config.images = j.at("images").get<std::string>();
    config.dataset.labels = optional("labels");
    config.dataset.synsets = optional("synsets");
    for (const auto& v : plan.variants) config.environments.push_back(v.env);
    config.warmup = j.at("warmup");
    config.repeat = j.at("repeat");
    config.timing_images = j.at("timing_images").is_string()
                               ? std::nullopt
                               : std::optional<int64_t>(j.at("timing_images").get<int64_t>());
    config.keep_outputs_up_to = j.at("keep_outputs_up_to");
    config.timeout_s = j.at("timeout_s");
    config.build_timeout_s = j.at("build_timeout_s");
    if (!j.at("shuffle").is_null()) config.shuffle_seed = j.at("shuffle").get<uint64_t>();
  } catch (const json::exception& e) {
    throw Error("the plan's campaign.json is malformed (" + std::string(e.what()) + ")");
  }
  return config;
}

CampaignSlice slice_of_shard(const CampaignPlan& plan, const ShardManifest& shard) {
  CampaignSlice slice;
  slice.image_keys = {shard.image_keys.begin(), shard.image_keys.end()};
  slice.timed_keys = {shard.timed_keys.begin(), shard.timed_keys.end()};
  slice.keep_outputs = plan.campaign.value("keep_outputs", true);
  return slice;
}

fs::path shard_result_path(const fs::path& dir, int index) {
  return dir / "results" / ("shard-" + shard_file_name(index) + ".db");
}

fs::path shard_state_path(const fs::path& dir, int index) {
  return dir / "state" / (shard_file_name(index) + ".json");
}

std::vector<int> shards_of_group(const CampaignPlan& plan, const std::string& group) {
  std::vector<int> indices;
  for (const auto& shard : plan.shards)
    if (shard.group == group) indices.push_back(shard.index);
  return indices;
}

std::string index_ranges(const std::vector<int>& indices) {
  std::vector<int> sorted = indices;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string text;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    text += (text.empty() ? "" : ",") + std::to_string(sorted[i]);
    if (j > i) text += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return text;
}

}  // namespace deltann
