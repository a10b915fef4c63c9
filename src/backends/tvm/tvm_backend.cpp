// Apache TVM (Relax VM), in-process through TVM's C++ runtime and FFI. The artifact is a Relax VM
// executable exported as a shared library (`tvm.compile(...).export_library(path)` in Python);
// this worker never starts Python. Headers and libraries come from the apache-tvm and
// apache-tvm-ffi wheels in the project venv (cmake/engines/tvm.cmake).
#include <dlfcn.h>
#include <elf.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "run/worker.h"

#ifndef DELTANN_TVM_VERSION
#define DELTANN_TVM_VERSION "unknown"
#endif
#ifndef DELTANN_TVM_LIB_DIR
#define DELTANN_TVM_LIB_DIR ""
#endif

namespace deltann::tvm_engine {
namespace {

namespace ffi = ::tvm::ffi;

// The VM's allocator kinds (tvm/runtime/memory/memory_manager.h): 1 naive, 2 pooled.
constexpr int kPooledAllocator = 2;

bool is_float32(const DLDataType& t) { return t.code == kDLFloat && t.bits == 32 && t.lanes == 1; }

constexpr const char* kCaptureMode =
    "tvm: tensors after TVM's fusion: one per kernel call, named by the kernel (e.g. "
    "fused_conv2d_add_clip, '#N' for its Nth call); not ONNX tensor names. Read by the Relax VM's "
    "instrument after each kernel on a second VM (the timed VM never has an instrument), so the "
    "captured run is the compiled, fused one and fusion-caused differences stay visible; tensors "
    "inside a fused kernel do not exist. VM builtins (reshape, allocation) are not captured; "
    "non-float outputs are skipped; the graph's output is last";

// The element types a captured tensor is converted from; others (indices, masks) are skipped.
bool is_capturable(const DLDataType& t) {
  return t.lanes == 1 && ((t.code == kDLFloat && (t.bits == 16 || t.bits == 32 || t.bits == 64)) ||
                          (t.code == kDLBfloat && t.bits == 16));
}

// IEEE binary16 to double, subnormals, infinities and NaN included.
double half_to_double(uint16_t h) {
  const int sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double value = 0;
  if (exponent == 0)
    value = std::ldexp(mantissa, -24);
  else if (exponent == 31)
    value = mantissa ? std::nan("") : INFINITY;
  else
    value = std::ldexp(mantissa + 1024, exponent - 25);
  return sign ? -value : value;
}

// Host float64 copy of a float tensor's values; widening loses nothing.
std::vector<double> widen(const std::vector<uint8_t>& raw, const DLDataType& t, int64_t count) {
  std::vector<double> values(static_cast<size_t>(count));
  for (size_t i = 0; i < values.size(); ++i) {
    if (t.code == kDLFloat && t.bits == 32) {
      float f;
      std::memcpy(&f, raw.data() + i * 4, 4);
      values[i] = f;
    } else if (t.code == kDLFloat && t.bits == 64) {
      std::memcpy(&values[i], raw.data() + i * 8, 8);
    } else {
      uint16_t h;
      std::memcpy(&h, raw.data() + i * 2, 2);
      // bfloat16 is the upper half of a float32.
      values[i] = t.code == kDLBfloat ? static_cast<double>(std::bit_cast<float>(uint32_t{h} << 16))
                                      : half_to_double(h);
    }
  }
  return values;
}

// A tensor argument or return value; None is not one (a Tensor reference may be null, so 'as'
// alone accepts None).
std::optional<ffi::Tensor> tensor_in(const ffi::AnyView& value) {
  if (value == nullptr) return std::nullopt;
  return value.as<ffi::Tensor>();
}

// The first tensor of what 'main' returned: a tensor, or the first tensor of a tuple.
ffi::Tensor first_tensor(const ffi::Any& result) {
  if (const auto tensor = result.as<ffi::Tensor>()) return *tensor;
  if (const auto tuple = result.try_cast<ffi::Array<ffi::Any>>()) {
    if (tuple->empty()) throw Error("'main' returned an empty tuple");
    const auto first = (*tuple)[0].try_cast<ffi::Tensor>();
    if (!first) throw Error("the first output of 'main' is not a tensor");
    return *first;
  }
  throw Error("'main' returned " + result.GetTypeKey() + ", not a tensor");
}

// The runtime's functions are reached through the FFI registry: the wheel's tvm/runtime headers
// are not self-contained (they include headers the wheel does not ship).
ffi::Function runtime_function(const char* name) {
  auto f = ffi::Function::GetGlobal(name);
  if (!f) throw Error(std::string("the TVM runtime has no function '") + name + "'");
  return *f;
}

// The CUDA device API lives in its own library; loading it registers "device_api.cuda" with the
// runtime. Returns false when it (or the CUDA driver it needs) is missing.
bool load_cuda_runtime() {
  static const bool loaded = [] {
    const std::string dir = DELTANN_TVM_LIB_DIR;
    const std::string path = (dir.empty() ? "" : dir + "/") + "libtvm_runtime_cuda.so";
    return dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr;
  }();
  return loaded;
}

bool cuda_available() {
  static const bool available = [] {
    if (!load_cuda_runtime()) return false;
    try {
      // Attribute 0 is kExist (tvm/runtime/device_api.h).
      const ffi::Any exists =
          runtime_function("runtime.GetDeviceAttr")(static_cast<int>(kDLCUDA), 0, 0);
      const auto value = exists.try_cast<int64_t>();
      return value.has_value() && *value != 0;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return available;
}

// The thread pool reads TVM_NUM_THREADS when it starts (at the first parallel kernel), so this
// must happen before the first run in the process. A later load asking for another count than
// the pool was started with is refused rather than silently ignored.
void set_threads(int threads) {
  static std::optional<int> pool_threads;
  if (pool_threads && *pool_threads != threads)
    throw Error("this worker's TVM thread pool already runs " + std::to_string(*pool_threads) +
                " threads; it cannot switch to " + std::to_string(threads));
  setenv("TVM_NUM_THREADS", std::to_string(threads).c_str(), 1);
  pool_threads = threads;
}

class TvmSession final : public Session {
 public:
  explicit TvmSession(const LoadRequest& request) {
    const std::string device = request.env.knob("device", "cpu");
    if (device == "cuda") {
      if (!cuda_available()) throw Error("device 'cuda' requested but no CUDA device is usable");
      device_ = DLDevice{kDLCUDA, 0};
    } else if (device == "cpu") {
      device_ = DLDevice{kDLCPU, 0};
    } else {
      throw Error("unknown device '" + device + "' (valid: cpu, cuda)");
    }
    int threads = 1;
    try {
      threads = std::stoi(request.env.knob("threads", "1"));
    } catch (const std::exception&) {
      threads = 0;
    }
    if (threads < 1) throw Error("threads must be a positive integer");
    set_threads(threads);

    library_ = ffi::Module::LoadFromFile(request.artifact.string());
    vm_ = make_vm();
    const auto main = (*vm_)->GetFunction("main");
    if (!main) throw Error("the VM executable has no function 'main'");
    main_ = *main;
    if (const auto arity = (*vm_)->GetFunction("_get_function_arity")) {
      const int64_t n = (*arity)("main").cast<int64_t>();
      if (n != 1)
        throw Error("'main' takes " + std::to_string(n) +
                    " parameters; deltann feeds exactly one input tensor");
    }

    copy_from_bytes_ = runtime_function("runtime.TVMTensorCopyFromBytes");
    copy_to_bytes_ = runtime_function("runtime.TVMTensorCopyToBytes");
    stream_sync_ = runtime_function("runtime.Device_StreamSync");
    shape_ = request.input.shape;
    input_ =
        runtime_function("runtime.TVMTensorAllocWithScope")(
            ffi::Shape(shape_), DLDataType{kDLFloat, 32, 1}, device_, ffi::Optional<ffi::String>())
            .cast<ffi::Tensor>();

    // The compiled code checks its input shape only when called, so one call on zeros now makes a
    // mismatch (or an output that is not float32) a load failure. This also warms the memory pool.
    const std::vector<float> zeros(static_cast<size_t>(element_count()), 0.0f);
    copy_from_bytes_(input_, static_cast<void*>(const_cast<float*>(zeros.data())),
                     static_cast<int64_t>(zeros.size() * sizeof(float)));
    try {
      call_main();
    } catch (const ffi::Error& e) {
      throw Error("'main' does not accept a float32 input of shape " + shape_text(shape_) +
                  " (the spec's): " + e.message());
    }
    const DLTensor& out = output_tensor();
    if (!is_float32(out.dtype)) throw Error("the model's output is not float32");
    output_.reset();
  }

  std::vector<CapturedTensor> capture() override {
    try {
      return capture_tensors();
    } catch (const ffi::Error& e) {
      throw Error("TVM: " + e.kind() + ": " + e.message());
    }
  }

  std::string capture_mode() const override { return kCaptureMode; }

  void set_input(const Tensor& input) override {
    if (input.shape != shape_)
      throw Error("input tensor has shape " + shape_text(input.shape) + " but the model takes " +
                  shape_text(shape_));
    try {
      copy_from_bytes_(input_, static_cast<void*>(const_cast<float*>(input.data.data())),
                       static_cast<int64_t>(input.data.size() * sizeof(float)));
    } catch (const ffi::Error& e) {
      throw Error("TVM: " + e.kind() + ": " + e.message());
    }
    if (device_.device_type != kDLCPU) synchronize();
  }

  void run() override {
    try {
      call_main();
    } catch (const ffi::Error& e) {
      throw Error("TVM: " + e.kind() + ": " + e.message());
    }
  }

  std::vector<float> output() override {
    if (!output_) throw Error("no output yet");
    const DLTensor& out = output_tensor();
    if (!is_float32(out.dtype)) throw Error("the model's output is not float32");
    int64_t count = 1;
    for (int i = 0; i < out.ndim; ++i) count *= out.shape[i];
    std::vector<float> host(static_cast<size_t>(count));
    try {
      copy_to_bytes_(output_holder_, static_cast<void*>(host.data()),
                     static_cast<int64_t>(host.size() * sizeof(float)));
    } catch (const ffi::Error& e) {
      throw Error("TVM: " + e.kind() + ": " + e.message());
    }
    return host;
  }

 private:
  int64_t element_count() const {
    int64_t n = 1;
    for (const int64_t d : shape_) n *= d;
    return n;
  }

  void call_main() {
    output_ = main_(input_);
    if (device_.device_type != kDLCPU) synchronize();
  }

  // A VM instance of the loaded executable, initialised for the session's device. Each call makes
  // a new instance, so the capture VM's instrument never touches the timed one.
  ffi::Module make_vm() {
    const auto load_executable = (*library_)->GetFunction("vm_load_executable");
    if (!load_executable) throw Error("it has no 'vm_load_executable': not a Relax VM executable");
    ffi::Module vm = (*load_executable)().cast<ffi::Module>();
    const auto init = vm->GetFunction("vm_initialization");
    if (!init) throw Error("the VM has no 'vm_initialization'");
    if (device_.device_type == kDLCPU) {
      (*init)(static_cast<int>(device_.device_type), device_.device_id, kPooledAllocator);
    } else {
      // The accelerator first, then the CPU as the host device (for shape functions and the like).
      (*init)(static_cast<int>(device_.device_type), device_.device_id, kPooledAllocator,
              static_cast<int>(kDLCPU), 0, kPooledAllocator);
    }
    return vm;
  }

  // What the instrument collects during one capture run. Shared with the instrument function,
  // which the capture VM keeps after the run.
  struct CaptureState {
    std::vector<CapturedTensor> tensors;
    std::map<std::string, int> calls;    // kernel symbol -> calls so far
    std::vector<const DLTensor*> fresh;  // tensors allocated since the last kernel call
    std::optional<std::string> error;    // the first failure inside the instrument
  };

  // Copies a kernel's output to the host as float64; returns false for a type it skips.
  bool copy_out(const ffi::Tensor& tensor, const std::string& name, const std::string& op,
                std::vector<CapturedTensor>& into) {
    const DLDataType dtype = tensor.dtype();
    if (!is_capturable(dtype) || !tensor.IsContiguous()) return false;
    const int64_t count = tensor.numel();
    std::vector<uint8_t> raw(static_cast<size_t>(count) * (dtype.bits / 8));
    copy_to_bytes_(tensor, static_cast<void*>(raw.data()), static_cast<int64_t>(raw.size()));
    const ffi::ShapeView shape = tensor.shape();
    into.push_back(CapturedTensor{name, op, std::vector<int64_t>(shape.begin(), shape.end()),
                                  widen(raw, dtype, count)});
    return true;
  }

  // Called by the VM before and after every call instruction with (func, symbol, before_run,
  // return value, args...). Kernels are destination-passing: they return nothing and write into
  // arguments that VM builtins allocated just before the call, so those arguments are the
  // outputs (the last argument when none was allocated here, e.g. a planned buffer).
  void instrument(CaptureState& state, ffi::PackedArgs args) {
    if (args.size() < 4 || args[2].cast<bool>()) return;
    const std::string symbol = args[1].cast<ffi::String>();
    if (symbol.rfind("vm.", 0) == 0) {
      // Only allocations make outputs; a view (vm.builtin.reshape) is some kernel's input.
      if (symbol.find("alloc_tensor") != std::string::npos)
        if (const auto tensor = tensor_in(args[3])) state.fresh.push_back(tensor->GetDLTensorPtr());
      return;
    }
    std::vector<ffi::Tensor> outputs;
    if (const auto tensor = tensor_in(args[3])) {
      outputs.push_back(*tensor);
    } else {
      for (int i = 4; i < args.size(); ++i) {
        const auto tensor = tensor_in(args[i]);
        if (tensor && std::find(state.fresh.begin(), state.fresh.end(), tensor->GetDLTensorPtr()) !=
                          state.fresh.end())
          outputs.push_back(*tensor);
      }
      if (outputs.empty() && args.size() > 4) {
        if (const auto last = tensor_in(args[args.size() - 1])) outputs.push_back(*last);
      }
    }
    state.fresh.clear();
    if (outputs.empty()) return;
    const int call = ++state.calls[symbol];
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::string name = symbol;
      if (call > 1) name += "#" + std::to_string(call);
      if (outputs.size() > 1) name += ":" + std::to_string(i);
      copy_out(outputs[i], name, symbol, state.tensors);
    }
  }

  std::vector<CapturedTensor> capture_tensors() {
    // Made on the first capture only: a campaign that never captures pays nothing for it.
    if (!capture_vm_) {
      capture_vm_ = make_vm();
      const auto main = (*capture_vm_)->GetFunction("main");
      if (!main) throw Error("the VM executable has no function 'main'");
      capture_main_ = *main;
      const auto set = (*capture_vm_)->GetFunction("set_instrument");
      if (!set) throw Error("this TVM's VM has no 'set_instrument'; it cannot capture");
      set_instrument_ = *set;
    }
    auto state = std::make_shared<CaptureState>();
    set_instrument_(ffi::Function::FromPacked([this, state](ffi::PackedArgs args, ffi::Any* rv) {
      // 0 is VMInstrumentReturnKind::kNoOp: run the call as usual.
      *rv = 0;
      if (state->error) return;
      try {
        instrument(*state, args);
      } catch (const ffi::Error& e) {
        state->error = e.kind() + ": " + e.message();
      } catch (const std::exception& e) {
        state->error = e.what();
      }
    }));
    const ffi::Any result = capture_main_(input_);
    if (device_.device_type != kDLCPU) synchronize();
    if (state->error) throw Error("TVM capture: " + *state->error);
    // The graph's output comes last. It usually is the last kernel's output; when 'main' ends
    // in a builtin (a reshape) or returns an input-aliasing view, it is added as 'output'.
    std::vector<CapturedTensor> output;
    if (!copy_out(first_tensor(result), "output", "output", output))
      throw Error("the model's output is not a float tensor");
    auto& tensors = state->tensors;
    // Compared bit for bit: NaN outputs must not make the same tensor look different.
    const auto same_as_output = [&](const CapturedTensor& t) {
      return t.shape == output[0].shape && t.values.size() == output[0].values.size() &&
             std::memcmp(t.values.data(), output[0].values.data(),
                         t.values.size() * sizeof(double)) == 0;
    };
    if (tensors.empty() || !same_as_output(tensors.back())) tensors.push_back(std::move(output[0]));
    return std::move(tensors);
  }

  // Device_StreamSync takes the stream as an integer handle; 0 is the default stream.
  void synchronize() { stream_sync_(device_, int64_t{0}); }

  // The output of the last run: a tensor, or the first tensor of a tuple of outputs.
  const DLTensor& output_tensor() {
    output_holder_ = first_tensor(*output_);
    return *output_holder_.GetDLTensorPtr();
  }

  DLDevice device_{kDLCPU, 0};
  std::optional<ffi::Module> library_, vm_, capture_vm_;
  ffi::Function main_, capture_main_, set_instrument_;
  std::vector<int64_t> shape_;
  ffi::Tensor input_;
  ffi::Function copy_from_bytes_, copy_to_bytes_, stream_sync_;
  std::optional<ffi::Any> output_;
  ffi::Tensor output_holder_;
};

// dlopen maps a shared library without checking that the file holds what its headers promise: a
// truncated library faults (SIGBUS) on the first page past its end instead of failing. So the ELF
// headers are read first, and a file whose segments or section table reach past its end is refused.
void check_complete_elf(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open it");
  const auto size = static_cast<uint64_t>(std::filesystem::file_size(path));
  Elf64_Ehdr header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof header) ||
      std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64)
    throw Error(path.string() + ": not a 64-bit ELF shared library");
  const auto reaches = [&](uint64_t offset, uint64_t length, const char* what) {
    if (offset > size || length > size - offset)
      throw Error(path.string() + ": truncated shared library: its " + what + " end at byte " +
                  std::to_string(offset + length) + " of a " + std::to_string(size) + "-byte file");
  };
  reaches(header.e_phoff, uint64_t{header.e_phnum} * header.e_phentsize, "program headers");
  reaches(header.e_shoff, uint64_t{header.e_shnum} * header.e_shentsize, "section headers");
  for (int i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment{};
    in.seekg(static_cast<std::streamoff>(header.e_phoff + uint64_t(i) * header.e_phentsize));
    if (!in.read(reinterpret_cast<char*>(&segment), sizeof segment))
      throw Error(path.string() + ": cannot read program header " + std::to_string(i));
    if (segment.p_type == PT_LOAD) reaches(segment.p_offset, segment.p_filesz, "segments");
  }
}

class TvmBackend final : public Backend {
 public:
  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "tvm";
    info.version = DELTANN_TVM_VERSION;
    info.description = "Apache TVM Relax VM, running an executable exported as a shared library";
    info.devices = {"cpu"};
    if (cuda_available()) info.devices.push_back("cuda");
    info.formats = {"tvm-so"};
    info.knobs = {
        // The build-time options are applied by the compile tool; the list may grow there.
        {"opt", {"0", "1", "2", "3", "4"}, "3", "optimisation level the artifact was built at"},
        {"device", info.devices, "cpu", "device the VM runs on"},
        {"threads", {}, "1", "TVM thread pool size (TVM_NUM_THREADS)"}};
    return info;
  }

  void check(const LoadRequest& request) override { check_complete_elf(request.artifact); }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    try {
      return std::make_unique<TvmSession>(request);
    } catch (const ffi::Error& e) {
      throw Error(request.artifact.string() + ": TVM cannot load it: " + e.kind() + ": " +
                  e.message());
    } catch (const Error& e) {
      throw Error(request.artifact.string() + ": " + e.what());
    }
  }
};

}  // namespace
}  // namespace deltann::tvm_engine

int main(int argc, char** argv) {
  return deltann::worker_main(argc, argv,
                              [] { return std::make_unique<deltann::tvm_engine::TvmBackend>(); });
}
