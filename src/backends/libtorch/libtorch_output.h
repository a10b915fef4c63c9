// What a TorchScript module returns, turned into the worker's flat float32 output; kept apart from
// the session so the rules are in one small place.
#pragma once

#include <torch/script.h>

#include <vector>

namespace deltann::libtorch {

// The tensor a classifier's forward() returned: the value itself when it is a tensor, otherwise
// the first element of a tuple or list (recursively, so ((logits, aux), x) works too). Throws
// Error naming the type found when there is no tensor there.
at::Tensor output_tensor(const c10::IValue& value);

// `tensor` on the CPU as contiguous float32, flattened. Floating-point types other than float32
// (half, bfloat16, double) are converted; integer or boolean outputs are refused with an Error,
// since they are not scores.
std::vector<float> flatten_to_floats(const at::Tensor& tensor);

}  // namespace deltann::libtorch
