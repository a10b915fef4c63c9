#include "describe_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "deltann/error.h"
#include "deltann/hash.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Raised when the meaning of a key or the layout of an entry changes, so that old entries are
// simply never found.
constexpr const char* kKeyFormat = "deltann describe cache 1";

// Size and modification time (nanoseconds) of a file, or "missing".
std::string file_stamp(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// The entries of `dir` (none when it cannot be read), sorted so that a key does not depend on the
// order the file system lists them in.
std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) entries.push_back(entry.path());
  std::sort(entries.begin(), entries.end());
  return entries;
}

// An interpreter as a key sees it: the path as given (a venv's `bin/python` is usually a link to
// the system's), the file it resolves to, and the package folders of its venv. Installing or
// removing a package adds or removes a `*.dist-info` folder there, which changes the folder's
// modification time: a new version of a framework gives a new key without importing anything.
std::string interpreter_stamp(const fs::path& python) {
  std::string stamp = "interpreter " + python.string();
  std::error_code ec;
  if (const fs::path real = fs::canonical(python, ec); !ec)
    stamp += " -> " + real.string() + " " + file_stamp(real);
  for (const auto& lib : sorted_entries(python.parent_path().parent_path() / "lib")) {
    if (lib.filename().string().rfind("python", 0) != 0) continue;
    for (const char* packages : {"site-packages", "dist-packages"})
      if (fs::is_directory(lib / packages, ec))
        stamp += " " + (lib / packages).string() + "@" + file_stamp(lib / packages);
  }
  return stamp;
}

// The machine's accelerators as devices and drivers list them: a worker's `devices` (and the CUDA
// arch TVM compiles for) change with them, and a cache folder may be shared between machines.
std::string machine_stamp() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string stamp = std::string("host ") + host + "\n";
  for (const auto& device : sorted_entries("/dev")) {
    const std::string name = device.filename().string();
    if (name.rfind("nvidia", 0) == 0 || name == "kfd") stamp += "device " + name + "\n";
  }
  // OpenCL drivers (ICDs such as PoCL) register here: installing one adds OpenCL devices.
  for (const auto& icd : sorted_entries("/etc/OpenCL/vendors"))
    stamp += "icd " + icd.string() + "\n";
  for (const char* dir : {"/dev/dri", "/dev/accel"})
    for (const auto& device : sorted_entries(dir)) stamp += "device " + device.string() + "\n";
  // Model, bus location and UUID of each NVIDIA GPU.
  for (const auto& gpu : sorted_entries("/proc/driver/nvidia/gpus")) {
    std::ifstream in(gpu / "information");
    std::ostringstream text;
    text << in.rdbuf();
    stamp += "gpu " + gpu.filename().string() + "\n" + text.str();
  }
  return stamp;
}

// The first line of `path` when the file is a script (`#!...`), else "".
std::string shebang_line(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!std::getline(in, line) || line.rfind("#!", 0) != 0) return "";
  return line.substr(2);
}

}  // namespace

const std::vector<std::string>& describe_environment_variables() {
  static const std::vector<std::string> names = {
      "PATH",                   // programs the tools look for (nvidia-smi, nvcc), `env` scripts
      "LD_LIBRARY_PATH",        // which engine libraries (versions, device plugins) load
      "PYTHONPATH",             // which modules Python tools and workers import
      "PYTHONHOME",             //
      "CUDA_VISIBLE_DEVICES",   // whether a CUDA device is listed
      "DELTANN_TVM_CUDA_ARCH",  // the CUDA arch the TVM build tool compiles for
      "DELTANN_TF_PYTHON",      // the TensorFlow venv the converter reports on
      "OPENCV_OPENCL_DEVICE",   // the OpenCL device OpenCV lists
      "OPENCV_OPENCL_RUNTIME",  //
  };
  return names;
}

DescribeInputs worker_describe_inputs(const std::string& framework, const fs::path& worker) {
  DescribeInputs inputs{"worker " + framework, {fs::absolute(worker)}, {}, {}};
  const std::string shebang = shebang_line(worker);
  if (shebang.empty()) return inputs;
  std::istringstream words(shebang);
  std::string interpreter, argument;
  words >> interpreter >> argument;
  // `#!/usr/bin/env python3`: the interpreter is found on PATH, which is part of every key.
  if (fs::path(interpreter).filename() == "env" && !argument.empty()) interpreter = argument;
  if (!interpreter.empty()) inputs.interpreters.emplace_back(interpreter);
  // A Python worker runs the package folder beside it (the build tree links the sources there).
  std::error_code ec;
  const fs::path package = fs::canonical(worker, ec).parent_path() / "python";
  std::vector<fs::path> sources;
  for (auto it = fs::recursive_directory_iterator(package, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().extension() == ".py" && it->is_regular_file(ec)) sources.push_back(it->path());
  std::sort(sources.begin(), sources.end());
  inputs.files.insert(inputs.files.end(), sources.begin(), sources.end());
  return inputs;
}

std::string describe_key(const DescribeInputs& inputs) {
  std::string text = std::string(kKeyFormat) + "\n" + inputs.program + "\n";
  for (const auto& file : inputs.files)
    text += "file " + fs::absolute(file).string() + " " + sha256_file(file) + "\n";
  for (const auto& python : inputs.interpreters) text += interpreter_stamp(python) + "\n";
  for (const auto& hash : inputs.hashes) text += "hash " + hash + "\n";
  for (const auto& name : describe_environment_variables()) {
    const char* value = std::getenv(name.c_str());
    text += "env " + name + (value ? "=" + std::string(value) : " unset") + "\n";
  }
  return sha256_text(text + machine_stamp());
}

DescribeCache::DescribeCache(fs::path folder) : folder_(std::move(folder)) {}

fs::path DescribeCache::entry_path(const std::string& key) const {
  return folder_ / (key + ".json");
}

std::optional<json> DescribeCache::load(const std::string& key) const {
  std::ifstream in(entry_path(key));
  if (!in) return std::nullopt;
  const json entry = json::parse(in, nullptr, /*allow_exceptions=*/false);
  // A truncated or edited file, or one renamed from another key: described afresh and rewritten.
  if (!entry.is_object() || entry.value("key", "") != key || !entry.contains("reply") ||
      !entry.at("reply").is_object())
    return std::nullopt;
  return entry.at("reply");
}

void DescribeCache::save(const std::string& key, const json& reply) const {
  std::error_code ec;
  fs::create_directories(folder_, ec);
  const fs::path written = folder_ / (key + ".tmp" + std::to_string(::getpid()));
  {
    std::ofstream out(written, std::ios::trunc);
    out << json{{"key", key}, {"reply", reply}}.dump() << '\n';
    if (!out.flush()) {
      fs::remove(written, ec);
      return;
    }
  }
  // Rename is atomic: a reader finds the old entry, none, or the whole new one.
  fs::rename(written, entry_path(key), ec);
  if (ec) fs::remove(written, ec);
}

json DescribeCache::get(const DescribeInputs& inputs, const std::function<json()>& describe) const {
  std::string key;
  try {
    key = describe_key(inputs);
  } catch (const std::exception&) {
    return describe();  // a program that cannot be read cannot be keyed: describe it, keep nothing
  }
  if (auto saved = load(key)) return *saved;
  json reply = describe();
  save(key, reply);
  return reply;
}

}  // namespace deltann
