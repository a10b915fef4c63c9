#include "openvino_options.h"

#include <openvino/runtime/properties.hpp>

#include <algorithm>
#include <cctype>

#include "deltann/error.h"

namespace deltann::openvino {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

std::string device_knob(const std::string& ov_device) { return lower(ov_device); }

std::string ov_device(const std::string& device_knob) { return upper(device_knob); }

std::vector<std::string> supported_precisions(const ov::Core& core, const std::string& device) {
  const auto capabilities = core.get_property(device, ov::device::capabilities);
  std::vector<std::string> precisions{"f32"};
  if (contains(capabilities, ov::device::capability::BF16)) precisions.push_back("bf16");
  // Without "FP16" the CPU plugin accepts an f16 hint but runs bf16 or f32 instead, so offering
  // f16 there would label one computation with the name of another.
  if (contains(capabilities, ov::device::capability::FP16)) precisions.push_back("f16");
  return precisions;
}

// Every precision is a valid value; those the CPU cannot run are marked unavailable, so that a
// campaign naming bf16 on a CPU without it skips that variant with the reason and runs the rest.
Knob precision_knob(const ov::Core& core) {
  const auto supported = supported_precisions(core, "CPU");
  Knob knob{"precision",
            {"f32", "bf16", "f16"},
            "f32",
            "ov::hint::inference_precision; lower precisions only where the CPU supports them",
            false,
            {}};
  for (const auto& value : knob.values)
    if (!contains(supported, value))
      knob.unavailable[value] = "OpenVINO's CPU plugin does not report " + value +
                                " support on this CPU (it would silently run another precision)";
  return knob;
}

std::vector<Knob> knobs(const ov::Core& core, const std::vector<std::string>& devices) {
  // gpu and npu are valid values everywhere, so that a campaign naming them on a machine without
  // one records the variant as skipped (device absent) rather than refusing the whole command.
  std::vector<std::string> device_values{"cpu", "gpu", "npu"};
  for (const auto& d : devices)
    if (!contains(device_values, d)) device_values.push_back(d);
  return {
      {"opt",
       {"default"},
       "default",
       "OpenVINO has no optimisation levels: the plugin always runs its full graph transformation "
       "pipeline"},
      {"device", device_values, "cpu", "OpenVINO device plugin (cpu; gpu/npu where present)"},
      precision_knob(core),
      {"threads", {}, "1", "ov::inference_num_threads"},
      {"hint",
       {"latency", "throughput"},
       "latency",
       "ov::hint::performance_mode (throughput splits the threads into streams; one synchronous "
       "request uses one stream)"},
      // Compiled for exactly N images: a short last batch is padded (docs/ENVIRONMENTS.md).
      batch_knob(),
  };
}

ov::element::Type precision_type(const std::string& precision) {
  if (precision == "bf16") return ov::element::bf16;
  if (precision == "f16") return ov::element::f16;
  return ov::element::f32;
}

ov::AnyMap compile_properties(const ov::Core& core, const Environment& env) {
  const std::string device = ov_device(env.knob("device", "cpu"));
  const std::string precision = env.knob("precision", "f32");
  const auto supported = supported_precisions(core, device);
  if (!contains(supported, precision)) {
    std::string valid;
    for (const auto& p : supported) valid += (valid.empty() ? "" : ", ") + p;
    throw Error("precision '" + precision + "' is not supported by OpenVINO device " + device +
                " here; it supports: " + valid);
  }
  const auto mode = env.knob("hint", "latency") == "throughput"
                        ? ov::hint::PerformanceMode::THROUGHPUT
                        : ov::hint::PerformanceMode::LATENCY;
  ov::AnyMap properties{ov::hint::inference_precision(precision_type(precision)),
                        ov::hint::performance_mode(mode)};
  // Only the CPU plugin takes a thread count; other plugins refuse the property.
  if (device == "CPU")
    properties.insert(ov::inference_num_threads(std::stoi(env.knob("threads", "1"))));
  return properties;
}

}  // namespace deltann::openvino
