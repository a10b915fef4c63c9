// LibTorch: runs a TorchScript module (torch::jit::load) through the C++ JIT. `opt` chooses how
// much of TorchScript's inference preparation runs at load: none, torch::jit::freeze, or
// torch::jit::optimize_for_inference (docs/LIBTORCH.md says what each pass does). capture()
// runs a copy of the prepared forward graph that also returns every tensor it computes
// (docs/LOCALIZE.md, "Capture per engine").
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <sys/prctl.h>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/cpu_isa.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "libtorch_output.h"
#include "run/worker.h"
#include "run/worker_process.h"

namespace deltann::libtorch {
namespace {

// The concise form of a LibTorch error: a c10::Error's what() appends a C++ backtrace, and an
// error raised inside the TorchScript interpreter starts with the model's Python traceback; neither
// says more to a user than the final "SomethingError: reason" and both would fill the 4 KiB of log
// the campaign keeps.
std::string message_of(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e))
    return c10_error->what_without_backtrace();
  const std::string text = e.what();
  if (text.find("Traceback of TorchScript") == std::string::npos) return text;
  // The reason is the last line of the form "<Name>Error: ...", to the end of the text.
  size_t reason = std::string::npos;
  for (size_t line = 0; line < text.size();) {
    const size_t colon = text.find(": ", line);
    const size_t end = text.find('\n', line);
    if (colon != std::string::npos && colon < end) {
      const std::string name = text.substr(line, colon - line);
      if (name.size() > 5 && name.ends_with("Error") && name.find(' ') == std::string::npos)
        reason = line;
    }
    if (end == std::string::npos) break;
    line = end + 1;
  }
  if (reason == std::string::npos) return text;
  std::string tail = text.substr(reason);
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return tail;
}

// What the captured tensors are, per `opt`: the preparation decides which tensors exist at all.
std::string capture_mode_for(const std::string& opt) {
  std::string graph = "the TorchScript forward graph as loaded (inlined)";
  if (opt == "freeze")
    graph =
        "the TorchScript forward graph after torch::jit::freeze (tensors it folded away, such "
        "as a batch norm's, do not exist)";
  else if (opt == "optimize_for_inference")
    graph =
        "the TorchScript forward graph after torch::jit::optimize_for_inference (tensors its "
        "fusions and folds removed do not exist; MKLDNN tensors are read back as dense)";
  return "libtorch: every float tensor a node of " + graph +
         " computes, in node order; names are TorchScript value names (debugName), not ONNX "
         "names, op is the node kind (aten::conv2d); shapes as LibTorch holds them (NCHW). A copy "
         "of that graph that also returns a clone of each tensor is run once by the TorchScript "
         "interpreter; the timed module is untouched. Constants, attributes, prim:: bookkeeping "
         "and tensors inside If/Loop bodies are not captured";
}

// Node kinds whose tensor outputs are not computations: constants, parameters read from the
// module, and packing/unpacking of tuples and lists whose elements are captured where computed.
// Everything else is, prim:: kinds included: optimize_for_inference's prim::mkldnn_convolution
// and prim::MKLDNNHardSwish are the model's real kernels.
bool computes(const torch::jit::Node* node) {
  static const std::set<std::string> bookkeeping = {
      "prim::Constant",       "prim::ConstantMKLDNNTensor", "prim::GetAttr",
      "prim::TupleConstruct", "prim::TupleUnpack",          "prim::TupleIndex",
      "prim::ListConstruct",  "prim::DictConstruct",        "prim::unchecked_cast",
      "prim::Uninitialized"};
  const std::string kind = node->kind().toQualString();
  // A list unpacked straight from an operator (aten::split, aten::chunk) holds that operator's
  // results, which are captured nowhere else; one built by prim::ListConstruct does not.
  if (kind == "prim::ListUnpack") return node->input(0)->node()->kind() != c10::prim::ListConstruct;
  return !bookkeeping.contains(kind);
}

bool is_tensor(const torch::jit::Value* value) {
  return value->type()->cast<c10::TensorType>() != nullptr;
}

// `deltann-worker-libtorch --try-shape JSON` (the load's child process, see try_spec_shape):
// JSON holds `artifact`, `device`, `threads` and `shape`.
constexpr const char* kTryShape = "--try-shape";

