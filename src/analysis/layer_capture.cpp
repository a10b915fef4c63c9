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
