// OpenVINO, in-process through its C++ API (headers, CMake package and libraries from the openvino
// wheel). ONNX and TFLite models are read by OpenVINO's own frontends and compiled by a device
// plugin (the CPU plugin here); one synchronous inference request runs them. docs/OPENVINO.md.
#include <openvino/op/constant.hpp>
#include <openvino/op/parameter.hpp>
#include <openvino/op/result.hpp>
#include <openvino/openvino.hpp>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "openvino_options.h"
#include "run/worker.h"

namespace deltann::openvino {
namespace {

std::string partial_shape_text(const ov::PartialShape& shape) {
  if (shape.rank().is_dynamic()) return "[...] (any rank)";
  std::string text = "[";
  for (size_t d = 0; d < shape.size(); ++d)
    text += (d ? "," : "") + (shape[d].is_static() ? std::to_string(shape[d].get_length()) : "?");
  return text + "]";
}

// The index of the port named `wanted` ("" = the first), or an error listing the names there are.
size_t pick_port(const std::vector<ov::Output<ov::Node>>& ports, const std::string& wanted,
                 const char* what) {
  if (ports.empty()) throw Error(std::string("model has no ") + what);
  if (wanted.empty()) return 0;
  std::string all;
  for (size_t i = 0; i < ports.size(); ++i) {
    const auto names = ports[i].get_names();
    if (names.count(wanted)) return i;
    all += (all.empty() ? "" : ", ") + ports[i].get_any_name();
  }
  throw Error("model has no " + std::string(what) + " named '" + wanted + "'; it has: " + all);
}

// OpenVINO's messages end in blank lines; a reply reads better without them.
std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

constexpr const char* kCaptureMode =
    "openvino: every op output that carries a tensor name from the frontend (the ONNX tensor "
    "names, or TFLite's for a .tflite model) added as a model output (ov::Model::add_output) and "
    "compiled a second time with the variant's own properties; the plugin does not fuse across an "
    "exposed tensor, so fusion across captured tensors is prevented and the captured run is not "
    "the timed one. Unnamed tensors the frontend made when it decomposed a node are not exposed "
    "and stay fusable; non-float tensors are skipped";

// A captured output's values as float64, from the element types a plugin returns.
std::vector<double> widened(const ov::Tensor& tensor) {
  const size_t n = tensor.get_size();
  std::vector<double> values(n);
  const auto type = tensor.get_element_type();
  const auto copy = [&](const auto* data) {
    for (size_t i = 0; i < n; ++i) values[i] = static_cast<double>(static_cast<float>(data[i]));
  };
  if (type == ov::element::f32) {
    copy(tensor.data<const float>());
  } else if (type == ov::element::f16) {
    copy(tensor.data<const ov::float16>());
  } else if (type == ov::element::bf16) {
    copy(tensor.data<const ov::bfloat16>());
  } else if (type == ov::element::f64) {
    const double* data = tensor.data<const double>();
    values.assign(data, data + n);
  } else {
    throw Error("captured tensor is " + type.get_type_name() + ", not a float type");
  }
  return values;
}

class OpenvinoSession final : public Session {
 public:
  OpenvinoSession(ov::Core& core, const LoadRequest& request)
      : core_(core),
        artifact_(request.artifact.string()),
        env_(request.env),
        batch_(static_cast<int64_t>(batch_size(request.env))) {
    std::shared_ptr<ov::Model> model = core.read_model(request.artifact.string());
    if (model->inputs().size() != 1)
      throw Error("model has " + std::to_string(model->inputs().size()) +
                  " inputs; deltann feeds exactly one image tensor");
    input_index_ = pick_port(model->inputs(), request.input.name, "input");
    output_index_ = pick_port(model->outputs(), request.output.name, "output");
    spec_shape_ = request.input.shape;
    fit_input_shape(*model, spec_shape_);

    const std::string device = ov_device(request.env.knob("device"));
    device_ = device;
    compiled_ = core.compile_model(model, device, compile_properties(core, request.env));
    check_precision(request.env.knob("precision"));
    if (device == "CPU") check_threads(std::stoi(request.env.knob("threads")));
    request_ = compiled_.create_infer_request();
    // What the plugin actually chose (streams follow from the hint and threads); kept in the
    // worker's log, which the campaign attaches to failures.
    std::cerr << "openvino: compiled for " << device << ": inference_precision "
              << compiled_.get_property(ov::hint::inference_precision) << ", streams "
              << compiled_.get_property(ov::num_streams).num << ", threads "
              << (device == "CPU"
                      ? std::to_string(compiled_.get_property(ov::inference_num_threads))
                      : std::string("n/a"))
              << '\n';
  }