// The child's side: loads the module, runs it once on zeros of the shape and prints one JSON
// line, {"values": N} with the length of the output it would report, {"error": reason}, or
// {"unloadable": reason} when the file is no TorchScript it can load.
int try_shape_main(const std::string& request_text) {
  // The worker may be killed (the campaign's timeout) while this runs: go with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  nlohmann::json reply;
  try {
    const auto request = nlohmann::json::parse(request_text);
    at::set_num_interop_threads(1);
    at::set_num_threads(request.at("threads").get<int>());
    const torch::Device device = request.at("device").get<std::string>() == "cuda"
                                     ? torch::Device(torch::kCUDA, 0)
                                     : torch::Device(torch::kCPU);
    torch::jit::Module module;
    try {
      module = torch::jit::load(request.at("artifact").get<std::string>(), device);
    } catch (const std::exception& e) {
      // Not a question of shape: the load itself says why, with its own message.
      std::cout << nlohmann::json({{"unloadable", message_of(e)}})
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << '\n'
                << std::flush;
      return 0;
    }
    module.to(device);
    module.eval();
    c10::InferenceMode inference;
    const auto zeros = torch::zeros(request.at("shape").get<std::vector<int64_t>>(),
                                    torch::TensorOptions().device(device));
    reply = {{"values", output_tensor(module.forward({zeros})).numel()}};
  } catch (const std::exception& e) {
    reply = {{"error", message_of(e)}};
  }
  std::cout << reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'
            << std::flush;
  return 0;
}

// `isa` levels: the value of ATEN_CPU_CAPABILITY that selects ATen's kernels of that level (read
// once, when ATen first dispatches), and how at::show_config() then names the capability in use.
struct IsaLevel {
  std::string level, variable, reported;
};

const std::vector<IsaLevel>& isa_levels() {
  static const std::vector<IsaLevel> levels = {
      {"avx512", "avx512", "AVX512"}, {"avx2", "avx2", "AVX2"}, {"baseline", "default", "NO AVX"}};
  return levels;
}

// The CPU capability ATen dispatches to, as at::show_config() reports it ("AVX2"); its
// get_cpu_capability() is not exported from libtorch_cpu.
std::string cpu_capability() {
  static const std::string marker = "CPU capability usage: ";
  const std::string config = at::show_config();
  const size_t at = config.find(marker);
  if (at == std::string::npos) return "";
  const size_t begin = at + marker.size();
  return config.substr(begin, config.find('\n', begin) - begin);
}

// Throws when ATen does not dispatch to the asked level: the worker was started without
// ATEN_CPU_CAPABILITY, or LibTorch ignored it (a level it was not built with).
void check_isa(const std::string& level) {
  if (level == "native") return;
  for (const auto& known : isa_levels()) {
    if (known.level != level) continue;
    const std::string used = cpu_capability();
    if (used != known.reported)
      throw Error("isa=" + level + " asked, but LibTorch dispatches to CPU capability '" + used +
                  "' instead of '" + known.reported + "'; ATEN_CPU_CAPABILITY=" + known.variable +
                  " must be in the worker's environment when it starts");
    return;
  }
  throw Error("LibTorch has no isa level '" + level + "'");
}

torch::jit::Module prepare(torch::jit::Module module, const std::string& opt) {
  // Freezing refuses modules in training mode, and a model saved in training mode would run its
  // dropout and batch-norm statistics updates: every level runs the module in eval mode.
  module.eval();
  if (opt == "freeze") return torch::jit::freeze(module);
  if (opt == "optimize_for_inference") return torch::jit::optimize_for_inference(module);
  return module;
}

