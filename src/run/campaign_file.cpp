// Reading a campaign file (include/deltann/campaign_file.h, docs/CAMPAIGN_FILE.md) with toml++,
// whose nodes keep their line in the file, so that every complaint names file, line and key.
#include "deltann/campaign_file.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>

#include <toml++/toml.h>

#include "deltann/error.h"
#include "deltann/text.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;

// A campaign file is a few kilobytes; anything far larger is not one (and is not read whole).
constexpr uintmax_t kMaxCampaignFileBytes = 1 << 20;

// The keys each table may hold. One per `deltann run` flag that shapes the campaign, named as
// the flag with '_' for '-'; the timing under [timing]; placement beside them.
const std::vector<std::string> kTopKeys = {
    "model",   "spec",         "images",    "labels",  "synsets",       "db",
    "cache",   "environments", "timing",    "timeout", "build_timeout", "keep_outputs",
    "shuffle", "retry_failed", "new_model", "wait",    "shard_images",  "hardware_group"};
const std::vector<std::string> kTimingKeys = {"warmup", "repeat", "timing_images"};
const std::vector<std::string> kGroupKeys = {"name",     "match",     "constraint",  "gres",
                                             "licenses", "exclusive", "shard_images"};
const std::vector<std::string> kMatchKeys = {"engines", "devices"};

