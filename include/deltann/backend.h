// The interface every engine implements. It lives inside a worker process (one engine per
// process); the campaign talks to it only through the worker protocol (docs/PROTOCOL.md).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deltann/environment.h"
#include "deltann/error.h"
#include "deltann/spec.h"
#include "deltann/tensor.h"

namespace deltann {

// One setting of an engine. `values` lists the valid choices; an empty list means a positive
// integer (threads). The values of `opt` are listed from the least to the most optimisation: the
// analysis relies on that order to call a slow-down under a higher level unexpected.
struct Knob {
  std::string name;
  std::vector<std::string> values;
  std::string default_value;
  std::string help;
  // A set knob takes any subset of `values` joined by '+' ("none" for the empty set), such as
  // passes to disable: `disable=FuseOps+FoldConstant`.
  bool subset = false;
  // Values that are valid but cannot run on this machine, with the reason (bf16 on a CPU without
  // it): a variant naming one is skipped with the reason instead of refusing the whole campaign.
  std::map<std::string, std::string> unavailable = {};
  // Left out of the canonical environment string while at its default, so that a knob added to
  // an engine later does not rename the variants of databases made before it (ONNX Runtime's
  // `disable`): `ort:opt=all` stays `ort:opt=all,device=cpu,threads=1`.
  bool omit_default = false;
  // Takes any positive integer besides the listed values (`tune=off` or `tune=200`): a count
  // with a named "not at all". A knob with no listed values takes only positive integers.
  bool integer = false;
  // `NAME=value` entries the worker process must be started with for a value (an instruction-set
  // cap such as `OPENCV_CPU_DISABLE=AVX2`): engines read them once, when they initialise, so the
  // campaign puts them in the worker's environment before it starts (worker_environment()).
  std::map<std::string, std::vector<std::string>> environment = {};
};

// Which members `knob=each` stands for at each value of another knob `by`, e.g. the optimisers
// one opt level runs; the same form as a build tool's `each` table (docs/PROTOCOL.md).
struct EachTable {
  std::string by;
  std::map<std::string, std::vector<std::string>> members;
};

struct BackendInfo {
  std::string name;     // framework name used in environment strings
  std::string version;  // engine version as the engine reports it
  std::string description;
  std::vector<std::string> devices;            // "cpu", "opencl:0", ...
  std::vector<Knob> knobs;                     // always includes opt, device and threads
  std::vector<std::string> formats;            // artifact formats it loads ("onnx")
  std::map<std::string, EachTable> each = {};  // by set-knob name; absent: all the knob's values
};
nlohmann::json to_json(const BackendInfo& info);
BackendInfo backend_info_from_json(const nlohmann::json& j);
// One knob of a worker's or build tool's description (docs/PROTOCOL.md): the one reader of the
// form, so that a knob attribute added there is read the same way everywhere.
Knob knob_from_json(const nlohmann::json& k);

// The `NAME=value` entries the knobs of the resolved `env` ask the worker's environment for, in
// knob order (empty for most variants).
std::vector<std::string> worker_environment(const BackendInfo& info, const Environment& env);

// Fills in defaults and checks every knob against `info`; throws Error listing valid values.
// A `threads` value above max_threads() is refused too, with the valid range.
Environment resolve_environment(const Environment& env, const BackendInfo& info);

// The most threads a variant may ask for: kThreadsPerCore times the cores this process may run on
// (its CPU affinity). Beyond that an engine gains nothing, and some grow a thread pool (and its
// memory) until the timeout instead of failing (docs/ENVIRONMENTS.md).
constexpr int kThreadsPerCore = 4;
int usable_cores();
int max_threads();

// The members `knob=each` stands for in `env` by the engine's own `each` table (the row of env's
// value of the table's `by` knob, or of its default): nullopt when there is no table for the
// knob or no row for that value.
std::optional<std::vector<std::string>> each_members(const BackendInfo& info,
                                                     const std::string& knob,
                                                     const Environment& env);

// Throws Error when the input shape a model declares does not fit the spec's, naming both: "model
// input 'input' has shape [1,3,224,224] but the spec says [1,3,300,300] (NCHW)". The ranks must
// agree and every dimension must be equal, or left open by the model (a negative dimension is
// dynamic and takes any size). Every engine calls it at load with the shape read its own way, so
// a variant whose spec does not match its model is one load failure instead of wrong results.
void check_input_shape(const std::string& input_name, const std::vector<int64_t>& model_shape,
                       const InputSpec& spec);

// The `batch` knob of an environment: how many images one engine call runs (1 when absent, as it
// is for an engine that does not declare it, or at its default).
size_t batch_size(const Environment& env);

// The `batch` knob as engines that can batch declare it.
Knob batch_knob();

struct LoadRequest {
  std::filesystem::path artifact;
  Environment env;  // resolved: every knob present
  InputSpec input;
  OutputSpec output;
};

// One intermediate tensor of a run, for localisation (docs/LOCALIZE.md).
struct CapturedTensor {
  std::string name;            // the graph's tensor name (the ONNX value name where there is one)
  std::string op;              // the operator that produced it ("Conv", ...), "" when unknown
  std::vector<int64_t> shape;  // as the engine holds it (NHWC engines report NHWC)
  std::vector<double> values;  // float64, so that the reference executor loses nothing
};

// A loaded model. Only run() is timed; it returns when the device has finished.
class Session {
 public:
  virtual ~Session() = default;
  // Runs the bound input once more, untimed, and returns every intermediate tensor the engine can
  // expose, in execution order, the graph's output last. Engines that cannot capture throw
  // Unsupported (the default).
  virtual std::vector<CapturedTensor> capture() {
    throw Unsupported("this engine cannot capture intermediate tensors");
  }
  // How capture() sees the tensors, recorded with every number it produces (e.g. "onnxruntime:
  // every node output made a graph output, graph optimisation disabled"); "" when it cannot.
  virtual std::string capture_mode() const { return ""; }
  // Binds the input for the following run() calls (not timed). Throws Error on a shape mismatch.
  virtual void set_input(const Tensor& input) = 0;
  virtual void run() = 0;
  // Flattened output of the last run() (not timed); for a batch, the images' outputs one after
  // another.
  virtual std::vector<float> output() = 0;
  // True for an engine prepared for exactly the variant's batch size (`batch` knob), which the
  // worker then gives a short last batch padded to that size; false for one that runs any batch
  // up to it (docs/PROTOCOL.md, "Batches").
  virtual bool fixed_batch() const { return false; }
  // What the engine reports it actually runs on after the load, by name ("opencl_device",
  // "cpu_capability", "inference_precision", ...): the worker sends it in its `loaded` reply, which
  // the campaign stores with the variant. A session that finds the engine ignoring a knob (a cap
  // that did not take, a device it fell back from) throws Error at load or at its first run
  // instead (docs/ENVIRONMENTS.md, "Hardware").
  virtual std::map<std::string, std::string> hardware() const { return {}; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo describe() const = 0;
  // Loads (and for engines that compile, compiles) an artifact. Throws Error with the engine's
  // message when the artifact is missing, malformed or does not match the spec.
  virtual std::unique_ptr<Session> load(const LoadRequest& request) = 0;
  // Checks, before the timed load, what takes work of its own to check (LibTorch runs the spec's
  // input shape in a child process: a file without a declared shape). Throws Error like load().
  // Not part of the load time, which stays comparable across engines.
  virtual void check(const LoadRequest& request) { (void)request; }
};

}  // namespace deltann
