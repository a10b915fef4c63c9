// OpenCV DNN (Debian's OpenCV), reading ONNX. `opt` switches layer fusion; OpenCL devices are
// offered only when OpenCV finds one.
#include <opencv2/core.hpp>
#include <opencv2/core/ocl.hpp>
#include <opencv2/dnn.hpp>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "run/worker.h"

namespace deltann::opencv {
namespace {

class OpenCvSession final : public Session {
 public:
  explicit OpenCvSession(const LoadRequest& request) : output_name_(request.output.name) {
    net_ = cv::dnn::readNetFromONNX(request.artifact.string());
    if (net_.empty()) throw Error(request.artifact.string() + ": OpenCV DNN read an empty network");
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    const bool opencl = request.env.knob("device").rfind("opencl", 0) == 0;
    net_.setPreferableTarget(opencl ? cv::dnn::DNN_TARGET_OPENCL : cv::dnn::DNN_TARGET_CPU);
    net_.enableFusion(request.env.knob("opt") == "on");
    cv::setNumThreads(std::stoi(request.env.knob("threads")));
    input_name_ = request.input.name;
  }

  void set_input(const Tensor& input) override {
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

  std::vector<float> output() override {
    cv::Mat flat = result_.isContinuous() ? result_ : result_.clone();
    if (flat.depth() != CV_32F) throw Error("OpenCV DNN output is not float32");
    const float* data = flat.ptr<float>();
    return {data, data + flat.total()};
  }

 private:
  cv::dnn::Net net_;
  std::string input_name_, output_name_;
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
                  {"threads", {}, "1", "cv::setNumThreads"}};
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