// "a string", "an integer": how a message names what a value is.
std::string type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known key an unknown one was probably meant to be: the flag's spelling with '-' (the keys
// use '_'), or a near miss; empty when none is close.
std::string likely_key(const std::string& key, const std::vector<std::string>& known) {
  std::string underscored = key;
  std::replace(underscored.begin(), underscored.end(), '-', '_');
  if (std::find(known.begin(), known.end(), underscored) != known.end()) return underscored;
  std::string best;
  size_t best_distance = 3;  // at most two edits away
  for (const std::string& candidate : known)
    if (const size_t d = edit_distance(key, candidate); d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  return best;
}

// Non-empty and made of `extra` and ASCII letters and digits: the words the environment grammar
// allows for framework names and knob values (docs/ENVIRONMENTS.md).
bool is_word(std::string_view text, std::string_view extra) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

std::string device_of(const Environment& environment) { return environment.knob("device", "cpu"); }

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Reads one campaign file's TOML into a CampaignFile, failing with the file, line and key.
class CampaignFileParser {
 public:
  explicit CampaignFileParser(const fs::path& path) : path_(path), base_(path.parent_path()) {}

  CampaignFile parse(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, path_.string());
    } catch (const toml::parse_error& e) {
      const auto& begin = e.source().begin;
      throw Error(path_.string() + ":" + std::to_string(begin.line) + ":" +
                  std::to_string(begin.column) +
                  ": not valid TOML: " + std::string(e.description()));
    }
    check_keys(root, kTopKeys, "");
    CampaignFile file;
    file.path = path_;
    read_campaign(root, file.config);
    if (const toml::node* node = root.get("shard_images"))
      file.shard_images = integer(*node, "shard_images", 1, INT64_MAX);
    if (const toml::node* node = root.get("hardware_group"))
      file.groups = read_groups(*node, file.config.environments);
    return file;
  }

 private:
  [[noreturn]] void fail(const toml::source_region& where, const std::string& what) const {
    throw Error(path_.string() + ":" + std::to_string(where.begin.line) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path_.string() + ": " + what);
  }

  // Every key of `table` must be one of `known`: a misspelt key is refused, never ignored.
  void check_keys(const toml::table& table, const std::vector<std::string>& known,
                  const std::string& where) const {
    for (const auto& [key, node] : table) {
      const std::string name(key.str());
      if (contains(known, name)) continue;
      const std::string likely = likely_key(name, known);
      fail(key.source(), "unknown key '" + name + "'" + (where.empty() ? "" : " in " + where) +
                             (likely.empty() ? "" : "; did you mean '" + likely + "'?") +
                             " (known keys: " + joined(known) + ")");
    }
  }

  [[noreturn]] void wrong_type(const toml::node& node, const std::string& key,
                               const std::string& expected) const {
    fail(node.source(), "'" + key + "' must be " + expected + ", not " + type_name(node.type()));
  }

  std::string string(const toml::node& node, const std::string& key) const {
    const auto* value = node.as_string();
    if (!value) wrong_type(node, key, "a string");
    if (value->get().empty()) fail(node.source(), "'" + key + "' must not be empty");
    return value->get();
  }

  int64_t integer(const toml::node& node, const std::string& key, int64_t min, int64_t max) const {
    const auto* value = node.as_integer();
    if (!value) wrong_type(node, key, "an integer");
    const int64_t n = value->get();
    if (n < min || n > max)
      fail(node.source(),
           "'" + key + "' must be " +
               (max == INT64_MAX || max == INT_MAX
                    ? "at least " + std::to_string(min)
                    : "between " + std::to_string(min) + " and " + std::to_string(max)) +
               ", not " + std::to_string(n));
    return n;
  }

  // A number of seconds: an integer or a float, finite and positive.
  double seconds(const toml::node& node, const std::string& key) const {
    double s = 0;
    if (const auto* i = node.as_integer())
      s = static_cast<double>(i->get());
    else if (const auto* f = node.as_floating_point())
      s = f->get();
    else
      wrong_type(node, key, "a number of seconds");
    if (!std::isfinite(s) || s <= 0) fail(node.source(), "'" + key + "' must be positive");
    return s;
  }

  bool boolean(const toml::node& node, const std::string& key) const {
    const auto* value = node.as_boolean();
    if (!value) wrong_type(node, key, "true or false");
    return value->get();
  }

  const toml::table& table(const toml::node& node, const std::string& key) const {
    const auto* value = node.as_table();
    if (!value) wrong_type(node, key, "a table");
    return *value;
  }

  std::vector<std::string> strings(const toml::node& node, const std::string& key) const {
    const auto* array = node.as_array();
    if (!array) wrong_type(node, key, "an array of strings");
    std::vector<std::string> items;
    for (const toml::node& item : *array) items.push_back(string(item, key + " entry"));
    return items;
  }

  // A path as the file gives it, taken relative to the file's folder.
  fs::path path(const toml::node& node, const std::string& key) const {
    return base_ / fs::path(string(node, key));
  }

  const toml::node& required(const toml::table& table, const std::string& key,
                             const std::string& what) const {
    if (const toml::node* node = table.get(key)) return *node;
    fail("missing required key '" + key + "' (" + what + ")");
  }

  void read_campaign(const toml::table& root, CampaignConfig& c) const {
    c.model = path(required(root, "model", "the ONNX model to run"), "model");
    c.images = path(required(root, "images", "folder, list file or image"), "images");
    c.db = path(required(root, "db", "the campaign database"), "db");
    c.environments = environments(required(root, "environments", "the environments to run in"));
    if (const toml::node* node = root.get("spec")) c.spec = path(*node, "spec");
    if (const toml::node* node = root.get("labels")) c.dataset.labels = path(*node, "labels");
    if (const toml::node* node = root.get("synsets")) c.dataset.synsets = path(*node, "synsets");
    if (const toml::node* node = root.get("cache")) c.cache_dir = path(*node, "cache");
    if (const toml::node* node = root.get("timing")) read_timing(table(*node, "timing"), c);
    if (const toml::node* node = root.get("timeout")) c.timeout_s = seconds(*node, "timeout");
    if (const toml::node* node = root.get("build_timeout"))
      c.build_timeout_s = seconds(*node, "build_timeout");
    if (const toml::node* node = root.get("keep_outputs"))
      c.keep_outputs_up_to = static_cast<int>(integer(*node, "keep_outputs", 0, INT_MAX));
    if (const toml::node* node = root.get("shuffle"))
      c.shuffle_seed = static_cast<uint64_t>(integer(*node, "shuffle", 0, INT64_MAX));
    if (const toml::node* node = root.get("retry_failed"))
      c.retry_failed = boolean(*node, "retry_failed");
    if (const toml::node* node = root.get("new_model")) c.new_model = boolean(*node, "new_model");
    if (const toml::node* node = root.get("wait")) c.wait_for_lock = boolean(*node, "wait");
  }

  // The environment strings, each checked against the grammar here so that a bad one is named
  // with its line (the engines check the knobs' values when the campaign plans).
  std::vector<std::string> environments(const toml::node& node) const {
    std::vector<std::string> envs = strings(node, "environments");
    if (envs.empty()) fail(node.source(), "'environments' must name at least one environment");
    const toml::array& array = *node.as_array();
    for (size_t i = 0; i < envs.size(); ++i) {
      try {
        parse_environment(envs[i]);
      } catch (const Error& e) {
        fail(array[i].source(), std::string("environments: ") + e.what());
      }
    }
    return envs;
  }

  void read_timing(const toml::table& timing, CampaignConfig& c) const {
    check_keys(timing, kTimingKeys, "[timing]");
    if (const toml::node* node = timing.get("warmup"))
      c.warmup = static_cast<int>(integer(*node, "warmup", 0, INT_MAX));
    if (const toml::node* node = timing.get("repeat"))
      c.repeat = static_cast<int>(integer(*node, "repeat", 1, INT_MAX));
    if (const toml::node* node = timing.get("timing_images")) {
      // A count of images, or "all" (the flag's two forms).
      if (const auto* text = node->as_string()) {
        if (text->get() != "all")
          fail(node->source(), "'timing_images' must be a number of images or \"all\", not \"" +
                                   text->get() + "\"");
        c.timing_images = std::nullopt;
      } else if (node->is_integer()) {
        c.timing_images = integer(*node, "timing_images", 0, INT64_MAX);
      } else {
        wrong_type(*node, "timing_images", "a number of images or \"all\"");
      }
    }
  }

  std::vector<HardwareGroup> read_groups(const toml::node& node,
                                         const std::vector<std::string>& environments) const {
    const auto* array = node.as_array();
    if (!array || !array->is_array_of_tables())
      wrong_type(node, "hardware_group", "an array of tables ([[hardware_group]])");
    std::vector<Environment> parsed;
    for (const std::string& env : environments) parsed.push_back(parse_environment(env));
    std::vector<HardwareGroup> groups;
    std::map<std::string, int> lines_by_name;
    for (const toml::node& item : *array) {
      HardwareGroup group = read_group(*item.as_table());
      if (const auto [at, added] = lines_by_name.emplace(group.name, group.line); !added)
        fail(item.as_table()->get("name")->source(), "hardware group name '" + group.name +
                                                         "' is used twice (first on line " +
                                                         std::to_string(at->second) + ")");
      // A group that takes no variant is a typo in an engine or device name, not a plan.
      if (std::none_of(parsed.begin(), parsed.end(),
                       [&](const Environment& env) { return could_take(group, env); }))
        fail(item.source(),
             "hardware group '" + group.name +
                 "' matches none of the campaign's environments (engines: " +
                 (group.engines.empty() ? "any" : joined(group.engines)) +
                 "; devices: " + (group.devices.empty() ? "any" : joined(group.devices)) + ")");
      groups.push_back(std::move(group));
    }
    return groups;
  }

  // Whether `group` takes at least one variant of `env`, whose device may still be `each`/`all`.
  static bool could_take(const HardwareGroup& group, const Environment& env) {
    if (group.matches(env)) return true;
    const std::string device = device_of(env);
    return (device == "each" || device == "all") &&
           (group.engines.empty() || contains(group.engines, env.framework));
  }

  HardwareGroup read_group(const toml::table& t) const {
    HardwareGroup g;
    g.line = static_cast<int>(t.source().begin.line);
    const std::string where = "[[hardware_group]] on line " + std::to_string(g.line);
    check_keys(t, kGroupKeys, where);
    if (!t.get("name")) fail(t.source(), where + " lacks the required key 'name'");
    g.name = string(*t.get("name"), "name");
    if (!t.get("match"))
      fail(t.source(), "hardware group '" + g.name +
                           "' lacks the required key 'match' (which variants it takes: "
                           "engines and/or devices)");
    read_match(table(*t.get("match"), "match"), g);
    for (auto [key, field] : {std::pair{"constraint", &g.constraint}, std::pair{"gres", &g.gres},
                              std::pair{"licenses", &g.licenses}})
      if (const toml::node* node = t.get(key)) {
        *field = string(*node, key);
        if (!is_placement_word(*field))
          fail(node->source(), std::string("'") + key +
                                   "' must be printable ASCII without spaces (a Slurm value such "
                                   "as gpu:2 or a100&ib)");
      }
    if (const toml::node* node = t.get("exclusive")) g.exclusive = boolean(*node, "exclusive");
    if (const toml::node* node = t.get("shard_images"))
      g.shard_images = integer(*node, "shard_images", 1, INT64_MAX);
    return g;
  }

  void read_match(const toml::table& match, HardwareGroup& g) const {
    const std::string where = "the match of hardware group '" + g.name + "'";
    check_keys(match, kMatchKeys, where);
    if (const toml::node* node = match.get("engines")) {
      g.engines = strings(*node, "engines");
      for (const std::string& engine : g.engines)
        if (!is_word(engine, "_"))
          fail(node->source(),
               "'engines' entry '" + engine + "' is not an engine name (ort, opencv, tvm, ...)");
    }
    if (const toml::node* node = match.get("devices")) {
      g.devices = strings(*node, "devices");
      for (const std::string& device : g.devices)
        if (!is_word(device, "_.+-:"))
          fail(node->source(),
               "'devices' entry '" + device + "' is not a device (cpu, cuda, cuda:1, ...)");
    }
    if (g.engines.empty() && g.devices.empty())
      fail(match.source(), where + " names no engines and no devices");
  }

  fs::path path_;
  fs::path base_;  // relative paths in the file are relative to its folder
};

