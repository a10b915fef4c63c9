#include "libtorch_output.h"

#include <string>

#include "deltann/error.h"

namespace deltann::libtorch {
namespace {

// A model that nests deeper than this is not a classifier deltann can score.
constexpr int kMaxNesting = 8;

at::Tensor first_tensor(const c10::IValue& value, int depth) {
  if (value.isTensor()) return value.toTensor();
  if (depth < kMaxNesting) {
    if (value.isTuple()) {
      const auto& elements = value.toTupleRef().elements();
      if (!elements.empty()) return first_tensor(elements[0], depth + 1);
    } else if (value.isTensorList()) {
      const auto list = value.toTensorList();
      if (!list.empty()) return list.get(0);
    } else if (value.isList()) {
      const auto list = value.toListRef();
      if (!list.empty()) return first_tensor(list[0], depth + 1);
    }
  }
  throw Error("the model's forward() returned " + value.tagKind() +
              " where deltann expects a tensor, or a tuple or list whose first element is one");
}

}  // namespace

at::Tensor output_tensor(const c10::IValue& value) { return first_tensor(value, 0); }

std::vector<float> flatten_to_floats(const at::Tensor& tensor) {
  if (!tensor.defined()) throw Error("the model's output tensor is undefined");
  if (!at::isFloatingType(tensor.scalar_type()))
    throw Error(std::string("the model's output tensor is ") + c10::toString(tensor.scalar_type()) +
                ", not floating point; deltann expects logits or probabilities");
  // MKLDNN-layout outputs (possible after optimize_for_inference) must become dense first.
  at::Tensor dense = tensor.is_mkldnn() ? tensor.to_dense() : tensor;
  const at::Tensor flat = dense.to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/false)
                              .contiguous()
                              .reshape(-1);
  const float* data = flat.data_ptr<float>();
  return {data, data + flat.numel()};
}

}  // namespace deltann::libtorch