  void set_input(const Tensor& input) override {
    if (input.shape != shape_)
      throw Error("input tensor has shape " + shape_text(input.shape) + " but the model takes " +
                  shape_text(shape_));
    input_data_ = input.data;
    // Wraps deltann's buffer without a copy; it lives as long as the session binds it.
    const ov::Shape shape(shape_.begin(), shape_.end());
    request_.set_input_tensor(input_index_,
                              ov::Tensor(ov::element::f32, shape, input_data_.data()));
  }

  void run() override { request_.infer(); }

  // What the plugin compiled for: the devices that execute (ov::execution_devices), the inference
  // precision (checked at load) and the kernels its runtime graph names per node
  // ("brgconv_avx512_f32"), which show the instruction set each node runs with.
  std::map<std::string, std::string> hardware() const override {
    std::string devices;
    for (const auto& device : compiled_.get_property(ov::execution_devices))
      devices += (devices.empty() ? "" : ",") + device;
    std::map<std::string, int> kernels;
    for (const auto& op : compiled_.get_runtime_model()->get_ordered_ops()) {
      const auto& info = op->get_rt_info();
      const auto kernel = info.find("primitiveType");
      if (kernel != info.end()) ++kernels[kernel->second.as<std::string>()];
    }
    std::string kernel_text;
    for (const auto& [name, count] : kernels)
      kernel_text += (kernel_text.empty() ? "" : ", ") + name + " x" + std::to_string(count);
    std::ostringstream precision;
    precision << compiled_.get_property(ov::hint::inference_precision);
    return {{"execution_devices", devices},
            {"inference_precision", precision.str()},
            {"kernels", kernel_text}};
  }

  bool fixed_batch() const override { return batch_ > 1; }

  std::vector<CapturedTensor> capture() override {
    try {
      return capture_tensors();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("OpenVINO cannot capture: " + trimmed(e.what()));
    }
  }

  std::string capture_mode() const override { return kCaptureMode; }

  std::vector<float> output() override {
    const ov::Tensor tensor = request_.get_output_tensor(output_index_);
    if (tensor.get_element_type() != ov::element::f32)
      throw Error("model output is " + tensor.get_element_type().get_type_name() + ", not float32");
    const float* data = tensor.data<const float>();
    return {data, data + tensor.get_size()};
  }

 private:
  // One exposed tensor of the capture model: its name, op type and output index there.
  struct Exposed {
    std::string name, op;
    size_t output = 0;
  };

  // The capture model is made on the first capture only, from a fresh read of the artifact, so
  // the timed model and its request stay exactly as loaded.
  void make_capture_model() {
    std::shared_ptr<ov::Model> model = core_.read_model(artifact_);
    fit_input_shape(*model, spec_shape_);
    const ov::Output<ov::Node> graph_output =
        model->output(output_index_).get_node()->input_value(0);
    std::vector<ov::Output<ov::Node>> ports;
    for (const auto& node : model->get_ordered_ops()) {
      if (ov::is_type<ov::op::v0::Parameter>(node) || ov::is_type<ov::op::v0::Constant>(node) ||
          ov::is_type<ov::op::v0::Result>(node))
        continue;
      for (const auto& port : node->outputs())
        if (!port.get_names().empty() && port.get_element_type().is_real()) ports.push_back(port);
    }
    // The graph's output goes last whatever the topological order put after it.
    std::erase(ports, graph_output);
    ports.push_back(graph_output);
    for (const auto& port : ports) model->add_output(port);
    // add_output reuses a Result that already reads the port, so outputs are found by source.
    const auto outputs = model->outputs();
    exposed_.clear();
    for (const auto& port : ports) {
      for (size_t i = 0; i < outputs.size(); ++i) {
        if (outputs[i].get_node()->input_value(0) != port) continue;
        exposed_.push_back({port.get_any_name(), port.get_node()->get_type_name(), i});
        break;
      }
    }
    capture_compiled_ = core_.compile_model(model, device_, compile_properties(core_, env_));
    capture_request_ = capture_compiled_->create_infer_request();
  }

  std::vector<CapturedTensor> capture_tensors() {
    if (input_data_.empty()) throw Error("capture requested before an input was bound");
    if (!capture_request_) make_capture_model();
    const ov::Shape shape(shape_.begin(), shape_.end());
    capture_request_->set_input_tensor(input_index_,
                                       ov::Tensor(ov::element::f32, shape, input_data_.data()));
    capture_request_->infer();
    std::vector<CapturedTensor> tensors;
    for (const Exposed& e : exposed_) {
      const ov::Tensor tensor = capture_request_->get_output_tensor(e.output);
      const ov::Shape dims = tensor.get_shape();
      tensors.push_back(
          {e.name, e.op, std::vector<int64_t>(dims.begin(), dims.end()), widened(tensor)});
    }
    return tensors;
  }

