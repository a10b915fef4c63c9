// Arm NN 20.08 (Debian bookworm's libarmnn22) running TFLite flatbuffers through its own TfLite
// parser: a second, independent TFLite implementation next to LiteRT (docs/TFLITE.md). On x86-64
// the only backend Debian ships is CpuRef, Arm NN's reference kernels, loaded as a dynamic backend
// from DELTANN_ARMNN_BACKEND_DIR.
#include <armnn/ArmNN.hpp>
#include <armnn/Version.hpp>
#include <armnnTfLiteParser/ITfLiteParser.hpp>

#include <algorithm>
#include <filesystem>
#include <ios>
#include <map>
#include <string>
#include <vector>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "run/worker.h"
#include "tflite_signatures.h"

namespace deltann::armnn_engine {
namespace {

using armnnTfLiteParser::ITfLiteParser;

std::vector<int64_t> dims_of(const armnn::TensorInfo& info) {
  std::vector<int64_t> dims;
  for (unsigned int d = 0; d < info.GetNumDimensions(); ++d) dims.push_back(info.GetShape()[d]);
  return dims;
}

// The tensor the spec names, by tensor name or by signature name (Arm NN itself knows only
// tensor names), or the first tensor when the spec names none.
std::string pick_name(const std::vector<std::string>& names,
                      const std::map<std::string, std::string>& signature,
                      const std::string& wanted, const char* what) {
  if (names.empty()) throw Error(std::string("model has no ") + what);
  if (wanted.empty()) return names.front();
  if (std::find(names.begin(), names.end(), wanted) != names.end()) return wanted;
  if (const auto alias = signature.find(wanted);
      alias != signature.end() &&
      std::find(names.begin(), names.end(), alias->second) != names.end())
    return alias->second;
  std::string all;
  for (const auto& n : names) {
    all += (all.empty() ? "" : ", ") + n;
    for (const auto& [alias, tensor] : signature)
      if (tensor == n) all += " (signature name '" + alias + "')";
  }
  throw Error("model has no " + std::string(what) + " named '" + wanted + "'; it has: " + all);
}

class ArmnnSession final : public Session {
 public:
  ArmnnSession(armnn::IRuntime& runtime, const LoadRequest& request) : runtime_(runtime) {
    const std::string path = request.artifact.string();
    ITfLiteParser::TfLiteParserOptions parser_options;
    auto parser = ITfLiteParser::Create(parser_options);
    armnn::INetworkPtr network = parser->CreateNetworkFromBinaryFile(path.c_str());
    if (parser->GetSubgraphCount() != 1)
      throw Error(path + ": the model has " + std::to_string(parser->GetSubgraphCount()) +
                  " subgraphs; only single-subgraph models are supported");
    // Read after the parser accepted the file, so that a file that is no flatbuffer at all gets
    // the parser's message.
    const SignatureNames signature = read_signature_names(request.artifact);
    const std::string in_name = pick_name(parser->GetSubgraphInputTensorNames(0), signature.inputs,
                                          request.input.name, "input");
    const std::string out_name = pick_name(parser->GetSubgraphOutputTensorNames(0),
                                           signature.outputs, request.output.name, "output");
    input_ = parser->GetNetworkInputBindingInfo(0, in_name);
    output_ = parser->GetNetworkOutputBindingInfo(0, out_name);

    // Check the spec now so that a mismatch is a load failure naming both shapes.
    check_input_shape(in_name, dims_of(input_.second), request.input);
    if (input_.second.GetDataType() != armnn::DataType::Float32 ||
        output_.second.GetDataType() != armnn::DataType::Float32)
      throw Error("model input '" + in_name + "' or output '" + out_name +
                  "' is not float32; the armnn engine runs float32 models only");

    armnn::OptimizerOptions options;
    options.m_ReduceFp32ToFp16 = request.env.knob("precision") == "fp16";
    std::vector<std::string> messages;
    armnn::IOptimizedNetworkPtr optimized{nullptr, nullptr};
    try {
      optimized = armnn::Optimize(*network, {armnn::Compute::CpuRef}, runtime_.GetDeviceSpec(),
                                  options, armnn::Optional<std::vector<std::string>&>(messages));
    } catch (const armnn::Exception& e) {
      throw Error(path + ": Arm NN cannot optimise the network for CpuRef: " + e.what());
    }
    if (!optimized) {
      std::string all;
      for (const auto& m : messages) all += (all.empty() ? "" : "; ") + m;
      throw Error(path + ": Arm NN cannot optimise the network for CpuRef: " + all);
    }
    std::string error;
    if (runtime_.LoadNetwork(network_id_, std::move(optimized), error) != armnn::Status::Success)
      throw Error(path + ": Arm NN cannot load the optimised network: " + error);
    loaded_ = true;
    output_data_.resize(output_.second.GetNumElements());
  }

