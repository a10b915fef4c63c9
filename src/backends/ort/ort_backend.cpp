// ONNX Runtime, in-process through its C++ API (headers from Debian's libonnxruntime-dev, library
// from the onnxruntime wheel; the C API is versioned, so older headers work with a newer library).
#ifdef DELTANN_ORT_CAPTURE
#include "core/onnx_model.h"
#endif
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "run/worker.h"

namespace deltann::ort {
namespace {

// The optimisers each level runs that `disable` can name, in ONNX Runtime's own names (those of
// `optimization.disable_specified_optimizers`). ONNX Runtime ignores a name it does not know, so
// deltann offers only these and refuses others (docs/ENVIRONMENTS.md lists which were seen to
// change the optimised graph of ONNX Runtime 1.32). A level runs its own and the lower levels'.
const std::vector<std::pair<std::string, std::vector<std::string>>>& optimizers_by_level() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> levels = {
      {"disable", {}},
      {"basic",
       {"ConstantFolding",
        "CommonSubexpressionElimination",
        "ConstantSharing",
        "MatMulAddFusion",
        "ReshapeFusion",
        "TransposeOptimizer",
        "EliminateIdentity",
        "EliminateSlice",
        "UnsqueezeElimination",
        "EliminateDropout",
        "ExpandElimination",
        "CastElimination",
        "PreShapeNodeElimination",
        "NoopElimination",
        "DivMulFusion",
        "FuseReluClip",
        "GemmSumFusion",
        "GemmTransposeFusion",
        "NotWhereFusion",
        "ConvAddFusion",
        "ConvMulFusion",
        "ConvBNFusion"}},
      {"extended",
       {"ConvActivationFusion", "GemmActivationFusion", "MatMulScaleFusion",
        "MatmulTransposeFusion", "GeluFusion", "FastGeluFusion", "QuickGeluFusion",
        "BiasGeluFusion", "LayerNormFusion", "SimplifiedLayerNormFusion", "GatherToSliceFusion"}},
      {"all", {"NchwcTransformer"}}};
  return levels;
}

std::vector<std::string> all_optimizers() {
  std::vector<std::string> all;
  for (const auto& [level, names] : optimizers_by_level())
    all.insert(all.end(), names.begin(), names.end());
  return all;
}

// The `disable` knob's '+'-joined names as ONNX Runtime's list, which it splits at ';' (a comma
// list is read as one unknown name and silently ignored). The campaign has
// validated them already; a worker driven by hand gets the same refusal.
std::string disabled_optimizers(const Environment& env) {
  const std::string value = env.knob("disable", "none");
  if (value == "none") return "";
  const auto all = all_optimizers();
  std::string list;
  for (size_t start = 0; start <= value.size();) {
    const size_t end = std::min(value.find('+', start), value.size());
    const std::string name = value.substr(start, end - start);
    if (std::find(all.begin(), all.end(), name) == all.end()) {
      std::string valid;
      for (const auto& n : all) valid += (valid.empty() ? "" : ", ") + n;
      throw Error("ONNX Runtime has no optimizer '" + name +
                  "' that deltann can disable; valid: " + valid);
    }
    list += (list.empty() ? "" : ";") + name;
    start = end + 1;
  }
  return list;
}

GraphOptimizationLevel optimization_level(const std::string& opt) {
  if (opt == "disable") return ORT_DISABLE_ALL;
  if (opt == "basic") return ORT_ENABLE_BASIC;
  if (opt == "extended") return ORT_ENABLE_EXTENDED;
  return ORT_ENABLE_ALL;
}

Ort::SessionOptions session_options(const Environment& env) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(optimization_level(env.knob("opt")));
  options.SetIntraOpNumThreads(std::stoi(env.knob("threads")));
  options.SetInterOpNumThreads(1);
  options.SetExecutionMode(ORT_SEQUENTIAL);
  if (const std::string disabled = disabled_optimizers(env); !disabled.empty())
    options.AddConfigEntry("optimization.disable_specified_optimizers", disabled.c_str());
  return options;
}

#ifdef DELTANN_ORT_CAPTURE
// One node output of the main graph, in the graph's node order (ONNX requires a topological one).
struct NodeOutput {
  std::string name, op;
};

