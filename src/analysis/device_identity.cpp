#include "device_identity.h"

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "deltann/text.h"

namespace deltann {
using nlohmann::json;

namespace {

// "node1 (AMD EPYC)": enough to tell two machines apart in a line.
std::string machine_name(const HostIdentity& host) {
  std::string text = host.host.empty() ? "unnamed host" : host.host;
  if (!host.cpu_model.empty()) text += " (" + host.cpu_model + ")";
  return text;
}

std::string machines(const DeviceIdentity& d) {
  if (!d.host) return "not recorded";
  std::vector<std::string> names = {machine_name(*d.host)};
  for (const auto& other : d.other_hosts) names.push_back(machine_name(other));
  return joined(names, " + ");
}

bool same_machines(const DeviceIdentity& a, const DeviceIdentity& b) {
  if (a.host.has_value() != b.host.has_value()) return false;
  if (!a.host) return true;
  if (!a.host->same_machine(*b.host) || a.other_hosts.size() != b.other_hosts.size()) return false;
  for (size_t i = 0; i < a.other_hosts.size(); ++i)
    if (!a.other_hosts[i].same_machine(b.other_hosts[i])) return false;
  return true;
}

std::string or_none(const std::string& text) { return text.empty() ? "none" : text; }

}  // namespace

std::string DeviceIdentity::accelerator() const {
  if (const auto it = hardware.find("opencl_device"); it != hardware.end()) {
    const auto platform = hardware.find("opencl_platform");
    return it->second + (platform == hardware.end() ? "" : " [" + platform->second + "]");
  }
  if (device.rfind("cuda", 0) == 0 && host) {
    std::vector<std::string> names;
    for (const auto& gpu : host->gpus) names.push_back(gpu.name + " (driver " + gpu.driver + ")");
    return names.empty() ? "no GPU recorded" : joined(names, ", ");
  }
  return "";
}

std::string DeviceIdentity::isa_in_effect() const {
  if (isa != "native") return isa;
  return host && !host->isa_level.empty() ? "native (" + host->isa_level + ")" : "native";
}

std::string DeviceIdentity::summary() const {
  std::string text =
      host ? (host->cpu_model.empty() ? "unknown CPU" : host->cpu_model) : "machine not recorded";
  text += ", isa " + isa_in_effect() + ", device " + device;
  if (const std::string acc = accelerator(); !acc.empty()) text += ": " + acc;
  if (!other_hosts.empty())
    text += "; ran on " + std::to_string(1 + other_hosts.size()) + " machines";
  return text;
}

std::vector<std::string> device_differences(const DeviceIdentity& a, const DeviceIdentity& b) {
  std::vector<std::string> out;
  if (a.isa_in_effect() != b.isa_in_effect())
    out.push_back("isa " + a.isa_in_effect() + " vs " + b.isa_in_effect());
  if (a.device != b.device) out.push_back("device " + a.device + " vs " + b.device);
  if (a.accelerator() != b.accelerator())
    out.push_back("accelerator " + or_none(a.accelerator()) + " vs " + or_none(b.accelerator()));
  if (!same_machines(a, b)) out.push_back("machine " + machines(a) + " vs " + machines(b));
  return out;
}

DeviceIdentity device_identity(const std::map<std::string, std::string>& knobs,
                               const std::string& info_json) {
  DeviceIdentity d;
  if (const auto it = knobs.find("isa"); it != knobs.end()) d.isa = it->second;
  if (const auto it = knobs.find("device"); it != knobs.end()) d.device = it->second;
  if (info_json.empty()) {
    d.note = "machine not recorded: the variant never loaded";
    return d;
  }
  const json info = json::parse(info_json, nullptr, false);
  if (!info.is_object()) {
    d.note = "the stored load reply is not a JSON object";
    return d;
  }
  try {
    if (const auto it = info.find("hardware"); it != info.end() && it->is_object())
      for (const auto& [key, value] : it->items())
        d.hardware[key] = value.is_string() ? value.get<std::string>() : value.dump();
    const auto host = info.find("host");
    if (host == info.end()) {
      d.note = "machine not recorded: stored by a deltann from before it was";
      return d;
    }
    d.host = host_identity_from_json(*host);
    if (const auto it = info.find("other_hosts"); it != info.end() && it->is_array())
      for (const auto& other : *it) d.other_hosts.push_back(host_identity_from_json(other));
  } catch (const Error& e) {
    d.note = std::string("the stored machine cannot be read: ") + e.what();
  }
  return d;
}

}  // namespace deltann