  ~ArmnnSession() override {
    if (loaded_) runtime_.UnloadNetwork(network_id_);
  }
  ArmnnSession(const ArmnnSession&) = delete;
  ArmnnSession& operator=(const ArmnnSession&) = delete;

  void set_input(const Tensor& input) override {
    if (input.shape != dims_of(input_.second))
      throw Error("input tensor has shape " + shape_text(input.shape) + " but the model takes " +
                  shape_text(dims_of(input_.second)));
    input_data_ = input.data;
  }

  void run() override {
    const armnn::InputTensors inputs{
        {input_.first, armnn::ConstTensor(input_.second, input_data_.data())}};
    const armnn::OutputTensors outputs{
        {output_.first, armnn::Tensor(output_.second, output_data_.data())}};
    if (runtime_.EnqueueWorkload(network_id_, inputs, outputs) != armnn::Status::Success)
      throw Error("Arm NN failed to run the network");
    ran_ = true;
  }

  std::vector<float> output() override {
    if (!ran_) throw Error("no output yet");
    return output_data_;
  }

 private:
  armnn::IRuntime& runtime_;
  armnn::NetworkId network_id_ = 0;
  bool loaded_ = false;
  bool ran_ = false;
  armnn::BindingPointInfo input_, output_;
  std::vector<float> input_data_, output_data_;
};

class ArmnnBackend final : public Backend {
 public:
  ArmnnBackend() {
    armnn::IRuntime::CreationOptions options;
    // Debian builds the reference backend as a dynamic backend, found only through this path.
    options.m_DynamicBackendsPath = DELTANN_ARMNN_BACKEND_DIR;
    runtime_ = armnn::IRuntime::Create(options);
    const auto ids = runtime_->GetDeviceSpec().GetSupportedBackends();
    if (ids.find(armnn::BackendId("CpuRef")) == ids.end())
      throw Error(std::string("Arm NN found no CpuRef backend in ") + DELTANN_ARMNN_BACKEND_DIR +
                  " (install libarmnn-cpuref-backend22)");
  }

  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "armnn";
    info.version = ARMNN_VERSION;
    info.description =
        "Arm NN " ARMNN_VERSION " TfLite parser, CpuRef reference backend (Debian libarmnn22)";
    info.devices = {"cpu"};
    info.formats = {"tflite"};
    info.knobs = {
        {"opt", {"default"}, "default", "Arm NN's Optimize() runs one fixed set of graph passes"},
        {"device", {"cpu"}, "cpu", "the CpuRef backend"},
        {"precision", {"fp32", "fp16"}, "fp32", "fp16: OptimizerOptions::m_ReduceFp32ToFp16"},
        {"threads", {"1"}, "1", "CpuRef runs on one thread"}};
    return info;
  }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    const std::string path = request.artifact.string();
    // The parser reads whatever it is given with an ifstream; a folder would surface as a bare
    // "basic_filebuf::underflow" error.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(request.artifact, ec))
      throw Error(path + (std::filesystem::exists(request.artifact, ec) ? ": not a regular file"
                                                                        : ": no such model file"));
    try {
      return std::make_unique<ArmnnSession>(*runtime_, request);
    } catch (const armnn::Exception& e) {
      // Parser errors (not a verified flatbuffer, unsupported operator) arrive here.
      throw Error(path + ": Arm NN cannot load it: " + e.what());
    } catch (const std::ios_base::failure& e) {
      throw Error(path + ": cannot read it: " + e.what());
    }
  }

 private:
  armnn::IRuntimePtr runtime_{nullptr, nullptr};
};

}  // namespace
}  // namespace deltann::armnn_engine

int main(int argc, char** argv) {
  return deltann::worker_main(
      argc, argv, [] { return std::make_unique<deltann::armnn_engine::ArmnnBackend>(); });
}
