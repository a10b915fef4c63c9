// Variant build steps: engines whose artifacts must be produced first (a compiler such as TVM, a
// converter) have a tool `build_<framework>.py` in the tools folder. The tool describes its knobs
// (`--describe`) and builds one artifact per (model, build settings); artifacts are cached by a
// content hash (docs/PROTOCOL.md, "Build tools").
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/environment.h"
#include "deltann/spec.h"
#include "describe_cache.h"
#include "locate.h"  // tools_python(), tools_dir()
#include "worker_process.h"

namespace deltann {

struct BuildResult {
  bool ok = false;
  bool cached = false;
  std::filesystem::path artifact;
  int64_t compile_ns = 0;   // of the build that made the artifact (also when it came from cache)
  std::string report_json;  // what the tool said about the build
  FailureSymptom symptom =
      FailureSymptom::error;  // when it failed: error | crash | abort | hang | killed
  std::string message;
};

class Builder {
 public:
  // The build tool of `framework`, or nullopt when the framework needs none. Its `--describe`
  // reply is kept in `describe_cache` when there is one.
  static std::optional<Builder> find(const std::string& framework,
                                     std::shared_ptr<const DescribeCache> describe_cache = nullptr);

  // Runs `--describe` (or finds its reply in the describe cache); throws Error with the tool's
  // output when it fails.
  const nlohmann::json& describe();
  // The tool's knobs (they override the worker's knobs of the same name).
  std::vector<Knob> knobs();
  std::string version();
  // Members for `knob=each` at the given settings: the tool's `each` table when it has one for
  // this knob (e.g. the passes of one opt level), else all the knob's values.
  std::vector<std::string> each_members(const std::string& knob, const Environment& env);

  // Builds (or finds in `cache_dir`) the artifact of `model` for the resolved environment.
  BuildResult build(const std::filesystem::path& model, const std::string& model_sha,
                    const ModelSpec& spec, const Environment& env,
                    const std::filesystem::path& cache_dir, double timeout_s);

 private:
  Builder(std::filesystem::path python, std::filesystem::path script, std::string framework,
          std::shared_ptr<const DescribeCache> describe_cache);
  // The hash of the tool's sources: part of both its describe key and every artifact's key.
  std::string tool_fingerprint() const;
  std::filesystem::path python_, script_;
  std::string framework_;
  std::shared_ptr<const DescribeCache> describe_cache_;
  std::optional<nlohmann::json> description_;
};

// One run of a Python tool that answers with one JSON line on standard output.
struct ToolRun {
  std::optional<nlohmann::json> reply;
  WorkerExit exit;
  std::string log;  // the tail of what it wrote to standard error (at most 1500 characters)
  bool ok() const { return reply.has_value() && exit.detail == "exit code 0"; }
  // The failure's symptom: a tool that ended with an exit code reported an error of its own.
  FailureSymptom symptom() const {
    return exit.symptom == FailureSymptom::exit ? FailureSymptom::error : exit.symptom;
  }
};
// Starts `python args...` (an argument vector, no shell) with PYTHONPATH = tools_python_path() and
// waits up to `timeout_s` for its reply. `scratch`: the tool's private folder (WorkerProcess), or
// none.
ToolRun run_tool(const std::filesystem::path& python, const std::vector<std::string>& args,
                 double timeout_s, const std::filesystem::path& scratch = {});

// A private folder for one tool run, `<cache>/tmp/<pid>-XXXXXX`: the tool writes its output and
// its temporary files there (TMPDIR), and only a complete result is renamed into the cache, so a
// killed run never leaves a partial artifact there. Removed with this object; when deltann dies
// first, the guard of the tool's process removes it, and a folder whose deltann (the pid in its
// name) is gone is removed when the next one is made.
class ScratchDir {
 public:
  explicit ScratchDir(const std::filesystem::path& cache_dir);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Puts a complete cache entry in place: `built` (in a ScratchDir) becomes `artifact`, then `report`
// is written beside it in the scratch folder and becomes `report_path`. Throws on failure.
void publish_cache_entry(const std::filesystem::path& built, const std::filesystem::path& artifact,
                         const nlohmann::json& report, const std::filesystem::path& report_path);
// A hash of the Python files of the tools folder whose names start with one of `prefixes`: a tool
// imports its sibling modules, so all of them are part of an artifact's identity.
std::string tools_fingerprint(const std::filesystem::path& dir,
                              const std::vector<std::string>& prefixes);

// The PYTHONPATH a tool runs with: the folder that holds the tools' package (and so its sibling
// `deltann_workers`), then whatever PYTHONPATH deltann itself was given.
std::string tools_python_path();

}  // namespace deltann
