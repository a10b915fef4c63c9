#include "builder.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "deltann/error.h"
#include "deltann/hash.h"
#include "worker_process.h"

namespace deltann {
namespace fs = std::filesystem;

constexpr double kToolExitGrace_s = 30;

Builder::Builder(fs::path python, fs::path script, std::string framework,
                 std::shared_ptr<const DescribeCache> describe_cache)
    : python_(std::move(python)),
      script_(std::move(script)),
      framework_(std::move(framework)),
      describe_cache_(std::move(describe_cache)) {}

std::optional<Builder> Builder::find(const std::string& framework,
                                     std::shared_ptr<const DescribeCache> describe_cache) {
  const fs::path script = tools_dir() / ("build_" + framework + ".py");
  if (!fs::is_regular_file(script)) return std::nullopt;
  return Builder(tools_python(), script, framework, std::move(describe_cache));
}

std::string Builder::tool_fingerprint() const {
  // build_tvm.py imports tvm_compile.py and environment.py (the environment string parser): the
  // tool is every `build_<e>*.py` and `<e>_*.py` file, and environment.py.
  return tools_fingerprint(script_.parent_path(),
                           {"build_" + framework_, framework_ + "_", "environment"});
}

const nlohmann::json& Builder::describe() {
  if (!description_) {
    const auto run_describe = [&] {
      const ToolRun run = run_tool(python_, {script_.string(), "--describe"}, 300);
      if (!run.reply)
        throw Error("the build tool of " + framework_ + " (" + script_.string() +
                    ") cannot describe itself (" + std::string(to_string(run.exit.symptom)) + ", " +
                    run.exit.detail + "): " + run.log);
      return *run.reply;
    };
    // The reply depends on the tool's sources and on what is installed for the interpreter (the
    // compiler's version).
    description_ = describe_cache_ ? describe_cache_->get({"build tool " + framework_,
                                                           {},
                                                           {python_},
                                                           {script_.string(), tool_fingerprint()}},
                                                          run_describe)
                                   : run_describe();
  }
  return *description_;
}

std::vector<Knob> Builder::knobs() {
  const auto& d = describe();
  std::vector<Knob> knobs;
  for (const auto& k : d.value("knobs", nlohmann::json::array()))
    knobs.push_back(knob_from_json(k));
  return knobs;
}

std::string Builder::version() { return describe().value("version", ""); }

std::vector<std::string> Builder::each_members(const std::string& knob, const Environment& env) {
  const auto& d = describe();
  // {"each": {"disable": {"by": "opt", "members": {"3": ["FuseOps", ...]}}}}
  if (d.contains("each") && d.at("each").contains(knob)) {
    const auto& table = d.at("each").at(knob);
    const std::string by = table.value("by", "");
    std::string key = env.knob(by);
    if (key.empty())
      for (const auto& k : knobs())
        if (k.name == by) key = k.default_value;
    if (table.at("members").contains(key))
      return table.at("members").at(key).get<std::vector<std::string>>();
  }
  for (const auto& k : knobs())
    if (k.name == knob) return k.values;
  return {};
}

std::string tools_python_path() {
  fs::path package = fs::absolute(tools_dir()).lexically_normal();
  if (!package.has_filename()) package = package.parent_path();  // a trailing '/'
  std::string value = package.parent_path().string();
  if (const char* inherited = std::getenv("PYTHONPATH"); inherited && *inherited)
    value += std::string(":") + inherited;
  return value;
}

ToolRun run_tool(const fs::path& python, const std::vector<std::string>& args, double timeout_s,
                 const fs::path& scratch) {
  WorkerProcess tool(python, args, scratch, {"PYTHONPATH=" + tools_python_path()});
  ToolRun run;
  run.reply = tool.receive(timeout_s);
  // A tool that has replied only has to exit, but Python's teardown of a compiler's modules can
  // take more than a second on a busy machine (TVM: 0.6 to 1.2 s measured with a load of 25).
  run.exit = tool.finish(run.reply ? kToolExitGrace_s : 1);
  run.log = tool.log_tail();
  if (run.log.size() > 1500) run.log = "..." + run.log.substr(run.log.size() - 1500);
  return run;
}

namespace {

// Removes the scratch folders of runs that are gone: their guard could not (it was killed too),
// or they predate it. A folder is named after its deltann's pid; one whose pid runs is kept.
void remove_stale_scratch(const fs::path& tmp) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tmp, ec)) {
    const std::string name = entry.path().filename().string();
    const auto dash = name.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str(), &end, 10);
    if (end != name.c_str() + dash || pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
}

}  // namespace

