#include "deltann/tensor.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

#include "deltann/error.h"

namespace deltann {

int64_t Tensor::element_count() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
  s << ']';
  return s.str();
}

std::string Tensor::shape_string() const { return shape_text(shape); }

Tensor stack_batch(const std::vector<Tensor>& images, size_t count) {
  if (images.empty() || count < images.size())
    throw Error("a batch of " + std::to_string(count) + " cannot hold " +
                std::to_string(images.size()) + " images");
  const std::vector<int64_t>& shape = images.front().shape;
  if (shape.empty() || shape.front() != 1)
    throw Error("cannot batch tensors of shape " + shape_text(shape) +
                ": their first dimension must be a batch of 1");
  Tensor batch;
  batch.shape = shape;
  batch.shape.front() = static_cast<int64_t>(count);
  batch.data.reserve(images.front().data.size() * count);
  for (size_t i = 0; i < count; ++i) {
    const Tensor& image = images[std::min(i, images.size() - 1)];
    if (image.shape != shape)
      throw Error("cannot batch a tensor of shape " + shape_text(image.shape) +
                  " with one of shape " + shape_text(shape));
    batch.data.insert(batch.data.end(), image.data.begin(), image.data.end());
  }
  return batch;
}

std::vector<std::vector<float>> split_batch(const std::vector<float>& output, size_t count) {
  if (count == 0 || output.size() % count != 0)
    throw Error("an output of " + std::to_string(output.size()) +
                " values cannot be split into a batch of " + std::to_string(count));
  const size_t each = output.size() / count;
  std::vector<std::vector<float>> parts;
  for (size_t i = 0; i < count; ++i) {
    const auto begin = output.begin() + static_cast<std::ptrdiff_t>(i * each);
    parts.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(each));
  }
  return parts;
}

namespace {

// The element types deltann reads and writes as .npy: float32 tensors (inputs) and float64
// captured layer values, both little-endian (as x86-64 and AArch64 are) and in C order.
struct NpyType {
  const char* descr;  // numpy's dtype string
  size_t size;
  const char* name;
};
constexpr NpyType kFloat32{"<f4", sizeof(float), "float32"};
constexpr NpyType kFloat64{"<f8", sizeof(double), "float64"};

// .npy format 1.0: magic, version, little-endian u16 header length, a Python-dict header padded
// with spaces to a multiple of 64 bytes and ending in '\n', then the raw data. The shape is
// written as numpy writes it: "()", "(5,)", "(2, 3)".
void write_npy_data(const std::filesystem::path& path, const NpyType& type,
                    const std::vector<int64_t>& dims, const void* data, size_t count) {
  uint64_t expected = 1;
  for (const int64_t d : dims) {
    if (d < 0)
      throw Error("cannot write " + path.string() + ": shape " + shape_text(dims) +
                  " has a negative dimension");
    expected *= static_cast<uint64_t>(d);
  }
  if (expected != count)
    throw Error("cannot write " + path.string() + ": shape " + shape_text(dims) + " but " +
                std::to_string(count) + " values");
  std::string shape = "(";
  for (size_t i = 0; i < dims.size(); ++i) shape += std::to_string(dims[i]) + ", ";
  if (dims.size() > 1)
    shape.resize(shape.size() - 2);
  else if (dims.size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + type.descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t prefix = 10;
  size_t total = prefix + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write " + path.string());
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(count * type.size));
  out.flush();
  if (!out) throw Error("cannot write " + path.string());
}

// Reads a .npy file of `type` into `values` (float or double) and its dimensions into `dims`.
template <typename T>
void read_npy_data(const std::filesystem::path& path, const NpyType& type,
                   std::vector<int64_t>& dims, std::vector<T>& values) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open tensor file " + path.string());
  char magic[10];
  in.read(magic, 10);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0 || magic[6] != 1)
    throw Error(path.string() + " is not a NumPy .npy (version 1) file");
  const size_t header_len = static_cast<unsigned char>(magic[8]) |
                            (static_cast<size_t>(static_cast<unsigned char>(magic[9])) << 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  // Checked before the data size is computed from it: a header longer than the file would make
  // that size wrap around and let any shape through.
  if (!in) throw Error(path.string() + ": .npy header is truncated");
  if (header.find(std::string("'descr': '") + type.descr + "'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw Error(path.string() + ": only little-endian " + type.name +
                " C-order tensors are supported");
  const auto open = header.find("'shape': (");
  const auto close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    throw Error(path.string() + ": .npy header has no shape");
  dims.clear();
  std::istringstream shape(header.substr(open + 10, close - open - 10));
  std::string dim;
  // The file may be damaged: check each dimension and the total against the file's size before
  // allocating anything.
  const auto data_bytes = std::filesystem::file_size(path) - 10 - header_len;
  uint64_t count = 1;
  while (std::getline(shape, dim, ',')) {
    const auto first = dim.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    const auto last = dim.find_last_not_of(' ');
    uint64_t value = 0;
    const char* begin = dim.data() + first;
    const char* end = dim.data() + last + 1;
    const auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || ptr != end || (value != 0 && count > data_bytes / value))
      throw Error(path.string() + ": .npy header has an invalid shape");
    count *= value;
    dims.push_back(static_cast<int64_t>(value));
  }
  if (count * type.size > data_bytes) throw Error(path.string() + ": tensor data is truncated");
  values.resize(static_cast<size_t>(count));
  in.read(reinterpret_cast<char*>(values.data()),
          static_cast<std::streamsize>(values.size() * sizeof(T)));
  if (!in) throw Error(path.string() + ": tensor data is truncated");
}

}  // namespace

void write_npy(const std::filesystem::path& path, const Tensor& t) {
  write_npy_data(path, kFloat32, t.shape, t.data.data(), t.data.size());
}

Tensor read_npy(const std::filesystem::path& path) {
  Tensor t;
  read_npy_data(path, kFloat32, t.shape, t.data);
  return t;
}

void write_npy_f64(const std::filesystem::path& path, const std::vector<int64_t>& shape,
                   const std::vector<double>& values) {
  write_npy_data(path, kFloat64, shape, values.data(), values.size());
}

std::vector<double> read_npy_f64(const std::filesystem::path& path, std::vector<int64_t>& shape) {
  std::vector<double> values;
  read_npy_data(path, kFloat64, shape, values);
  return values;
}

}  // namespace deltann
