#include "deltann/spec.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/bounded_json.h"
#include "deltann/error.h"

namespace deltann {
namespace {

using nlohmann::json;

template <typename Enum>
Enum parse_choice(const json& j, const char* field,
                  std::initializer_list<std::pair<const char*, Enum>> choices, Enum fallback) {
  if (!j.contains(field)) return fallback;
  const auto value = j.at(field).get<std::string>();
  std::string valid;
  for (const auto& [name, e] : choices) {
    if (value == name) return e;
    valid += std::string(valid.empty() ? "" : ", ") + name;
  }
  throw Error(std::string("spec field '") + field + "' is '" + value + "'; valid values: " + valid);
}

// A value as a message shows it: a scalar as written, anything else by its type (an array may be
// large, and dump() recurses once per level of nesting).
std::string shown(const json& v) { return v.is_primitive() ? v.dump() : v.type_name(); }

// An integer of type Int. JSON's get<int>() would wrap 4294967520 to 224, and converting 1e300
// to an integer is undefined behaviour, so the value is range-checked first; a float with an
// integral value (224.0) is accepted.
template <typename Int>
Int integer_value(const json& v, const std::string& field) {
  constexpr auto low = std::numeric_limits<Int>::min(), high = std::numeric_limits<Int>::max();
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() <= static_cast<uint64_t>(high))
      return static_cast<Int>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x >= low && x <= high) return static_cast<Int>(x);
  } else if (v.is_number_float()) {
    const double x = v.get<double>();
    // [low, -low): the upper bound as a double is 2^(bits-1) exactly, which Int cannot hold.
    if (x == std::trunc(x) && x >= static_cast<double>(low) && x < -static_cast<double>(low))
      return static_cast<Int>(x);
  }
  throw Error("spec field '" + field + "' must be an integer that fits " +
              std::to_string(sizeof(Int) * 8) + " bits, not " + shown(v));
}

template <typename Int>
Int integer(const json& j, const char* field, Int fallback) {
  return j.contains(field) ? integer_value<Int>(j.at(field), field) : fallback;
}

// A float32 value: finite (JSON has no NaN or Inf, but 1e300 overflows a float to Inf, which the
// worker would then receive as null).
float real_value(const json& v, const std::string& field) {
  const double x = v.is_number() ? v.get<double>() : std::nan("");
  if (!std::isfinite(x) || std::abs(x) > std::numeric_limits<float>::max())
    throw Error("spec field '" + field + "' must be a finite float32 number, not " + shown(v));
  return static_cast<float>(x);
}

std::array<float, 3> parse_triple(const json& j, const char* field, std::array<float, 3> fallback) {
  if (!j.contains(field)) return fallback;
  const auto& v = j.at(field);
  if (v.is_number()) {
    const float x = real_value(v, field);
    return {x, x, x};
  }
  if (!v.is_array() || v.size() != 3)
    throw Error(std::string("spec field '") + field + "' must be a number or a list of 3 numbers");
  return {real_value(v[0], field), real_value(v[1], field), real_value(v[2], field)};
}

}  // namespace

int InputSpec::height() const {
  if (raw_tensor)
    throw Error("the model's input is a raw tensor (spec input kind 'tensor'), not an image");
  return static_cast<int>(layout == Layout::NCHW ? shape[2] : shape[1]);
}
int InputSpec::width() const {
  if (raw_tensor)
    throw Error("the model's input is a raw tensor (spec input kind 'tensor'), not an image");
  return static_cast<int>(layout == Layout::NCHW ? shape[3] : shape[2]);
}

std::string InputSpec::preprocessing_key() const {
  std::ostringstream s;
  s.precision(9);
  s << "shape=";
  for (auto d : shape) s << d << 'x';
  s << ";layout=" << (layout == Layout::NCHW ? "NCHW" : "NHWC")
    << ";order=" << (channel_order == ChannelOrder::RGB ? "RGB" : "BGR") << ";resize=" << resize
    << ";crop=" << crop << ";interp=" << interpolation << ";scale=" << scale << ";mean=" << mean[0]
    << ',' << mean[1] << ',' << mean[2] << ";std=" << std[0] << ',' << std[1] << ',' << std[2];
  return s.str();
}