// TorchScript declares no input shape (a traced module's sizes are gone once it is saved and
// loaded again), so the spec's shape is tried instead: a child process (this executable with
// --try-shape) loads the module and runs it once on zeros of that shape. A model that cannot
// take the shape, or then returns an output of another length than the spec's, fails the load
// rather than every image. A model that takes any size (global pooling before the classifier)
// passes: nothing in the file says which size it was made for. The trial runs in its own
// process so that this one stays cold: run here, even on a separate copy of the module, it
// warmed the allocator, thread pool and kernels and cut the timed first inference (the demo
// model at optimize_for_inference: from about 130 to 45 ms).
void try_spec_shape(const LoadRequest& request) {
  const nlohmann::json trial = {{"artifact", request.artifact.string()},
                                {"device", request.env.knob("device") == "cuda" ? "cuda" : "cpu"},
                                {"threads", std::stoi(request.env.knob("threads"))},
                                {"shape", request.input.shape}};
  WorkerProcess child("/proc/self/exe", {kTryShape, trial.dump()});
  // The campaign's timeout ends this worker, and with it the child, long before this one.
  constexpr double kTrialTimeoutS = 3600;
  const auto reply = child.receive(kTrialTimeoutS);
  const WorkerExit exit = child.finish();
  if (!reply || !reply->is_object())
    throw Error("trying the spec's input shape " + shape_text(request.input.shape) +
                " in a child process failed (" + std::string(to_string(exit.symptom)) + ", " +
                exit.detail + "); its log: " + child.log_tail());
  if (reply->contains("unloadable")) return;  // the timed load reports it as it always does
  if (reply->contains("error"))
    throw Error(
        "the model does not take the spec's input shape " + shape_text(request.input.shape) +
        ": forward() on zeros of that shape failed: " + reply->at("error").get<std::string>());
  if (request.input.raw_tensor) return;  // its output has no classes to count
  const int64_t values = reply->at("values").get<int64_t>();
  const int64_t expected = request.output.classes + request.output.label_offset;
  if (values != expected)
    throw Error("on an input of the spec's shape " + shape_text(request.input.shape) +
                " the model returns " + std::to_string(values) + " values, but the spec says " +
                std::to_string(request.output.classes) + " classes + label offset " +
                std::to_string(request.output.label_offset) + " = " + std::to_string(expected));
}

