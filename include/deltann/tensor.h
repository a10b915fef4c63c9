// A dense float32 tensor: shape plus contiguous row-major data. No maths of its own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace deltann {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  // Returns the product of the dimensions (1 for a scalar).
  int64_t element_count() const;
  std::string shape_string() const;  // "[1,3,224,224]"
};

// "[1,3,224,224]": how every message names a shape.
std::string shape_text(const std::vector<int64_t>& shape);

// Batches (docs/PROTOCOL.md, "Batches"): the tensors of several images, each of the same shape
// with a batch dimension of 1, stacked into one tensor of batch size `count` along the first
// axis; when `count` exceeds the number of tensors, the last one is repeated to fill the batch
// (an engine whose batch size is fixed runs a short batch padded). Throws Error naming both
// shapes when the tensors differ, or when their first dimension is not 1.
Tensor stack_batch(const std::vector<Tensor>& images, size_t count);
// The flattened output of a batch split into `count` equal parts, one per image, in order.
// Throws Error when its length is not a multiple of `count`.
std::vector<std::vector<float>> split_batch(const std::vector<float>& output, size_t count);

// Writes `t` as a NumPy .npy file (format 1.0, '<f4', C order); throws Error on I/O failure or
// when the shape does not hold the data's count.
void write_npy(const std::filesystem::path& path, const Tensor& t);
// Reads a float32 C-order .npy file; throws Error naming the file when it is not one. Every size
// is checked against the file's before anything is allocated.
Tensor read_npy(const std::filesystem::path& path);

// The same for float64 ('<f8'), the captured layer values of `localize`, so that a float64
// engine's values arrive without rounding.
void write_npy_f64(const std::filesystem::path& path, const std::vector<int64_t>& shape,
                   const std::vector<double>& values);
std::vector<double> read_npy_f64(const std::filesystem::path& path, std::vector<int64_t>& shape);

}  // namespace deltann
