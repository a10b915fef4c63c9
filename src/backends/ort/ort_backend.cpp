// ONNX Runtime, in-process through its C++ API (headers from Debian's libonnxruntime-dev, library
// from the onnxruntime wheel; the C API is versioned, so older headers work with a newer library).
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <sstream>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "run/worker.h"

namespace deltann::ort {
namespace {

GraphOptimizationLevel optimization_level(const std::string& opt) {
  if (opt == "disable") return ORT_DISABLE_ALL;
  if (opt == "basic") return ORT_ENABLE_BASIC;
  if (opt == "extended") return ORT_ENABLE_EXTENDED;
  return ORT_ENABLE_ALL;
}

class OrtSession final : public Session {
 public:
  OrtSession(Ort::Env& env, const LoadRequest& request) {
    Ort::SessionOptions options;
    options.SetGraphOptimizationLevel(optimization_level(request.env.knob("opt")));
    options.SetIntraOpNumThreads(std::stoi(request.env.knob("threads")));
    options.SetInterOpNumThreads(1);
    options.SetExecutionMode(ORT_SEQUENTIAL);
    session_ = std::make_unique<Ort::Session>(env, request.artifact.c_str(), options);

    Ort::AllocatorWithDefaultOptions allocator;
    input_name_ = pick_name(
        request.input.name, session_->GetInputCount(),
        [&](size_t i) { return std::string(session_->GetInputNameAllocated(i, allocator).get()); },
        "input");
    output_name_ = pick_name(
        request.output.name, session_->GetOutputCount(),
        [&](size_t i) { return std::string(session_->GetOutputNameAllocated(i, allocator).get()); },
        "output");
    // Check the model's input shape against the spec now, so a mismatch is a load failure that
    // names both shapes rather than an engine error at the first image.
    for (size_t i = 0; i < session_->GetInputCount(); ++i) {
      if (std::string(session_->GetInputNameAllocated(i, allocator).get()) != input_name_) continue;
      const auto model_shape = session_->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
      const auto& spec_shape = request.input.shape;
      bool compatible = model_shape.size() == spec_shape.size();
      for (size_t d = 0; compatible && d < model_shape.size(); ++d)
        compatible = model_shape[d] < 0 || model_shape[d] == spec_shape[d];
      if (!compatible)
        throw Error("model input '" + input_name_ + "' has shape " + shape_text(model_shape) +
                    " but the spec says " + shape_text(spec_shape));
      if (session_->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType() !=
          ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
        throw Error("model input '" + input_name_ + "' is not float32");
    }
  }

  void set_input(const Tensor& input) override {
    input_data_ = input.data;
    shape_ = input.shape;
    const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    input_value_ = Ort::Value::CreateTensor<float>(memory, input_data_.data(), input_data_.size(),
                                                   shape_.data(), shape_.size());
  }

  void run() override {
    const char* in = input_name_.c_str();
    const char* out = output_name_.c_str();
    outputs_ = session_->Run(Ort::RunOptions{nullptr}, &in, &input_value_, 1, &out, 1);
  }

  std::vector<float> output() override {
    if (outputs_.empty()) throw Error("no output yet");
    auto& value = outputs_.front();
    const auto info = value.GetTensorTypeAndShapeInfo();
    if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
      throw Error("model output '" + output_name_ + "' is not float32");
    const float* data = value.GetTensorData<float>();
    return {data, data + info.GetElementCount()};
  }

 private:
  template <typename NameAt>
  static std::string pick_name(const std::string& wanted, size_t count, NameAt name_at,
                               const char* what) {
    std::vector<std::string> names;
    for (size_t i = 0; i < count; ++i) names.push_back(name_at(i));
    if (names.empty()) throw Error(std::string("model has no ") + what);
    if (wanted.empty()) return names.front();
    if (std::find(names.begin(), names.end(), wanted) != names.end()) return wanted;
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
    throw Error("model has no " + std::string(what) + " named '" + wanted + "'; it has: " + all);
  }

  std::unique_ptr<Ort::Session> session_;
  std::string input_name_, output_name_;
  std::vector<float> input_data_;
  std::vector<int64_t> shape_;
  Ort::Value input_value_{nullptr};
  std::vector<Ort::Value> outputs_;
};

class OrtBackend final : public Backend {
 public:
  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "ort";
    info.version = OrtGetApiBase()->GetVersionString();
    info.description = "ONNX Runtime, CPU execution provider";
    info.devices = {"cpu"};
    info.formats = {"onnx"};
    info.knobs = {
        {"opt", {"disable", "basic", "extended", "all"}, "all", "graph optimisation level"},
        {"device", {"cpu"}, "cpu", "execution provider"},
        {"threads", {}, "1", "intra-op threads"}};
    return info;
  }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    try {
      return std::make_unique<OrtSession>(env_, request);
    } catch (const Ort::Exception& e) {
      throw Error(request.artifact.string() + ": ONNX Runtime cannot load it: " + e.what());
    }
  }

 private:
  Ort::Env env_{ORT_LOGGING_LEVEL_WARNING, "deltann"};
};

}  // namespace
}  // namespace deltann::ort

int main(int argc, char** argv) {
  return deltann::worker_main(argc, argv,
                              [] { return std::make_unique<deltann::ort::OrtBackend>(); });
}
