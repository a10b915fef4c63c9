#include <sched.h>

#include <algorithm>
#include <charconv>
#include <thread>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "deltann/text.h"

namespace deltann {
namespace {

// The members of a '+'-joined subset in the order the knob lists them, so that `A+B` and `B+A`
// are one variant; "none" is the empty set.
std::string canonical_subset(const Knob& knob, const std::string& value, const std::string& where) {
  if (value == "none") return value;
  std::vector<bool> chosen(knob.values.size(), false);
  size_t start = 0;
  while (start <= value.size()) {
    const size_t end = std::min(value.find('+', start), value.size());
    const std::string item = value.substr(start, end - start);
    const auto at = std::find(knob.values.begin(), knob.values.end(), item);
    if (at == knob.values.end())
      throw Error(where + "knob '" + knob.name + "' has no member '" + item +
                  "'; valid members: " + joined(knob.values, ", ") + " (join with '+', or none)");
    if (chosen[static_cast<size_t>(at - knob.values.begin())])
      throw Error(where + "knob '" + knob.name + "' names '" + item + "' twice");
    chosen[static_cast<size_t>(at - knob.values.begin())] = true;
    start = end + 1;
  }
  std::vector<std::string> ordered;
  for (size_t i = 0; i < chosen.size(); ++i)
    if (chosen[i]) ordered.push_back(knob.values[i]);
  return joined(ordered, "+");
}

}  // namespace

nlohmann::json to_json(const BackendInfo& info) {
  nlohmann::json knobs = nlohmann::json::array();
  for (const auto& k : info.knobs) {
    knobs.push_back({{"name", k.name},
                     {"values", k.values},
                     {"default", k.default_value},
                     {"help", k.help},
                     {"subset", k.subset}});
    if (!k.unavailable.empty()) knobs.back()["unavailable"] = k.unavailable;
    if (k.omit_default) knobs.back()["omit_default"] = true;
    if (k.integer) knobs.back()["integer"] = true;
    if (!k.environment.empty()) knobs.back()["environment"] = k.environment;
  }
  nlohmann::json j = {
      {"name", info.name},       {"version", info.version}, {"description", info.description},
      {"devices", info.devices}, {"knobs", knobs},          {"formats", info.formats}};
  for (const auto& [knob, table] : info.each)
    j["each"][knob] = {{"by", table.by}, {"members", table.members}};
  return j;
}

Knob knob_from_json(const nlohmann::json& k) {
  return {k.at("name").get<std::string>(),
          k.at("values").get<std::vector<std::string>>(),
          k.at("default").get<std::string>(),
          k.value("help", ""),
          k.value("subset", false),
          k.value("unavailable", std::map<std::string, std::string>{}),
          k.value("omit_default", false),
          k.value("integer", false),
          k.value("environment", std::map<std::string, std::vector<std::string>>{})};
}

std::vector<std::string> worker_environment(const BackendInfo& info, const Environment& env) {
  std::vector<std::string> entries;
  for (const auto& knob : info.knobs) {
    const auto value = env.knobs.find(knob.name);
    if (value == env.knobs.end()) continue;
    const auto wanted = knob.environment.find(value->second);
    if (wanted != knob.environment.end())
      entries.insert(entries.end(), wanted->second.begin(), wanted->second.end());
  }
  return entries;
}

BackendInfo backend_info_from_json(const nlohmann::json& j) {
  BackendInfo info;
  info.name = j.at("name").get<std::string>();
  info.version = j.at("version").get<std::string>();
  info.description = j.value("description", "");
  info.devices = j.at("devices").get<std::vector<std::string>>();
  info.formats = j.value("formats", std::vector<std::string>{});
  for (const auto& k : j.at("knobs")) info.knobs.push_back(knob_from_json(k));
  if (j.contains("each"))
    for (const auto& [knob, table] : j.at("each").items())
      info.each[knob] = {
          table.at("by").get<std::string>(),
          table.at("members").get<std::map<std::string, std::vector<std::string>>>()};
  return info;
}

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int max_threads() { return kThreadsPerCore * usable_cores(); }

void check_input_shape(const std::string& input_name, const std::vector<int64_t>& model_shape,
                       const InputSpec& spec) {
  bool fits = model_shape.size() == spec.shape.size();
  for (size_t d = 0; fits && d < model_shape.size(); ++d)
    fits = model_shape[d] < 0 || model_shape[d] == spec.shape[d];
  if (fits) return;
  std::string model_text = "[";
  for (size_t d = 0; d < model_shape.size(); ++d)
    model_text += (d ? "," : "") + (model_shape[d] < 0 ? "?" : std::to_string(model_shape[d]));
  model_text += "]";
  // The layout names the usual slip: an NCHW spec for an NHWC (TFLite) model or the other way.
  const std::string layout = spec.raw_tensor               ? ""
                             : spec.layout == Layout::NHWC ? " (NHWC)"
                                                           : " (NCHW)";
  throw Error("model input '" + input_name + "' has shape " + model_text + " but the spec says " +
              shape_text(spec.shape) + layout);
}

size_t batch_size(const Environment& env) {
  const std::string value = env.knob("batch", "1");
  try {
    const long n = std::stol(value);
    if (n > 0) return static_cast<size_t>(n);
  } catch (const std::exception&) {
  }
  throw Error("batch=" + value + " is not a positive integer");
}

Knob batch_knob() {
  // Left out of canonical strings at 1, so variants stored before it keep their names.
  return {"batch", {}, "1", "images per engine call: a batch's time is divided among its images",
          false,   {}, true};
}

Environment resolve_environment(const Environment& env, const BackendInfo& info) {
  Environment resolved = env;
  const std::string where = "environment '" + env.to_string() + "': ";
  for (const auto& [key, value] : env.knobs) {
    // Named by an init-capture: clang before 16 cannot capture a structured binding.
    const auto knob = std::find_if(info.knobs.begin(), info.knobs.end(),
                                   [&name = key](const Knob& k) { return k.name == name; });
    if (knob == info.knobs.end()) {
      std::string valid;
      for (const auto& k : info.knobs) valid += (valid.empty() ? "" : ", ") + k.name;
      throw Error(where + info.name + " has no knob '" + key + "'; its knobs are: " + valid);
    }
    if (knob->subset) {
      resolved.knobs[key] = canonical_subset(*knob, value, where);
    } else if (knob->values.empty() ||
               (knob->integer &&
                std::find(knob->values.begin(), knob->values.end(), value) == knob->values.end())) {
      // Engines read it as an int; a value too large for one is as invalid as zero.
      int number = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
      const bool positive = !value.empty() &&
                            value.find_first_not_of("0123456789") == std::string::npos &&
                            ec == std::errc() && end == value.data() + value.size() && number > 0;
      if (!positive)
        throw Error(where + "knob '" + key + "' must be " +
                    (knob->values.empty() ? "" : "one of " + joined(knob->values, ", ") + " or ") +
                    "a positive integer, not '" + value + "'");
      if (key == "threads" && number > max_threads())
        throw Error(where + "threads=" + value + ": must be 1.." + std::to_string(max_threads()) +
                    " on this machine (" + std::to_string(kThreadsPerCore) + "x its " +
                    std::to_string(usable_cores()) + " cores)");
    } else if (std::find(knob->values.begin(), knob->values.end(), value) == knob->values.end()) {
      std::string valid;
      for (const auto& v : knob->values) valid += (valid.empty() ? "" : ", ") + v;
      throw Error(where + "knob '" + key + "' of " + info.name + " cannot be '" + value +
                  "'; valid values: " + valid);
    }
  }
  for (const auto& knob : info.knobs) {
    if (!knob.omit_default && !resolved.knobs.count(knob.name))
      resolved.knobs[knob.name] = knob.default_value;
    // Naming the default explicitly gives the same variant as leaving it out.
    if (knob.omit_default && resolved.knob(knob.name) == knob.default_value)
      resolved.knobs.erase(knob.name);
  }
  for (const auto& knob : info.knobs)
    if (const auto it = knob.unavailable.find(resolved.knob(knob.name));
        it != knob.unavailable.end())
      throw Unsupported(where + knob.name + "=" + it->first +
                        " cannot run on this machine: " + it->second);
  const std::string device = resolved.knob("device");
  if (std::find(info.devices.begin(), info.devices.end(), device) == info.devices.end()) {
    std::string valid;
    for (const auto& d : info.devices) valid += (valid.empty() ? "" : ", ") + d;
    throw Unsupported(where + "device=" + device + " cannot run on this machine: " + info.name +
                      " finds no such device here (available: " + valid + ")");
  }
  return resolved;
}

std::optional<std::vector<std::string>> each_members(const BackendInfo& info,
                                                     const std::string& knob,
                                                     const Environment& env) {
  const auto table = info.each.find(knob);
  if (table == info.each.end()) return std::nullopt;
  std::string by = env.knob(table->second.by);
  for (const auto& k : info.knobs)
    if (by.empty() && k.name == table->second.by) by = k.default_value;
  const auto row = table->second.members.find(by);
  if (row == table->second.members.end()) return std::nullopt;
  return row->second;
}

}  // namespace deltann
