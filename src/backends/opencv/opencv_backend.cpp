// OpenCV DNN (Debian's OpenCV), reading ONNX. `opt` switches layer fusion; `isa` caps OpenCV's
// CPU dispatcher (OPENCV_CPU_DISABLE); OpenCL targets are offered only where OpenCL lists a device.
// The worker checks that OpenCV runs as asked: the cap at load, the DNN target after the first
// forward, where OpenCV 4.6 falls back from OpenCL to the CPU with no more than a log line.
#include <opencv2/core.hpp>
#include <opencv2/core/ocl.hpp>
#include <opencv2/dnn.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "core/onnx_model.h"
#include "deltann/backend.h"
#include "deltann/cpu_isa.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "deltann/text.h"
#include "run/worker.h"

namespace deltann::opencv {
namespace {

// What the worker needs from the ONNX graph that OpenCV 4.6 does not keep, read with ONNX's
// protobuf classes:
// - the declared input shapes: OpenCV's net reshapes itself to whatever blob it is given, so a
//   300x300 tensor runs through a 224x224 model without a word;
// - node names: OpenCV names a layer imported from ONNX "onnx_node!<node name>", or, for a node
//   without a name, "onnx_node_output_<i>!<output name>". Other engines name tensors by ONNX
//   value name, so capture reports the node's first output (a layer's output 0) instead.
class OnnxGraph {
 public:
  explicit OnnxGraph(const std::filesystem::path& model) {
    // OpenCV has read the file already, so a failure here is rare.
    onnx::ModelProto proto;
    try {
      proto = load_onnx_model(model);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + ": cannot read the ONNX graph to check its input shape");
    }
    const auto& graph = proto.graph();
    for (const auto& node : graph.node())
      for (const auto& output : node.output())
        if (!node.name().empty() && !output.empty()) {
          first_output_.emplace(node.name(), output);
          break;
        }
    // Graph inputs that an initializer feeds are weights (older exporters list them), not inputs.
    std::set<std::string> weights;
    for (const auto& init : graph.initializer()) weights.insert(init.name());
    for (const auto& input : graph.input()) {
      if (weights.count(input.name())) continue;
      std::optional<std::vector<int64_t>> shape;
      const auto& type = input.type().tensor_type();
      if (type.has_shape()) {
        shape.emplace();
        // A symbolic or absent size is dynamic (-1): any size fits it.
        for (const auto& dim : type.shape().dim())
          shape->push_back(dim.has_dim_value() && dim.dim_value() > 0 ? dim.dim_value() : -1);
      }
      inputs_.emplace_back(input.name(), std::move(shape));
    }
  }

  // Checks the input the spec names (the first when the spec names none) against the spec's
  // shape. A model that declares no shape for it accepts any.
  void check_input(const InputSpec& spec) const {
    if (inputs_.empty()) throw Error("model has no input");
    const auto chosen = spec.name.empty()
                            ? inputs_.begin()
                            : std::find_if(inputs_.begin(), inputs_.end(), [&](const auto& input) {
                                return input.first == spec.name;
                              });
    if (chosen == inputs_.end()) {
      std::string all;
      for (const auto& [name, shape] : inputs_) all += (all.empty() ? "" : ", ") + name;
      throw Error("model has no input named '" + spec.name + "'; it has: " + all);
    }
    if (chosen->second) check_input_shape(chosen->first, *chosen->second, spec);
  }

  std::string tensor_name(const std::string& layer) const {
    static const std::string node = "onnx_node!", output = "onnx_node_output_";
    if (layer.rfind(node, 0) == 0) {
      const auto found = first_output_.find(layer.substr(node.size()));
      return found != first_output_.end() ? found->second : layer;
    }
    if (layer.rfind(output, 0) == 0) {
      const auto bang = layer.find('!');
      if (bang != std::string::npos) return layer.substr(bang + 1);
    }
    return layer;
  }

  bool mapped() const { return !first_output_.empty(); }