ScratchDir::ScratchDir(const fs::path& cache_dir) {
  const fs::path tmp = cache_dir / "tmp";
  fs::create_directories(tmp);
  remove_stale_scratch(tmp);
  std::string pattern = (tmp / (std::to_string(::getpid()) + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data()))
    throw Error("cannot make a scratch folder in " + tmp.string() + ": " + std::strerror(errno));
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void publish_cache_entry(const fs::path& built, const fs::path& artifact,
                         const nlohmann::json& report, const fs::path& report_path) {
  const fs::path written_report = built.parent_path() / "report.json";
  {
    std::ofstream out(written_report);
    out << report.dump();
    if (!out.flush()) throw Error("cannot write " + written_report.string());
  }
  // Rename is atomic within one file system: each file in the cache is absent or whole. The
  // artifact goes first, as the report marks a complete entry.
  fs::rename(built, artifact);
  fs::rename(written_report, report_path);
}

std::string tools_fingerprint(const fs::path& dir, const std::vector<std::string>& prefixes) {
  std::vector<fs::path> sources;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool ours = std::any_of(prefixes.begin(), prefixes.end(),
                                  [&](const std::string& p) { return name.rfind(p, 0) == 0; });
    if (ours && entry.is_regular_file() && entry.path().extension() == ".py")
      sources.push_back(entry.path());
  }
  std::sort(sources.begin(), sources.end());
  std::string all;
  for (const auto& source : sources)
    all += source.filename().string() + ":" + sha256_file(source) + ";";
  return sha256_text(all);
}

BuildResult Builder::build(const fs::path& model, const std::string& model_sha,
                           const ModelSpec& spec, const Environment& env, const fs::path& cache_dir,
                           double timeout_s) {
  // The artifact depends on the model, the tool (its code and the compiler's version) and the
  // build settings: the resolved environment minus the knobs that only the runtime reads.
  Environment build_env = env;
  std::vector<std::string> build_knobs;
  for (const auto& k : knobs()) build_knobs.push_back(k.name);
  for (auto it = build_env.knobs.begin(); it != build_env.knobs.end();)
    it = std::find(build_knobs.begin(), build_knobs.end(), it->first) == build_knobs.end()
             ? build_env.knobs.erase(it)
             : std::next(it);
  const std::string tool = tool_fingerprint();
  // The whole self-description, not only the compiler version: it also names what the tool
  // resolved on this machine (for TVM, the CUDA arch kernels are compiled for).
  const std::string key = sha256_text(model_sha + "|" + tool + "|" + describe().dump() + "|" +
                                      build_env.to_string() + "|" + to_json(spec).dump());
  const fs::path folder = cache_dir / "artifacts" / framework_;
  BuildResult result;
  result.artifact = folder / (key + ".so");
  const fs::path report = folder / (key + ".json");
  if (fs::exists(result.artifact) && fs::exists(report)) {
    std::ifstream in(report);
    const auto saved = nlohmann::json::parse(in, nullptr, false);
    if (!saved.is_discarded()) {
      result.ok = result.cached = true;
      result.compile_ns = saved.value("compile_ns", int64_t{0});
      result.report_json = saved.dump();
      return result;
    }
  }
  // The tool writes into a scratch folder; the cache gets the artifact only once it is complete.
  try {
    fs::create_directories(folder);
    const ScratchDir scratch(cache_dir);
    const fs::path spec_file = scratch.path() / "spec.json";
    const fs::path built = scratch.path() / "artifact.so";
    {
      std::ofstream out(spec_file);
      out << to_json(spec).dump();
    }
    const ToolRun run =
        run_tool(python_,
                 {script_.string(), "--model", fs::absolute(model).string(), "--spec",
                  spec_file.string(), "--env", env.to_string(), "--out", built.string()},
                 timeout_s, scratch.path());
    if (!run.ok() || !fs::exists(built)) {
      result.symptom = run.symptom();
      result.message = "build of " + env.to_string() + " failed (" + run.exit.detail + ")" +
                       (run.log.empty() ? "" : ": " + run.log);
      return result;
    }
    nlohmann::json saved = *run.reply;
    // Compile time as the tool measured it, around the compiler call.
    result.compile_ns = static_cast<int64_t>(saved.value("compile_s", 0.0) * 1e9);
    saved["compile_ns"] = result.compile_ns;
    publish_cache_entry(built, result.artifact, saved, report);
    result.ok = true;
    result.report_json = saved.dump();
  } catch (const std::exception& e) {  // the cache folder: unwritable, full, ...
    result.symptom = FailureSymptom::error;
    result.message = "build of " + env.to_string() + " failed: " + e.what();
  }
  return result;
}

}  // namespace deltann
