// The engine registry: the one place that knows which engines this deltann has and what each says
// about itself. A table of entries, one per `deltann-worker-<framework>` found in the worker
// folder; an entry is described on first use and then kept for the life of the process, so that
// a worker's `--describe` (and its build tool's) runs once however many variants, probes or verbs
// ask (docs/PROTOCOL.md, "Engine registry"). With a describe cache, the replies are also kept on
// disk between processes, under a key of everything they depend on (describe_cache.h): planning a
// campaign then starts no worker and no tool at all.
//
// An entry merges the worker's self-description with the knobs of the engine's build tool (the
// tool knows the valid build settings) and answers the questions every verb used to answer on its
// own: which formats the engine takes, and which members `knob=each` stands for.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "builder.h"
#include "converter.h"
#include "deltann/backend.h"
#include "deltann/environment.h"
#include "deltann/preprocess.h"  // default_cache_dir()
#include "describe_cache.h"

namespace deltann {

// One engine as this deltann offers it.
struct EngineEntry {
  std::string framework;
  std::filesystem::path worker;  // deltann-worker-<framework>
  // The worker's self-description with the build tool's knobs merged in; nullopt when the engine
  // cannot run here (then `unavailable` says why).
  std::optional<BackendInfo> info;
  // The engine's build step (build_<framework>.py), or null when it needs none.
  std::shared_ptr<Builder> builder;
  std::string unavailable;

  // The artifact formats the engine takes as input: its build tool's (TVM compiles ONNX), else its
  // worker's. "any" is the test engine's.
  std::vector<std::string> input_formats() const;
  // The members `knob=each` stands for at the settings of `env` (e.g. the passes of one opt
  // level). The build tool's `each` table wins over the worker's, as its knobs do; a level that
  // neither table lists stands for all the knob's values.
  std::vector<std::string> each_members(const std::string& knob, const Environment& env) const;
  // The merged knob of that name, or null.
  const Knob* knob(const std::string& name) const;
};

class EngineRegistry {
 public:
  // Lists the workers of `worker_dir` once; describes nothing yet. `describe_cache`: the folder
  // of the on-disk describe cache, or empty for none (every process describes afresh).
  explicit EngineRegistry(std::filesystem::path worker_dir,
                          const std::filesystem::path& describe_cache = {});

  // The registry of `worker_dir` shared by everything in this process, with its describe cache in
  // `<cache_dir>/describe` (the folder of the artifact and tensor caches).
  static EngineRegistry& shared(const std::filesystem::path& worker_dir,
                                const std::filesystem::path& cache_dir = default_cache_dir());

  const std::filesystem::path& worker_dir() const { return worker_dir_; }
  // The frameworks whose workers were found, sorted.
  const std::vector<std::string>& frameworks() const { return frameworks_; }
  std::filesystem::path worker_path(const std::string& framework) const;

  // The worker's own `--describe` reply, as it sent it; throws Error when it cannot describe
  // itself. Run once per worker.
  const nlohmann::json& worker_description(const std::string& framework);
  // The engine with its build tool merged in, described once. An engine that is not built, or
  // whose worker or build tool cannot describe itself, is an entry with `unavailable` set.
  const EngineEntry& engine(const std::string& framework);

  // The conversion tool (convert.py), found once; null when this deltann has none.
  std::shared_ptr<Converter> converter();

  // Puts a ready entry in the table instead of describing a worker: an engine known without one
  // (tests plan variants this way).
  void add(EngineEntry entry);

 private:
  std::filesystem::path worker_dir_;
  std::vector<std::string> frameworks_;
  std::shared_ptr<const DescribeCache> describe_cache_;  // null: none
  std::map<std::string, nlohmann::json> descriptions_;
  std::map<std::string, std::string> description_errors_;
  std::map<std::string, EngineEntry> engines_;
  std::optional<std::shared_ptr<Converter>> converter_;  // set once looked for
};

}  // namespace deltann