class LibTorchSession final : public Session {
 public:
  explicit LibTorchSession(const LoadRequest& request)
      : cuda_(request.env.knob("device") == "cuda"),
        device_(cuda_ ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU)),
        spec_shape_(request.input.shape),
        opt_(request.env.knob("opt")) {
    if (!cuda_) check_isa(request.env.knob("isa", "native"));
    at::set_num_threads(std::stoi(request.env.knob("threads")));
    torch::jit::Module module = torch::jit::load(request.artifact.string(), device_);
    // Parameters must be on the device before freezing: freezing turns them into constants of
    // the graph where they are.
    module.to(device_);
    module_ = prepare(std::move(module), opt_);
  }

  std::vector<CapturedTensor> capture() override {
    if (!input_.defined()) throw Error("capture before an input was bound");
    try {
      return capture_tensors();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("LibTorch capture failed: " + message_of(e));
    }
  }

  std::string capture_mode() const override { return capture_mode_for(opt_); }

  std::map<std::string, std::string> hardware() const override {
    return {{"cpu_capability", cpu_capability()}};
  }

  // Binding copies the tensor to the device, outside the clock.
  void set_input(const Tensor& input) override {
    if (input.shape != spec_shape_)
      throw Error("input tensor has shape " + shape_text(input.shape) + " but the spec says " +
                  shape_text(spec_shape_));
    const at::Tensor host =
        torch::from_blob(const_cast<float*>(input.data.data()), input.shape, torch::kFloat32);
    input_ = host.to(device_, /*non_blocking=*/false, /*copy=*/true);
    if (cuda_) torch::cuda::synchronize();
  }

  // forward() returns when the CPU kernels are done; CUDA kernels are queued, so the device is
  // synchronised inside the timed call. torch::cuda::synchronize is part of every LibTorch build
  // (it is dispatched at run time), so a CPU-only LibTorch compiles this too.
  void run() override {
    if (!input_.defined()) throw Error("run before an input was bound");
    try {
      c10::InferenceMode inference;
      result_ = module_.forward({input_});
      if (cuda_) torch::cuda::synchronize();
    } catch (const std::exception& e) {
      // Errors inside TorchScript code arrive as torch::jit::JITException, others as c10::Error.
      throw Error("LibTorch forward() failed on an input of shape " + shape_text(spec_shape_) +
                  " (the spec's shape): " + message_of(e));
    }
  }

  std::vector<float> output() override {
    if (result_.isNone()) throw Error("no output yet");
    try {
      return flatten_to_floats(output_tensor(result_));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("cannot read the model's output: " + message_of(e));
    }
  }

 private:
  bool cuda_;
  torch::Device device_;
  std::vector<int64_t> spec_shape_;
  // The capture graph, made at the first capture: what it returns after the forward's own
  // output(s), in the same order as `captured_` describes them.
  struct CapturePlan {
    std::shared_ptr<torch::jit::Graph> graph;
    std::unique_ptr<torch::jit::Code> code;
    size_t forward_outputs = 0;
    struct Entry {
      std::string name, op;
    };
    std::vector<Entry> captured;
    // Index in `captured` of the tensor the timed run reports (output_tensor's choice), if it is
    // a captured node output; otherwise it is appended under `output_name`.
    std::optional<size_t> output_index;
    std::string output_name = "output", output_op = "output";
  };

  // The tensor output_tensor() picks from what forward() returns, followed through the tuples
  // and lists the graph builds, so that the capture can name it.
  static torch::jit::Value* returned_tensor(torch::jit::Value* value) {
    while (!is_tensor(value)) {
      const auto kind = value->node()->kind();
      if ((kind != c10::prim::TupleConstruct && kind != c10::prim::ListConstruct) ||
          value->node()->inputs().empty())
        return nullptr;
      value = value->node()->input(0);
    }
    return value;
  }

  // Copies the forward graph the timed module runs (prepare() already froze or optimised it;
  // Inline is what the executor does with the method calls of an unfrozen module), clones every
  // computed tensor right after the node that makes it and returns the clones too. The clone is
  // needed because in-place operators (aten::relu_, aten::hardtanh_) would otherwise overwrite
  // the tensor that a captured conv output shares with them before it is read.
  CapturePlan plan_capture() const {
    CapturePlan plan;
    const auto& forward = torch::jit::toGraphFunction(module_.get_method("forward").function());
    plan.graph = forward.graph()->copy();
    torch::jit::Graph& graph = *plan.graph;
    torch::jit::Inline(graph);
    if (graph.inputs().size() != 2)
      throw Error("forward() takes " + std::to_string(graph.inputs().size() - 1) +
                  " inputs; the capture supports one");
    plan.forward_outputs = graph.outputs().size();
    torch::jit::Value* output =
        plan.forward_outputs == 1 ? returned_tensor(graph.outputs()[0]) : nullptr;

    std::vector<torch::jit::Value*> clones;
    std::vector<torch::jit::Node*> nodes(graph.nodes().begin(), graph.nodes().end());
    for (torch::jit::Node* node : nodes) {
      if (!computes(node)) continue;
      for (torch::jit::Value* value : node->outputs()) {
        if (!is_tensor(value)) continue;
        torch::jit::WithInsertPoint after(node->next());
        clones.push_back(graph.insert(c10::aten::clone, {value}));
        if (value == output) plan.output_index = plan.captured.size();
        plan.captured.push_back({value->debugName(), node->kind().toQualString()});
      }
    }
    if (output && !plan.output_index) {
      plan.output_name = output->debugName();
      plan.output_op = output->node()->kind().toQualString();
    }
    torch::jit::WithInsertPoint at_end(graph.block());
    graph.registerOutput(graph.insertNode(graph.createTuple(clones))->output());
    plan.code = std::make_unique<torch::jit::Code>(plan.graph, "deltann_capture");
    return plan;
  }

  // `tensor` as a CapturedTensor, or nothing for a type that is not a float (indices, masks).
  static std::optional<CapturedTensor> to_captured(at::Tensor tensor, std::string name,
                                                   std::string op) {
    if (!tensor.defined() || !tensor.is_floating_point()) return std::nullopt;
    if (tensor.is_mkldnn()) tensor = tensor.to_dense();
    if (tensor.layout() != c10::kStrided) return std::nullopt;
    const at::Tensor host = tensor.to(torch::kCPU, torch::kDouble).contiguous();
    const auto* data = host.data_ptr<double>();
    return CapturedTensor{std::move(name), std::move(op), host.sizes().vec(),
                          std::vector<double>(data, data + host.numel())};
  }

  std::vector<CapturedTensor> capture_tensors() {
    // Made on the first capture only: a campaign that never captures pays nothing for it.
    if (!plan_) plan_ = plan_capture();
    torch::jit::Stack stack{c10::IValue(module_._ivalue()), c10::IValue(input_)};
    // For the whole capture, reading back included: MKLDNN tensors (optimize_for_inference) can
    // only be made dense where autograd is off, and the timed run is under this mode too.
    c10::InferenceMode inference;
    torch::jit::InterpreterState(*plan_->code).run(stack);
    if (cuda_) torch::cuda::synchronize();
    if (stack.size() != plan_->forward_outputs + 1)
      throw Error("the capture graph returned " + std::to_string(stack.size()) + " values");
    const auto& values = stack.back().toTupleRef().elements();
    std::vector<CapturedTensor> tensors;
    std::optional<CapturedTensor> output;
    for (size_t i = 0; i < values.size(); ++i) {
      const auto& entry = plan_->captured[i];
      auto tensor = to_captured(values[i].toTensor(), entry.name, entry.op);
      if (!tensor) continue;
      // The reported output goes last, where localize and the tests look for it.
      if (plan_->output_index == i)
        output = std::move(tensor);
      else
        tensors.push_back(std::move(*tensor));
    }
    if (!output) {
      const c10::IValue result = plan_->forward_outputs == 1
                                     ? stack.front()
                                     : c10::ivalue::Tuple::create(std::vector<c10::IValue>(
                                           stack.begin(), stack.end() - 1));
      output = to_captured(output_tensor(result), plan_->output_name, plan_->output_op);
      if (!output) throw Error("the model's output is not a float tensor");
    }
    tensors.push_back(std::move(*output));
    return tensors;
  }

  std::string opt_;
  torch::jit::Module module_;
  at::Tensor input_;
  c10::IValue result_;
  std::optional<CapturePlan> plan_;
};

