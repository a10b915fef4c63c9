#include "deltann/tensor.h"

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

// .npy format 1.0: magic, version, little-endian u16 header length, a Python-dict header padded
// with spaces to a multiple of 64 bytes and ending in '\n', then the raw data.
void write_npy(const std::filesystem::path& path, const Tensor& t) {
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) shape += std::to_string(t.shape[i]) + ", ";
  if (t.shape.size() > 1)
    shape.resize(shape.size() - 2);
  else if (t.shape.size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t prefix = 10;
  size_t total = prefix + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error("cannot write " + path.string());
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(t.data.data()),
            static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  if (!out) throw Error("cannot write " + path.string());
}

Tensor read_npy(const std::filesystem::path& path) {
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
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw Error(path.string() + ": only little-endian float32 C-order tensors are supported");
  const auto open = header.find("'shape': (");
  const auto close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    throw Error(path.string() + ": .npy header has no shape");
  Tensor t;
  std::istringstream dims(header.substr(open + 10, close - open - 10));
  std::string dim;
  // The file may be damaged: check each dimension and the total against the file's size before
  // allocating anything.
  const auto data_bytes = std::filesystem::file_size(path) - 10 - header_len;
  uint64_t count = 1;
  while (std::getline(dims, dim, ',')) {
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
    t.shape.push_back(static_cast<int64_t>(value));
  }
  if (count * sizeof(float) > data_bytes) throw Error(path.string() + ": tensor data is truncated");
  t.data.resize(static_cast<size_t>(count));
  in.read(reinterpret_cast<char*>(t.data.data()),
          static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  if (!in) throw Error(path.string() + ": tensor data is truncated");
  return t;
}

}  // namespace deltann
