// ONNX model files as the float64 reference executor loads them (src/reference/model.cpp
// Model::parse): protobuf, opset, initializers, graph inputs and outputs, nodes and attributes.
// reference.h promises that a malformed model is an Error and a valid one it cannot run is
// Unsupported, never a crash.
#include "fuzz_util.h"
#include "reference/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  fuzz::refusal_is_fine([&] {
    const reference::Model model = reference::Model::parse(bytes, "fuzz.onnx");
    fuzz::check(!model.outputs().empty(), "a loaded model has outputs");
    fuzz::check(model.opset() > 0, "a loaded model has an opset");
  });
  return 0;
}
