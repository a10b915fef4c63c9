// Reading a worker's capture folder (layer_capture.h): index.json and its float64 .npy files.
#include "deltann/layer_capture.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "deltann/tensor.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<double> read_npy_f64(const fs::path& path, std::vector<int64_t>& shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open captured tensor " + path.string());
  char prefix[10];
  in.read(prefix, sizeof prefix);
  if (!in || std::string(prefix, 6) != "\x93NUMPY" || prefix[6] != 1)
    throw Error(path.string() + " is not a NumPy .npy (version 1) file");
  const size_t header_len = static_cast<unsigned char>(prefix[8]) |
                            (static_cast<size_t>(static_cast<unsigned char>(prefix[9])) << 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw Error(path.string() + ": truncated .npy header");
  if (header.find("'descr': '<f8'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw Error(path.string() + ": only little-endian float64 C-order tensors are captured");
  const auto open = header.find("'shape': (");
  const auto close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    throw Error(path.string() + ": .npy header has no shape");
  shape.clear();
  std::string dims = header.substr(open + 10, close - open - 10);
  std::replace(dims.begin(), dims.end(), ',', ' ');
  std::istringstream parse(dims);
  uint64_t count = 1;
  for (std::string token; parse >> token;) {
    if (token.find_first_not_of("0123456789") != std::string::npos || token.size() > 12)
      throw Error(path.string() + ": .npy shape '" + dims + "' is not a list of sizes");
    const int64_t d = std::stoll(token);
    shape.push_back(d);
    // Refuse products that would overflow before comparing them with the file's size.
    if (d != 0 && count > (uint64_t{1} << 40) / static_cast<uint64_t>(d))
      throw Error(path.string() + ": .npy shape " + shape_text(shape) + " is too large");
    count *= static_cast<uint64_t>(d);
  }
  const uint64_t data_bytes = fs::file_size(path) - sizeof prefix - header_len;
  if (data_bytes != count * sizeof(double))
    throw Error(path.string() + ": shape " + shape_text(shape) + " needs " +
                std::to_string(count * sizeof(double)) + " bytes of data, the file has " +
                std::to_string(data_bytes));
  std::vector<double> values(count);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(data_bytes));
  if (!in) throw Error(path.string() + ": truncated .npy data");
  return values;
}

LayerCapture read_capture(const fs::path& index, const std::string& env) {
  std::ifstream in(index, std::ios::binary);
  if (!in) throw Error(env + ": cannot open capture index " + index.string());
  const json j = json::parse(in, nullptr, false);
  const auto bad = [&](const std::string& what) {
    return Error(env + ": capture index " + index.string() + ": " + what);
  };
  if (!j.is_object() || !j.contains("tensors") || !j.at("tensors").is_array())
    throw bad("not a JSON object with a 'tensors' array");
  LayerCapture capture;
  capture.env = env;
  if (j.contains("mode") && j.at("mode").is_string()) capture.mode = j.at("mode");
  for (const auto& entry : j.at("tensors")) {
    if (!entry.is_object() || !entry.contains("name") || !entry.at("name").is_string() ||
        !entry.contains("file") || !entry.at("file").is_string())
      throw bad("an entry lacks 'name' or 'file': " + entry.dump().substr(0, 200));
    LayerTensor t;
    t.name = entry.at("name");
    if (entry.contains("op") && entry.at("op").is_string()) t.op = entry.at("op");
    if (entry.contains("inputs") && entry.at("inputs").is_array())
      for (const auto& name : entry.at("inputs"))
        if (name.is_string()) t.inputs.push_back(name);
    // Only a plain file name beside the index: the index must not point anywhere else.
    const std::string file = entry.at("file");
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      throw bad("tensor file '" + file + "' is not a plain file name");
    t.values = read_npy_f64(index.parent_path() / file, t.shape);
    if (entry.contains("shape") && entry.at("shape").is_array()) {
      std::vector<int64_t> declared;
      for (const auto& d : entry.at("shape"))
        declared.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
      if (declared != t.shape)
        throw bad("tensor '" + t.name + "' is declared " + shape_text(declared) + " but " + file +
                  " holds " + shape_text(t.shape));
    }
    capture.tensors.push_back(std::move(t));
  }
  return capture;
}

}  // namespace deltann
