// LibTorch: runs a TorchScript module (torch::jit::load) through the C++ JIT. `opt` chooses how
// much of TorchScript's inference preparation runs at load: none, torch::jit::freeze, or
// torch::jit::optimize_for_inference (docs/LIBTORCH.md says what each pass does).
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <filesystem>
#include <string>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "libtorch_output.h"
#include "run/worker.h"

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

torch::jit::Module prepare(torch::jit::Module module, const std::string& opt) {
  // Freezing refuses modules in training mode, and a model saved in training mode would run its
  // dropout and batch-norm statistics updates: every level runs the module in eval mode.
  module.eval();
  if (opt == "freeze") return torch::jit::freeze(module);
  if (opt == "optimize_for_inference") return torch::jit::optimize_for_inference(module);
  return module;
}

class LibTorchSession final : public Session {
 public:
  explicit LibTorchSession(const LoadRequest& request)
      : cuda_(request.env.knob("device") == "cuda"),
        device_(cuda_ ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU)),
        spec_shape_(request.input.shape) {
    at::set_num_threads(std::stoi(request.env.knob("threads")));
    torch::jit::Module module = torch::jit::load(request.artifact.string(), device_);
    // Parameters must be on the device before freezing: freezing turns them into constants of
    // the graph where they are.
    module.to(device_);
    module_ = prepare(std::move(module), request.env.knob("opt"));
  }

  // Binding copies the tensor to the device, outside the clock. TorchScript modules do not
  // record the input shape they expect, so the spec's shape is checked against the tensor here
  // and the engine's own error is reported with both shapes at the first run.
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
      // The first forward is where a model that wants another input shape fails.
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
  torch::jit::Module module_;
  at::Tensor input_;
  c10::IValue result_;
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
                  {"threads", {}, "1", "intra-op threads (at::set_num_threads; inter-op 1)"}};
    return info;
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
  return deltann::worker_main(
      argc, argv, [] { return std::make_unique<deltann::libtorch::LibTorchBackend>(); });
}