 private:
  std::map<std::string, std::string> first_output_;
  std::vector<std::pair<std::string, std::optional<std::vector<int64_t>>>> inputs_;
};

// `isa` caps: the dispatched CPU features OpenCV must not use, by the names OPENCV_CPU_DISABLE
// takes, and the feature ids that checkHardwareSupport() must then report off. OpenCV keeps the
// AVX-512 group (AVX512-SKX, which its kernels dispatch on) apart from its members, so both go.
struct IsaCap {
  std::string level;
  std::vector<std::string> names;
  std::vector<std::pair<int, std::string>> off;
};

const std::vector<IsaCap>& isa_caps() {
  static const std::string avx512 =
      "AVX512F,AVX512CD,AVX512BW,AVX512DQ,AVX512VL,AVX512-SKX,AVX512-COMMON,AVX512-CNL,"
      "AVX512-CLX,AVX512-ICL,AVX512VBMI,AVX512IFMA,AVX512VNNI,AVX512BITALG,AVX512VPOPCNTDQ,"
      "AVX512VBMI2";
  static const std::vector<std::pair<int, std::string>> off512 = {
      {CV_CPU_AVX_512F, "AVX512F"}, {CV_CPU_AVX512_SKX, "AVX512-SKX"}};
  static const std::vector<std::pair<int, std::string>> off2 = {{CV_CPU_AVX2, "AVX2"},
                                                                {CV_CPU_FMA3, "FMA3"}};
  static const std::vector<std::pair<int, std::string>> off1 = {{CV_CPU_AVX, "AVX"},
                                                                {CV_CPU_FP16, "FP16"}};
  auto join = [](std::vector<std::pair<int, std::string>> a,
                 const std::vector<std::pair<int, std::string>>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  static const std::vector<IsaCap> caps = {
      {"avx2", {avx512}, off512},
      {"avx", {avx512, "AVX2,FMA3"}, join(off512, off2)},
      {"sse4_2", {avx512, "AVX2,FMA3,AVX,FP16"}, join(join(off512, off2), off1)}};
  return caps;
}

// Throws when OpenCV's dispatcher still has a feature above the cap: the worker was started
// without OPENCV_CPU_DISABLE (or OpenCV ignored it), so it would not run as asked.
void check_isa(const std::string& level) {
  if (level == "native") return;
  for (const auto& cap : isa_caps()) {
    if (cap.level != level) continue;
    std::vector<std::string> still_on;
    for (const auto& [id, name] : cap.off)
      if (cv::checkHardwareSupport(id)) still_on.push_back(name);
    if (!still_on.empty())
      throw Error("isa=" + level + " asked, but OpenCV's CPU dispatcher still uses " +
                  joined(still_on, ", ") + " (its features: " + cv::getCPUFeaturesLine() +
                  "); OPENCV_CPU_DISABLE must be in the worker's environment when it starts");
    return;
  }
  throw Error("OpenCV has no isa cap '" + level + "'");
}

// The DNN target of a `device` value.
int dnn_target(const std::string& device) {
  if (device == "opencl") return cv::dnn::DNN_TARGET_OPENCL;
  if (device == "opencl_fp16") return cv::dnn::DNN_TARGET_OPENCL_FP16;
  return cv::dnn::DNN_TARGET_CPU;
}

std::string target_name(int target) {
  switch (target) {
    case cv::dnn::DNN_TARGET_CPU:
      return "cpu";
    case cv::dnn::DNN_TARGET_OPENCL:
      return "opencl";
    case cv::dnn::DNN_TARGET_OPENCL_FP16:
      return "opencl_fp16";
    default:
      return "target " + std::to_string(target);
  }
}

// The OpenCL device OpenCV uses, as its driver names it: platform, device, vendor, versions.
std::map<std::string, std::string> opencl_device_info() {
  const cv::ocl::Device& device = cv::ocl::Device::getDefault();
  std::map<std::string, std::string> info = {
      {"opencl_device", device.name()},
      {"opencl_device_version", device.version()},
      {"opencl_driver_version", device.driverVersion()},
      {"opencl_vendor", device.vendorName()},
      {"opencl_fp16", device.isExtensionSupported("cl_khr_fp16") ? "yes" : "no"}};
  std::vector<cv::ocl::PlatformInfo> platforms;
  cv::ocl::getPlatfomsInfo(platforms);
  for (const auto& platform : platforms)
    for (int d = 0; d < platform.deviceNumber(); ++d) {
      cv::ocl::Device candidate;
      platform.getDevice(candidate, d);
      if (candidate.name() == device.name())
        info["opencl_platform"] = platform.name() + " (" + platform.version() + ")";
    }
  return info;
}

class OpenCvSession final : public Session {
 public:
  explicit OpenCvSession(const LoadRequest& request)
      : output_name_(request.output.name),
        fusion_(request.env.knob("opt")),
        isa_(request.env.knob("isa", "native")),
        target_(dnn_target(request.env.knob("device"))),
        spec_shape_(request.input.shape),
        batch_(static_cast<int64_t>(batch_size(request.env))) {
    net_ = cv::dnn::readNetFromONNX(request.artifact.string());
    if (net_.empty()) throw Error(request.artifact.string() + ": OpenCV DNN read an empty network");
    graph_.emplace(request.artifact);
    graph_->check_input(request.input);
    check_isa(isa_);
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    if (target_ != cv::dnn::DNN_TARGET_CPU && !cv::ocl::useOpenCL())
      throw Error("device=" + request.env.knob("device") +
                  " asked, but OpenCV finds no usable OpenCL device here");
    net_.setPreferableTarget(target_);
    net_.enableFusion(request.env.knob("opt") == "on");
    cv::setNumThreads(std::stoi(request.env.knob("threads")));
    input_name_ = request.input.name;
  }

  // OpenCV would run a blob of any size; the load checked the spec's shape against the model's.
  // Only the batch may differ from it: up to the variant's `batch` images, of the spec's shape.
  void set_input(const Tensor& input) override {
    const bool batch_of_spec =
        input.shape.size() == spec_shape_.size() && !input.shape.empty() &&
        input.shape.front() >= 1 && input.shape.front() <= batch_ &&
        std::equal(input.shape.begin() + 1, input.shape.end(), spec_shape_.begin() + 1);
    if (input.shape != spec_shape_ && !batch_of_spec)
      throw Error("input tensor has shape " + shape_text(input.shape) + " but the model takes " +
                  shape_text(spec_shape_) +
                  (batch_ > 1 ? " in batches of up to " + std::to_string(batch_) : ""));
    std::vector<int> dims(input.shape.begin(), input.shape.end());
    blob_ = cv::Mat(dims, CV_32F);
    std::copy(input.data.begin(), input.data.end(), blob_.ptr<float>());
    net_.setInput(blob_, input_name_);
  }

  void run() override {
    try {
      result_ = net_.forward(output_name_);
    } catch (const cv::Exception& e) {
      throw Error("OpenCV DNN inference failed: " + e.msg);
    }
    if (!target_checked_) check_target();
  }

  std::map<std::string, std::string> hardware() const override {
    std::map<std::string, std::string> info = {{"cpu_features", cv::getCPUFeaturesLine()}};
    if (target_ != cv::dnn::DNN_TARGET_CPU) info.merge(opencl_device_info());
    return info;
  }

  std::string capture_mode() const override {
    return "opencv: every layer's output requested from Net::forward; OpenCV does not fuse a "
           "layer whose output is requested, so the captured run is unfused although fusion is '" +
           fusion_ + "'" +
           (graph_->mapped() ? "; layers named by their node's first ONNX output"
                             : "; OpenCV's layer names");
  }

  // Layers OpenCV folded away at import (constants, shape arithmetic) have no output here.
  std::vector<CapturedTensor> capture() override {
    if (blob_.empty()) throw Error("capture requested before an input was bound");
    std::vector<cv::String> names = net_.getLayerNames();
    std::vector<cv::Mat> outputs;
    try {
      net_.forward(outputs, names);
    } catch (const cv::Exception& e) {
      throw Error("OpenCV DNN capture failed: " + e.msg);
    }
    if (!target_checked_) check_target();
    if (outputs.size() != names.size())
      throw Error("OpenCV DNN returned " + std::to_string(outputs.size()) + " outputs for " +
                  std::to_string(names.size()) + " layers");
    std::vector<CapturedTensor> captured;
    for (size_t i = 0; i < names.size(); ++i) {
      const cv::Mat& m = outputs[i];
      if (m.empty() || m.depth() != CV_32F) continue;  // only float tensors are numerics to compare
      const cv::Mat flat = m.isContinuous() ? m : m.clone();
      CapturedTensor t{graph_->tensor_name(names[i]), net_.getLayer(names[i])->type, {}, {}};
      for (int d = 0; d < flat.dims; ++d) t.shape.push_back(flat.size[d]);
      const float* data = flat.ptr<float>();
      t.values.assign(data, data + flat.total());
      captured.push_back(std::move(t));
    }
    return captured;
  }

  std::vector<float> output() override {
    cv::Mat flat = result_.isContinuous() ? result_ : result_.clone();
    if (flat.depth() != CV_32F) throw Error("OpenCV DNN output is not float32");
    const float* data = flat.ptr<float>();
    return {data, data + flat.total()};
  }

 private:
  // OpenCV decides the target when it sets the net up, at the first forward: where OpenCL cannot
  // run it (no device, a device it was not tested with and no OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES,
  // FP16 on a device without cl_khr_fp16) it picks another and says so only in its log. Every
  // layer then holds the target it runs on; one that differs from the variant's fails the run.
  void check_target() {
    for (const auto& name : net_.getLayerNames()) {
      const int used = net_.getLayer(name)->preferableTarget;
      if (used != target_)
        throw Error("OpenCV DNN ran layer '" + name + "' on target " + target_name(used) +
                    " instead of " + target_name(target_) +
                    ": it fell back (its log says why; OpenCL on a device other than an Intel "
                    "GPU needs OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES=1 in the worker's environment)");
    }
    target_checked_ = true;
  }

  cv::dnn::Net net_;
  std::string input_name_, output_name_, fusion_, isa_;
  int target_;
  bool target_checked_ = false;
  std::vector<int64_t> spec_shape_;
  int64_t batch_;                   // the most images one blob may hold (`batch` knob)
  std::optional<OnnxGraph> graph_;  // read after OpenCV has accepted the file
  cv::Mat blob_, result_;
};

class OpenCvBackend final : public Backend {
 public:
  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "opencv";
    info.version = cv::getVersionString();
    info.description = "OpenCV DNN module, OpenCV backend";
    info.formats = {"onnx"};
    info.knobs = {{"opt", {"off", "on"}, "on", "layer fusion"},
                  device_knob(info.devices),
                  {"threads", {}, "1", "cv::setNumThreads"},
                  // A blob of N images runs as it is; the campaign opens a fixed batch of 1 in
                  // the model's Reshape constants (docs/ENVIRONMENTS.md, "Batches").
                  batch_knob(),
                  isa_knob({"avx2", "avx", "sse4_2"}, isa_environment(),
                           "cap on OpenCV's CPU dispatch (OPENCV_CPU_DISABLE); native: no cap")};
    return info;
  }

 private:
  static std::map<std::string, std::vector<std::string>> isa_environment() {
    std::map<std::string, std::vector<std::string>> environment;
    for (const auto& cap : isa_caps())
      environment[cap.level] = {"OPENCV_CPU_DISABLE=" + joined(cap.names, ",")};
    return environment;
  }

  // `opencl` and `opencl_fp16` run OpenCV's OpenCL kernels on the first OpenCL device, a GPU
  // where there is one, else a CPU device (PoCL). OpenCV 4.6 picks only GPUs by itself and runs
  // DNN only on Intel GPUs unless told otherwise, so the worker's environment names the device
  // type and allows every device. Listed in `devices` where a device exists; otherwise each
  // value is unavailable with the reason.
  static Knob device_knob(std::vector<std::string>& devices) {
    Knob knob{"device", {"cpu", "opencl", "opencl_fp16"}, "cpu", "DNN target"};
    devices = {"cpu"};
    std::string type, fp16_missing = "no OpenCL device";
    if (cv::ocl::haveOpenCL()) {
      std::vector<cv::ocl::PlatformInfo> platforms;
      cv::ocl::getPlatfomsInfo(platforms);
      for (const auto& platform : platforms)
        for (int d = 0; d < platform.deviceNumber() && type != ":GPU:"; ++d) {
          cv::ocl::Device device;
          platform.getDevice(device, d);
          const bool gpu = device.type() & cv::ocl::Device::TYPE_GPU;
          if (!gpu && !type.empty()) continue;
          type = gpu ? ":GPU:" : ":CPU:";
          fp16_missing = device.isExtensionSupported("cl_khr_fp16")
                             ? ""
                             : "the OpenCL device " + device.name() +
                                   " lacks cl_khr_fp16 (OpenCV would run FP32 kernels instead)";
        }
    }
    if (type.empty()) {
      for (const char* value : {"opencl", "opencl_fp16"})
        knob.unavailable[value] = "OpenCV finds no OpenCL device (none installed, e.g. PoCL)";
      return knob;
    }
    devices.push_back("opencl");
    if (fp16_missing.empty())
      devices.push_back("opencl_fp16");
    else
      knob.unavailable["opencl_fp16"] = fp16_missing;
    for (const char* value : {"opencl", "opencl_fp16"})
      knob.environment[value] = {"OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES=1",
                                 "OPENCV_OPENCL_DEVICE=" + type};
    return knob;
  }

 public:
  std::unique_ptr<Session> load(const LoadRequest& request) override {
    try {
      return std::make_unique<OpenCvSession>(request);
    } catch (const cv::Exception& e) {
      throw Error(request.artifact.string() + ": OpenCV DNN cannot load it: " + e.msg);
    }
  }
};

}  // namespace
}  // namespace deltann::opencv

int main(int argc, char** argv) {
  return deltann::worker_main(argc, argv,
                              [] { return std::make_unique<deltann::opencv::OpenCvBackend>(); });
}
