// The on-disk cache of `--describe` replies (docs/PROTOCOL.md, "Describe cache"). Describing an
// engine means starting its worker, and for an engine with a build step its build tool too (a
// Python process that may ask another venv for its versions); planning a campaign of every engine
// used to spend seconds on that each time. A reply is kept in `<cache>/describe/<key>.json`, next
// to the artifact and tensor caches, under a key made of everything the reply depends on: the
// program's bytes, the interpreter that runs it and the packages installed for it, the environment
// variables that change what it reports, and the machine's accelerators. Anything else that
// changes a reply (a shared library replaced in place under the same worker binary) is not seen:
// removing `<cache>/describe` makes every engine describe itself afresh.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltann {

// What a describing program depends on, beyond the environment variables and the machine that
// every key includes.
struct DescribeInputs {
  std::string program;  // what is described, e.g. "worker tvm", "build tool tvm", "converter"
  // Files whose bytes make the program (a worker binary, a tool's Python sources).
  std::vector<std::filesystem::path> files;
  // Interpreters that run it or that it asks (a venv's `bin/python`): the path, the file it
  // resolves to, and when the packages of its venv last changed.
  std::vector<std::filesystem::path> interpreters;
  // Already-hashed parts (e.g. tools_fingerprint of a tools folder).
  std::vector<std::string> hashes;
};

// The inputs of a worker's `--describe`: its binary; for a script (`#!`), also the interpreter on
// its first line and the Python files of the `python` folder beside it (the package it runs).
DescribeInputs worker_describe_inputs(const std::string& framework,
                                      const std::filesystem::path& worker);

// The environment variables that change some program's `--describe` and so are part of every key:
// library and module search paths, GPU visibility, OpenCL device choice, and the ones deltann's
// tools read (docs/PROTOCOL.md lists them with the reason for each).
const std::vector<std::string>& describe_environment_variables();

// The cache key of `inputs` in the current environment on this machine (hex SHA-256). Throws
// Error when one of `inputs.files` cannot be read.
std::string describe_key(const DescribeInputs& inputs);

class DescribeCache {
 public:
  // Entries live in `folder` (made on first write).
  explicit DescribeCache(std::filesystem::path folder);

  const std::filesystem::path& folder() const { return folder_; }

  // The reply saved under `key`, or nullopt when there is none or the entry cannot be trusted
  // (unreadable, not JSON, written for another key, no reply object in it).
  std::optional<nlohmann::json> load(const std::string& key) const;
  // Saves `reply` under `key`, whole or not at all (written aside, then renamed). A cache that
  // cannot be written only costs the next run a describe: failures are ignored.
  void save(const std::string& key, const nlohmann::json& reply) const;

  // The saved reply of `inputs`, else `describe()`'s, saved. A describe that throws saves nothing:
  // a failure is reported afresh each time, never remembered.
  nlohmann::json get(const DescribeInputs& inputs,
                     const std::function<nlohmann::json()>& describe) const;

 private:
  std::filesystem::path entry_path(const std::string& key) const;
  std::filesystem::path folder_;
};

}  // namespace deltann
