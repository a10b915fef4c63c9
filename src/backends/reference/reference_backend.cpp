// The `reference` engine: deltann's own float64 ONNX executor (src/reference) behind the worker
// protocol. It is an oracle, not a contender: its numbers say how far each real engine is from
// the exact (float64) result, and its capture holds every node output in float64.
#include <algorithm>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "reference/reference.h"
#include "run/worker.h"

namespace deltann::reference {
namespace {

class ReferenceSession final : public Session {
 public:
  explicit ReferenceSession(const LoadRequest& request)
      : model_(Model::load(request.artifact)), artifact_(request.artifact.string()) {
    input_ = pick(request.input.name, model_.inputs(), "input");
    output_ = pick(request.output.name, model_.outputs(), "output");
    // Check the declared input against the spec now, so a mismatch is a load failure naming both
    // shapes rather than an error at the first image.
    const ValueInfo& in = model_.inputs()[input_];
    if (in.dtype != DType::Float)
      throw Error(artifact_ + ": model input '" + in.name + "' is " + dtype_name(in.dtype) +
                  ", not float32");
    if (in.has_shape) {
      try {
        check_input_shape(in.name, in.shape, request.input);
      } catch (const Error& e) {
        throw Error(artifact_ + ": " + e.what());
      }
    }
    if (model_.inputs().size() > 1)
      throw Unsupported(artifact_ + ": the model has " + std::to_string(model_.inputs().size()) +
                        " inputs; the reference engine feeds exactly one (the image)");
  }

  void set_input(const Tensor& input) override {
    Value v;
    v.dtype = DType::Float;  // the model's declared type; the values are held as double
    v.shape = input.shape;
    v.f.assign(input.data.begin(), input.data.end());
    feeds_.clear();
    feeds_[model_.inputs()[input_].name] = std::move(v);
  }

  void run() override {
    if (feeds_.empty()) throw Error("run requested before an input was bound");
    result_ = std::move(model_.run(feeds_).at(output_));
    ran_ = true;
  }

  // The protocol carries float32; rounding to nearest is the only loss, and capture() keeps the
  // float64 values for anyone who needs them.
  std::vector<float> output() override {
    if (!ran_) throw Error("no output yet");
    const std::vector<double> values = result_.as_doubles();
    std::vector<float> out(values.size());
    std::transform(values.begin(), values.end(), out.begin(),
                   [](double v) { return static_cast<float>(v); });
    return out;
  }

  std::string capture_mode() const override {
    return "reference: float64 execution, every node output";
  }

  std::vector<CapturedTensor> capture() override {
    if (feeds_.empty()) throw Error("capture requested before an input was bound");
    std::vector<Captured> captured;
    const auto outs = model_.run(feeds_, &captured);
    // The protocol wants the graph's output last; a model whose output is made before other
    // (dead) nodes would otherwise end with something else.
    const std::string& out_name = model_.outputs()[output_].name;
    std::stable_partition(captured.begin(), captured.end(),
                          [&](const Captured& c) { return c.name != out_name; });
    std::vector<CapturedTensor> tensors;
    tensors.reserve(captured.size());
    for (auto& c : captured) tensors.push_back({c.name, c.op, c.value.shape, std::move(c.value.f)});
    return tensors;
  }

 private:
  static size_t pick(const std::string& wanted, const std::vector<ValueInfo>& infos,
                     const char* what) {
    if (infos.empty()) throw Error(std::string("model has no ") + what);
    if (wanted.empty()) return 0;
    std::string all;
    for (size_t k = 0; k < infos.size(); ++k) {
      if (infos[k].name == wanted) return k;
      all += (all.empty() ? "" : ", ") + infos[k].name;
    }
    throw Error("model has no " + std::string(what) + " named '" + wanted + "'; it has: " + all);
  }

  Model model_;
  std::string artifact_;
  size_t input_ = 0, output_ = 0;
  std::map<std::string, Value> feeds_;
  Value result_;
  bool ran_ = false;
};

class ReferenceBackend final : public Backend {
 public:
  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "reference";
    info.version = "deltann float64 " + std::to_string(supported_ops().size()) + " ops";
    info.description =
        "deltann's float64 ONNX reference executor: plain loops in double precision, an oracle "
        "for every engine's numerical error (docs/REFERENCE.md)";
    info.devices = {"cpu"};
    info.formats = {"onnx"};
    info.knobs = {{"opt", {"none"}, "none", "no optimisation: every node runs as written"},
                  {"device", {"cpu"}, "cpu", "the executor runs on the CPU only"},
                  {"threads", {"1"}, "1", "single-threaded by design"}};
    return info;
  }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    return std::make_unique<ReferenceSession>(request);
  }
};

}  // namespace
}  // namespace deltann::reference

int main(int argc, char** argv) {
  return deltann::worker_main(
      argc, argv, [] { return std::make_unique<deltann::reference::ReferenceBackend>(); });
}