std::string read_campaign_text(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec)
    throw Error("cannot read the campaign file " + path.string() + ": " + filesystem_reason(ec));
  if (!fs::is_regular_file(status))
    throw Error("the campaign file " + path.string() + " is not a regular file");
  if (const auto size = fs::file_size(path, ec); !ec && size > kMaxCampaignFileBytes)
    throw Error("the campaign file " + path.string() + " is larger than " +
                std::to_string(kMaxCampaignFileBytes >> 20) + " MiB: not a campaign file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read the campaign file " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

// Printable ASCII without spaces: what a Slurm option value may hold here, so that it stays one
// word wherever it is written (an argument vector, a batch script's #SBATCH line).
bool is_placement_word(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7F; });
}

bool HardwareGroup::matches(const Environment& environment) const {
  return (engines.empty() || contains(engines, environment.framework)) &&
         (devices.empty() || contains(devices, device_of(environment)));
}

CampaignFile parse_campaign_file(std::string_view text, const fs::path& path) {
  return CampaignFileParser(path).parse(text);
}

CampaignFile read_campaign_file(const fs::path& path) {
  return parse_campaign_file(read_campaign_text(path), path);
}

const HardwareGroup* hardware_group_for(const CampaignFile& file, const Environment& environment) {
  for (const HardwareGroup& group : file.groups)
    if (group.matches(environment)) return &group;
  return nullptr;
}

std::optional<int64_t> shard_images_for(const CampaignFile& file, const HardwareGroup* group) {
  if (group && group->shard_images) return group->shard_images;
  return file.shard_images;
}

}  // namespace deltann