  // Checks the model's input against the spec's shape (both named on a mismatch) and fixes any
  // dynamic dimensions to the spec's, since a compiled static shape is what every other engine
  // runs too. At batch N > 1 the batch is fixed at N (the campaign opened it in the model), so a
  // short batch arrives padded (fixed_batch()).
  void fit_input_shape(ov::Model& model, std::vector<int64_t> spec_shape) {
    if (batch_ > 1 && !spec_shape.empty()) spec_shape.front() = batch_;
    const auto port = model.input(input_index_);
    const ov::PartialShape model_shape = port.get_partial_shape();
    bool compatible = model_shape.rank().is_dynamic() ||
                      model_shape.rank().get_length() == static_cast<int64_t>(spec_shape.size());
    for (size_t d = 0; compatible && model_shape.rank().is_static() && d < model_shape.size(); ++d)
      compatible = model_shape[d].compatible(spec_shape[d]);
    if (!compatible)
      throw Error("model input '" + port.get_any_name() + "' has shape " +
                  partial_shape_text(model_shape) + " but the spec says " + shape_text(spec_shape));
    if (port.get_element_type() != ov::element::f32)
      throw Error("model input '" + port.get_any_name() + "' is " +
                  port.get_element_type().get_type_name() + ", not float32");
    if (model_shape.is_dynamic() || batch_ > 1)
      model.reshape({{port, ov::PartialShape(std::vector<ov::Dimension>(spec_shape.begin(),
                                                                        spec_shape.end()))}});
    shape_ = spec_shape;
  }

  // The CPU plugin quietly replaces a precision it cannot run (f16 becomes bf16 or f32); refuse
  // rather than record results under a precision that was not used.
  void check_precision(const std::string& wanted) {
    const auto got = compiled_.get_property(ov::hint::inference_precision);
    if (got != precision_type(wanted))
      throw Error("OpenVINO was asked for inference precision " + wanted + " but compiled for " +
                  got.get_type_name());
  }

  // The CPU plugin caps inference_num_threads at the cores it sees (threads=4 on 2 cores runs
  // 2); a variant must not be timed under a thread count it did not use.
  void check_threads(int wanted) {
    const int got = compiled_.get_property(ov::inference_num_threads);
    if (got != wanted)
      throw Error("OpenVINO was asked for " + std::to_string(wanted) + " threads but uses " +
                  std::to_string(got) + " (its CPU plugin uses at most one thread per core here)");
  }

  ov::Core& core_;
  std::string artifact_, device_;
  Environment env_;
  int64_t batch_;  // images per run (`batch` knob): the compiled batch when above 1
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  std::optional<ov::CompiledModel> capture_compiled_;
  std::optional<ov::InferRequest> capture_request_;
  std::vector<Exposed> exposed_;
  size_t input_index_ = 0, output_index_ = 0;
  std::vector<int64_t> spec_shape_;  // one image's
  std::vector<int64_t> shape_;       // compiled: the spec's with the batch at batch_
  std::vector<float> input_data_;
};

// "2026.4.1" from OpenVINO's build number "2026.4.1-22982-e213a147257-releases/2026/4", so that
// `openvino@2026.4.1` names this version.
std::string release_of(const std::string& build) {
  const auto end = std::find_if(build.begin(), build.end(),
                                [](unsigned char c) { return !std::isdigit(c) && c != '.'; });
  return end == build.begin() ? build : std::string(build.begin(), end);
}

class OpenvinoBackend final : public Backend {
 public:
  OpenvinoBackend() {
    // Described once: listing devices loads every plugin, and the worker describes itself again
    // after each load.
    const std::string build = ov::get_openvino_version().buildNumber;
    info_.name = "openvino";
    info_.version = release_of(build);
    info_.description = "OpenVINO " + build + ", ONNX and TFLite frontends, synchronous request";
    for (const auto& device : core_.get_available_devices())
      info_.devices.push_back(device_knob(device));
    info_.formats = {"onnx", "tflite"};
    info_.knobs = knobs(core_, info_.devices);
  }

  BackendInfo describe() const override { return info_; }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    try {
      return std::make_unique<OpenvinoSession>(core_, request);
    } catch (const Error& e) {
      throw Error(request.artifact.string() + ": " + e.what());
    } catch (const std::exception& e) {
      throw Error(request.artifact.string() + ": OpenVINO cannot load it: " + trimmed(e.what()));
    }
  }

 private:
  ov::Core core_;
  BackendInfo info_;
};

}  // namespace
}  // namespace deltann::openvino

int main(int argc, char** argv) {
  return deltann::worker_main(
      argc, argv, [] { return std::make_unique<deltann::openvino::OpenvinoBackend>(); });
}
