#include "engine_registry.h"

#include <algorithm>

#include "deltann/error.h"
#include "protocol.h"
#include "worker_process.h"

namespace deltann {
namespace fs = std::filesystem;

namespace {

constexpr const char* kWorkerPrefix = "deltann-worker-";

std::vector<std::string> find_frameworks(const fs::path& dir) {
  std::vector<std::string> names;
  const std::string prefix = kWorkerPrefix;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) names.push_back(name.substr(prefix.size()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The build tool's knobs replace the worker's of the same name: the tool knows the valid build
// settings.
void merge_knobs(BackendInfo& info, const std::vector<Knob>& tool_knobs) {
  for (const auto& knob : tool_knobs) {
    const auto same = std::find_if(info.knobs.begin(), info.knobs.end(),
                                   [&](const Knob& k) { return k.name == knob.name; });
    if (same == info.knobs.end())
      info.knobs.push_back(knob);
    else
      *same = knob;
  }
}

}  // namespace

std::vector<std::string> EngineEntry::input_formats() const {
  if (builder) {
    const auto& d = builder->describe();
    if (d.contains("formats")) return d.at("formats").get<std::vector<std::string>>();
  }
  return info ? info->formats : std::vector<std::string>{};
}

const Knob* EngineEntry::knob(const std::string& name) const {
  if (!info) return nullptr;
  for (const auto& k : info->knobs)
    if (k.name == name) return &k;
  return nullptr;
}

std::vector<std::string> EngineEntry::each_members(const std::string& name,
                                                   const Environment& env) const {
  if (builder) return builder->each_members(name, env);
  if (!info) return {};
  if (auto row = deltann::each_members(*info, name, env)) return *row;
  const Knob* k = knob(name);
  return k ? k->values : std::vector<std::string>{};
}

EngineRegistry::EngineRegistry(fs::path worker_dir, const fs::path& describe_cache)
    : worker_dir_(std::move(worker_dir)),
      frameworks_(find_frameworks(worker_dir_)),
      describe_cache_(describe_cache.empty() ? nullptr
                                             : std::make_shared<DescribeCache>(describe_cache)) {}

EngineRegistry& EngineRegistry::shared(const fs::path& worker_dir, const fs::path& cache_dir) {
  // One registry per (worker folder, cache folder) for the life of the process; entries are never
  // removed, so the references handed out stay valid.
  static std::map<std::pair<fs::path, fs::path>, std::unique_ptr<EngineRegistry>> registries;
  auto& registry = registries[{fs::absolute(worker_dir), fs::absolute(cache_dir)}];
  if (!registry) registry = std::make_unique<EngineRegistry>(worker_dir, cache_dir / "describe");
  return *registry;
}

fs::path EngineRegistry::worker_path(const std::string& framework) const {
  return worker_dir_ / (kWorkerPrefix + framework);
}

const nlohmann::json& EngineRegistry::worker_description(const std::string& framework) {
  if (const auto done = descriptions_.find(framework); done != descriptions_.end())
    return done->second;
  if (const auto failed = description_errors_.find(framework); failed != description_errors_.end())
    throw Error(failed->second);
  const fs::path worker = worker_path(framework);
  try {
    return descriptions_[framework] =
               describe_cache_ ? describe_cache_->get(worker_describe_inputs(framework, worker),
                                                      [&] { return describe_worker(worker); })
                               : describe_worker(worker);
  } catch (const std::exception& e) {
    description_errors_[framework] = e.what();
    throw;
  }
}

const EngineEntry& EngineRegistry::engine(const std::string& framework) {
  if (const auto known = engines_.find(framework); known != engines_.end()) return known->second;
  EngineEntry entry{framework, worker_path(framework), std::nullopt, nullptr, ""};
  if (std::find(frameworks_.begin(), frameworks_.end(), framework) == frameworks_.end()) {
    std::string built;
    for (const auto& name : frameworks_) built += (built.empty() ? "" : ", ") + name;
    entry.unavailable = "engine '" + framework + "' is not built into this deltann (built: " +
                        (built.empty() ? "none" : built) + ")";
    return engines_[framework] = std::move(entry);
  }
  try {
    BackendInfo info = backend_info_from_json(worker_description(framework));
    if (auto found = Builder::find(framework, describe_cache_))
      entry.builder = std::make_shared<Builder>(*found);
    if (entry.builder) merge_knobs(info, entry.builder->knobs());
    entry.info = std::move(info);
  } catch (const std::exception& e) {
    entry.info.reset();
    entry.unavailable = std::string("engine '") + framework + "' cannot start: " + e.what();
  }
  return engines_[framework] = std::move(entry);
}

std::shared_ptr<Converter> EngineRegistry::converter() {
  if (!converter_) {
    auto found = Converter::find(describe_cache_);
    converter_ = found ? std::make_shared<Converter>(*found) : nullptr;
  }
  return *converter_;
}

void EngineRegistry::add(EngineEntry entry) {
  if (std::find(frameworks_.begin(), frameworks_.end(), entry.framework) == frameworks_.end()) {
    frameworks_.push_back(entry.framework);
    std::sort(frameworks_.begin(), frameworks_.end());
  }
  const std::string framework = entry.framework;
  engines_[framework] = std::move(entry);
}

}  // namespace deltann
