// OpenCV DNN (Debian's OpenCV), reading ONNX. `opt` switches layer fusion; OpenCL devices are
// offered only when OpenCV finds one.
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
#include "deltann/error.h"
#include "deltann/tensor.h"
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

class OpenCvSession final : public Session {
 public:
  explicit OpenCvSession(const LoadRequest& request)
      : output_name_(request.output.name),
        fusion_(request.env.knob("opt")),
        spec_shape_(request.input.shape),
        batch_(static_cast<int64_t>(batch_size(request.env))) {
    net_ = cv::dnn::readNetFromONNX(request.artifact.string());
    if (net_.empty()) throw Error(request.artifact.string() + ": OpenCV DNN read an empty network");
    graph_.emplace(request.artifact);
    graph_->check_input(request.input);
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    const bool opencl = request.env.knob("device").rfind("opencl", 0) == 0;
    net_.setPreferableTarget(opencl ? cv::dnn::DNN_TARGET_OPENCL : cv::dnn::DNN_TARGET_CPU);
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
  cv::dnn::Net net_;
  std::string input_name_, output_name_, fusion_;
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
    info.devices = {"cpu"};
    if (cv::ocl::haveOpenCL()) {
      // Listing needs an initialised context; PoCL or a GPU driver provides one when present.
      cv::ocl::Context context = cv::ocl::Context::getDefault();
      if (context.ptr() && context.ndevices() > 0) info.devices.push_back("opencl:0");
    }
    info.formats = {"onnx"};
    info.knobs = {{"opt", {"off", "on"}, "on", "layer fusion"},
                  {"device", {"cpu", "opencl:0"}, "cpu", "DNN target"},
                  {"threads", {}, "1", "cv::setNumThreads"},
                  // A blob of N images runs as it is; the campaign opens a fixed batch of 1 in
                  // the model's Reshape constants (docs/ENVIRONMENTS.md, "Batches").
                  batch_knob()};
    return info;
  }

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