ModelSpec parse_model_spec(const json& j, const std::filesystem::path& base_dir) {
  ModelSpec spec;
  try {
    spec.name = j.value("name", "");
    const json in = j.value("input", json::object());
    InputSpec& i = spec.input;
    i.name = in.value("name", "");
    if (in.contains("shape")) {
      if (!in.at("shape").is_array()) throw Error("spec field 'shape' must be a list of integers");
      i.shape.clear();
      for (const auto& d : in.at("shape")) i.shape.push_back(integer_value<int64_t>(d, "shape"));
    }
    for (const int64_t d : i.shape)
      if (d <= 0) throw Error("spec input shape must have positive dimensions");
    const std::string kind = in.value("kind", "image");
    if (kind != "image" && kind != "tensor")
      throw Error("spec field 'kind' is '" + kind + "'; valid values: image, tensor");
    i.raw_tensor = kind == "tensor";
    if (i.raw_tensor) {
      // A raw tensor is fed as it is: only its shape and type matter.
      if (i.shape.empty()) throw Error("spec input of kind 'tensor' needs a shape");
      if (in.value("dtype", "float32") != "float32")
        throw Error("spec input dtype '" + in.value("dtype", "") +
                    "' is not supported; valid: float32");
    } else {
      if (i.shape.size() != 4) throw Error("spec input shape must have 4 dimensions (batch, ...)");
      if (i.shape[0] != 1) throw Error("spec input batch dimension must be 1");
      i.layout = parse_choice(in, "layout", {{"NCHW", Layout::NCHW}, {"NHWC", Layout::NHWC}},
                              Layout::NCHW);
      const int64_t channels = i.layout == Layout::NCHW ? i.shape[1] : i.shape[3];
      if (channels != 3)
        throw Error("spec input must have 3 channels for layout " +
                    std::string(i.layout == Layout::NCHW ? "NCHW" : "NHWC"));
      // Height and width are ints everywhere an image is handled (OpenCV's sizes).
      for (const int64_t d : i.shape)
        if (d > std::numeric_limits<int>::max())
          throw Error("spec input height and width must be below 2^31");
      if (in.value("dtype", "float32") != "float32")
        throw Error("spec input dtype '" + in.value("dtype", "") +
                    "' is not supported; valid: float32");
      i.channel_order =
          parse_choice(in, "channel_order",
                       {{"RGB", ChannelOrder::RGB}, {"BGR", ChannelOrder::BGR}}, ChannelOrder::RGB);
      i.crop = integer(in, "crop", std::min(i.height(), i.width()));
      i.resize = integer(in, "resize", i.crop);
      if (i.crop != i.height() || i.crop != i.width())
        throw Error("spec crop " + std::to_string(i.crop) +
                    " does not match the input shape's height and width");
      if (i.resize < i.crop) throw Error("spec resize must be at least the crop size");
      i.interpolation = in.value("interpolation", "bilinear");
      if (i.interpolation != "bilinear" && i.interpolation != "nearest" &&
          i.interpolation != "area" && i.interpolation != "bicubic")
        throw Error("spec interpolation '" + i.interpolation +
                    "' is not supported; valid values: bilinear, nearest, area, bicubic");
      if (in.contains("scale")) i.scale = real_value(in.at("scale"), "scale");
      i.mean = parse_triple(in, "mean", i.mean);
      i.std = parse_triple(in, "std", i.std);
      for (float s : i.std)
        if (s == 0.0f) throw Error("spec std must not contain 0");
    }

    const json out = j.value("output", json::object());
    OutputSpec& o = spec.output;
    o.name = out.value("name", "");
    o.classes = integer(out, "classes", 1000);
    o.label_offset = integer(out, "label_offset", 0);
    // The output vector's length, classes + label_offset, must be an int as well.
    if (o.classes <= 0 || o.label_offset < 0 ||
        o.label_offset > std::numeric_limits<int>::max() - o.classes)
      throw Error("spec output classes/label_offset out of range");
    o.kind = parse_choice(
        out, "kind", {{"logits", OutputKind::Logits}, {"probabilities", OutputKind::Probabilities}},
        OutputKind::Logits);
    if (out.contains("class_names")) {
      std::filesystem::path names = out.at("class_names").get<std::string>();
      o.class_names = names.is_absolute() ? names : std::filesystem::absolute(base_dir / names);
    }
    const json sources = j.value("sources", json::object());
    for (const auto& [format, source] : sources.items()) {
      if (!source.is_object() || !source.contains("file"))
        throw Error("spec source '" + format + "' needs a \"file\"");
      std::filesystem::path file = source.at("file").get<std::string>();
      spec.sources[format] = {
          file.is_absolute() ? file : std::filesystem::absolute(base_dir / file),
          source.value("architecture", "")};
    }
  } catch (const json::exception& e) {
    throw Error(std::string("malformed spec: ") + e.what());
  }
  return spec;
}

std::string model_format(const std::filesystem::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".onnx") return "onnx";
  if (ext == ".tflite") return "tflite";
  if (ext == ".pt" || ext == ".torchscript") return "torchscript";
  if (ext == ".pth") return "pytorch";
  if (ext == ".keras") return "keras";
  return "";
}

std::filesystem::path sidecar_path(const std::filesystem::path& model_path) {
  return std::filesystem::path(model_path).replace_extension(".spec.json");
}