// The model rewritten so that every node output of the main graph is also a graph output. The
// added outputs carry only a name: ONNX Runtime infers their type from the producing node (a
// declared type would have to be right, and int64 shape tensors are not float). Subgraphs (If,
// Loop) are left alone.
std::string capture_model(const std::filesystem::path& artifact, std::vector<NodeOutput>& order) {
  onnx::ModelProto model;
  try {
    model = load_onnx_model(artifact);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; capture cannot rewrite it");
  }
  auto* graph = model.mutable_graph();
  // The rewritten model is loaded from memory, where a relative external-data path means nothing.
  for (const auto& init : graph->initializer())
    if (init.data_location() == onnx::TensorProto::EXTERNAL)
      throw Error(artifact.string() + ": initializer '" + init.name() +
                  "' keeps its data in an external file; capture supports self-contained models");
  std::set<std::string> outputs;
  for (const auto& out : graph->output()) outputs.insert(out.name());
  std::set<std::string> seen;
  for (const auto& node : graph->node())
    for (const auto& name : node.output()) {
      if (name.empty() || !seen.insert(name).second) continue;  // an omitted optional output
      order.push_back({name, node.op_type()});
      if (outputs.insert(name).second) graph->add_output()->set_name(name);
    }
  std::string rewritten;
  if (!model.SerializeToString(&rewritten))
    throw Error(artifact.string() + ": cannot serialise the model rewritten for capture");
  return rewritten;
}
#endif

class OrtSession final : public Session {
 public:
  OrtSession(Ort::Env& env, const LoadRequest& request)
      : env_(env), artifact_(request.artifact), environment_(request.env) {
    Ort::SessionOptions options = session_options(request.env);
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
      check_input_shape(input_name_,
                        session_->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape(),
                        request.input);
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
    bound_ = true;
  }

  void run() override {
    const char* in = input_name_.c_str();
    const char* out = output_name_.c_str();
    outputs_ = session_->Run(Ort::RunOptions{nullptr}, &in, &input_value_, 1, &out, 1);
  }

#ifdef DELTANN_ORT_CAPTURE
  std::string capture_mode() const override {
    return "onnxruntime: every node output made a graph output, graph optimisation '" +
           environment_.knob("opt") + "', disabled optimizers '" +
           environment_.knob("disable", "none") +
           "' (fusion across captured tensors prevented, so the captured run is not the timed one)";
  }

  // A second session on the rewritten model, made on the first capture and kept: the variant's
  // own session stays as it was, so run() is never slowed by the extra outputs.
  std::vector<CapturedTensor> capture() override {
    if (!bound_) throw Error("capture requested before an input was bound");
    try {
      if (!capture_session_) {
        const std::string bytes = capture_model(artifact_, capture_order_);
        Ort::SessionOptions options = session_options(environment_);
        capture_session_ =
            std::make_unique<Ort::Session>(env_, bytes.data(), bytes.size(), options);
      }
      std::vector<const char*> names;
      for (const auto& o : capture_order_) names.push_back(o.name.c_str());
      const char* in = input_name_.c_str();
      std::vector<Ort::Value> values = capture_session_->Run(
          Ort::RunOptions{nullptr}, &in, &input_value_, 1, names.data(), names.size());
      std::vector<CapturedTensor> captured;
      for (size_t i = 0; i < values.size(); ++i) {
        if (!values[i].IsTensor()) continue;
        const auto info = values[i].GetTensorTypeAndShapeInfo();
        CapturedTensor t{capture_order_[i].name, capture_order_[i].op, info.GetShape(), {}};
        const size_t n = info.GetElementCount();
        // Integer tensors (shapes, indices) are bookkeeping, not numerics to localise.
        if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
          const float* data = values[i].GetTensorData<float>();
          t.values.assign(data, data + n);
        } else if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE) {
          const double* data = values[i].GetTensorData<double>();
          t.values.assign(data, data + n);
        } else {
          continue;
        }
        captured.push_back(std::move(t));
      }
      return captured;
    } catch (const Ort::Exception& e) {
      throw Error(artifact_.string() + ": ONNX Runtime cannot capture: " + e.what());
    }
  }
#endif

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

  Ort::Env& env_;
  std::filesystem::path artifact_;
  Environment environment_;
  std::unique_ptr<Ort::Session> session_, capture_session_;
#ifdef DELTANN_ORT_CAPTURE
  std::vector<NodeOutput> capture_order_;
#endif
  std::string input_name_, output_name_;
  std::vector<float> input_data_;
  std::vector<int64_t> shape_;
  Ort::Value input_value_{nullptr};
  bool bound_ = false;
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
        {"threads", {}, "1", "intra-op threads"},
        // Left out of canonical strings at `none`, so variants stored before it keep their names.
        {"disable",
         all_optimizers(),
         "none",
         "graph optimizers switched off by name ('+'-joined, or none); naming one that the opt "
         "level does not run has no effect",
         true,
         {},
         true},
        // A model whose batch is fixed at 1 runs with its batch dimension opened by the
        // campaign (docs/ENVIRONMENTS.md, "Batches"), so any batch up to it runs as it is.
        batch_knob()};
    EachTable each{"opt", {}};
    std::vector<std::string> level_members;
    for (const auto& [level, names] : optimizers_by_level()) {
      level_members.insert(level_members.end(), names.begin(), names.end());
      each.members[level] = level_members;
    }
    info.each["disable"] = std::move(each);
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
