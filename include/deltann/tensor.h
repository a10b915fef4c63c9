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
