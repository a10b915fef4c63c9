// How deltann's knobs for OpenVINO map onto OpenVINO devices and compile properties
// (docs/OPENVINO.md). Kept apart from the session code so the mapping reads in one place.
#pragma once

#include <openvino/runtime/core.hpp>

#include <string>
#include <vector>

#include "deltann/backend.h"
#include "deltann/environment.h"

namespace deltann::openvino {

// deltann's device name for an OpenVINO device: "CPU" -> "cpu", "GPU.1" -> "gpu.1".
std::string device_knob(const std::string& ov_device);
// OpenVINO's device name for a deltann device value: "gpu.1" -> "GPU.1".
std::string ov_device(const std::string& device_knob);

// The precisions `device` can run, in deltann's names, f32 first: bf16 only where the plugin's
// optimisation capabilities list "BF16", f16 only where they list "FP16".
std::vector<std::string> supported_precisions(const ov::Core& core, const std::string& ov_device);

// The knobs of this engine on this machine (precision values depend on the CPU).
std::vector<Knob> knobs(const ov::Core& core, const std::vector<std::string>& devices);

// compile_model properties for a resolved environment. Throws Error for a precision the device
// does not support (a device other than the CPU, whose precisions the knob list does not cover).
ov::AnyMap compile_properties(const ov::Core& core, const Environment& env);

// The element type OpenVINO reports for a deltann precision value.
ov::element::Type precision_type(const std::string& precision);

}  // namespace deltann::openvino