std::optional<std::filesystem::path> model_spec_file(
    const std::filesystem::path& model_path,
    const std::optional<std::filesystem::path>& spec_path) {
  if (spec_path) return std::filesystem::absolute(*spec_path);
  const std::filesystem::path sidecar = sidecar_path(model_path);
  if (std::filesystem::exists(sidecar)) return std::filesystem::absolute(sidecar);
  return std::nullopt;
}

std::string spec_source_text(const std::filesystem::path& model_path,
                             const std::optional<std::filesystem::path>& spec_path) {
  if (const auto file = model_spec_file(model_path, spec_path)) return file->string();
  return "ImageNet defaults (no " + sidecar_path(model_path).filename().string() +
         " beside the model)";
}

std::string spec_summary(const ModelSpec& spec) {
  std::ostringstream s;
  s.precision(6);
  const InputSpec& i = spec.input;
  const auto triple = [&](const std::array<float, 3>& v) {
    s << '[' << v[0] << ", " << v[1] << ", " << v[2] << ']';
  };
  s << "input ";
  for (size_t d = 0; d < i.shape.size(); ++d) s << (d ? "x" : "") << i.shape[d];
  if (i.raw_tensor) {
    s << " raw float32 tensor";
  } else {
    s << ' ' << (i.layout == Layout::NCHW ? "NCHW" : "NHWC") << ' '
      << (i.channel_order == ChannelOrder::RGB ? "RGB" : "BGR") << ", shorter side resized to "
      << i.resize << " (" << i.interpolation << "), centre crop " << i.crop << ", scale " << i.scale
      << ", mean ";
    triple(i.mean);
    s << ", std ";
    triple(i.std);
  }
  s << "; output " << spec.output.classes << ' '
    << (spec.output.kind == OutputKind::Logits ? "logits" : "probabilities") << ", label offset "
    << spec.output.label_offset;
  return s.str();
}

std::string default_spec_note(const std::filesystem::path& model_path) {
  const std::string sidecar = sidecar_path(model_path).filename().string();
  return "note: no spec for " + model_path.filename().string() + " (no --spec, no " + sidecar +
         " beside it): ImageNet defaults apply: " + spec_summary(ModelSpec{}) +
         ". If the model expects other input, give --spec FILE or put " + sidecar +
         " beside the model";
}

ModelSpec load_model_spec(const std::filesystem::path& model_path,
                          const std::optional<std::filesystem::path>& spec_path) {
  std::filesystem::path path = spec_path.value_or(sidecar_path(model_path));
  if (!std::filesystem::exists(path)) {
    if (spec_path) throw Error("spec file " + path.string() + " does not exist");
    ModelSpec spec;
    spec.name = model_path.stem().string();
    return spec;
  }
  std::ifstream in(path);
  json j;
  try {
    j = parse_bounded_json(in);
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
  } catch (const Error& e) {
    throw Error(path.string() + ": " + e.what() + " (a spec needs 3)");
  }
  try {
    ModelSpec spec = parse_model_spec(j, path.parent_path());
    if (spec.name.empty()) spec.name = model_path.stem().string();
    return spec;
  } catch (const Error& e) {
    throw Error(path.string() + ": " + e.what());
  }
}

json to_json(const ModelSpec& spec) {
  const InputSpec& i = spec.input;
  json j = {{"name", spec.name},
            {"input",
             {{"name", i.name},
              {"shape", i.shape},
              {"layout", i.layout == Layout::NCHW ? "NCHW" : "NHWC"},
              {"dtype", "float32"},
              {"channel_order", i.channel_order == ChannelOrder::RGB ? "RGB" : "BGR"},
              {"resize", i.resize},
              {"crop", i.crop},
              {"interpolation", i.interpolation},
              {"scale", i.scale},
              {"mean", i.mean},
              {"std", i.std}}},
            {"output",
             {{"name", spec.output.name},
              {"classes", spec.output.classes},
              {"label_offset", spec.output.label_offset},
              {"kind", spec.output.kind == OutputKind::Logits ? "logits" : "probabilities"}}}};
  // Only a raw-tensor input says its kind, so image specs (and the cache keys made from them)
  // stay as they were.
  if (i.raw_tensor) j["input"]["kind"] = "tensor";
  if (spec.output.class_names) j["output"]["class_names"] = spec.output.class_names->string();
  for (const auto& [format, source] : spec.sources) {
    j["sources"][format] = {{"file", source.file.string()}};
    if (!source.architecture.empty()) j["sources"][format]["architecture"] = source.architecture;
  }
  return j;
}

std::vector<std::string> load_class_names(const OutputSpec& spec) {
  std::vector<std::string> names;
  if (!spec.class_names) return names;
  std::ifstream in(*spec.class_names);
  if (!in) throw Error("cannot read class names from " + spec.class_names->string());
  for (std::string line; std::getline(in, line);) names.push_back(line);
  return names;
}

}  // namespace deltann