class LibTorchBackend final : public Backend {
 public:
  LibTorchBackend() {
    // Like the other engines, one inter-op thread: LibTorch allows setting it only before its
    // inter-op pool starts, so it is done once, before any work.
    at::set_num_interop_threads(1);
  }

  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "libtorch";
    info.version = TORCH_VERSION;
    info.description = "LibTorch (PyTorch C++), TorchScript modules through torch::jit";
    info.devices = {"cpu"};
    if (torch::cuda::is_available()) info.devices.push_back("cuda");
    info.formats = {"torchscript"};
    // `cuda` is always a valid value, so asking for it where no GPU is usable is a skipped variant
    // with the reason rather than a refused environment.
    info.knobs = {{"opt",
                   {"none", "freeze", "optimize_for_inference"},
                   "none",
                   "inference preparation at load: none, torch::jit::freeze, or "
                   "torch::jit::optimize_for_inference"},
                  {"device", {"cpu", "cuda"}, "cpu", "device of module and input"},
                  {"threads", {}, "1", "intra-op threads (at::set_num_threads; inter-op 1)"},
                  isa_knob({"avx512", "avx2", "baseline"}, isa_environment(),
                           "ATen's CPU kernels (ATEN_CPU_CAPABILITY); native: LibTorch's choice "
                           "for this CPU, baseline: no AVX")};
    return info;
  }

  static std::map<std::string, std::vector<std::string>> isa_environment() {
    std::map<std::string, std::vector<std::string>> environment;
    for (const auto& level : isa_levels())
      environment[level.level] = {"ATEN_CPU_CAPABILITY=" + level.variable};
    return environment;
  }

  void check(const LoadRequest& request) override {
    const std::string where = request.artifact.string() + ": ";
    if (!std::filesystem::is_regular_file(request.artifact)) throw Error(where + "no such file");
    try {
      try_spec_shape(request);
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
  }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    const std::string where = request.artifact.string() + ": ";
    // torch::jit::load's message for a missing file is only "open file failed".
    if (!std::filesystem::is_regular_file(request.artifact)) throw Error(where + "no such file");
    try {
      return std::make_unique<LibTorchSession>(request);
    } catch (const Error& e) {
      throw Error(where + e.what());
    } catch (const std::exception& e) {
      // c10::Error from the archive reader, or the TorchScript compiler's own exception types.
      throw Error(where + "LibTorch cannot load it as TorchScript: " + message_of(e));
    }
  }
};

}  // namespace
}  // namespace deltann::libtorch

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == deltann::libtorch::kTryShape)
    return deltann::libtorch::try_shape_main(argv[2]);
  return deltann::worker_main(
      argc, argv, [] { return std::make_unique<deltann::libtorch::LibTorchBackend>(); });
}
