// `deltann backends`: what each built engine says about itself.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/campaign.h"
#include "run/engine_registry.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

// The conversion steps environments can chain (`tflite@onnx>tflite`), with their tools.
void print_conversions(EngineRegistry& registry) {
  const auto converter = registry.converter();
  if (!converter) return;
  try {
    std::cout << "conversions (environment@from>to...; docs/CONVERSIONS.md)\n";
    for (const auto& step : converter->steps()) {
      std::string knobs;
      for (const auto& k : step.knobs) knobs += (knobs.empty() ? "" : ", ") + k;
      std::cout << "  " << step.name() << "  " << step.tool << " (" << step.tool_version << ")"
                << (knobs.empty() ? "" : "  knobs: " + knobs)
                << (step.unavailable.empty() ? "" : "  unavailable: " + step.unavailable) << '\n';
    }
  } catch (const std::exception& e) {
    std::cout << "  unavailable: " << e.what() << '\n';
  }
}

}  // namespace

void add_backends(CLI::App& app) {
  auto json_output = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("backends", "list the engines this deltann was built with");
  cmd->add_flag("--json", *json_output, "machine-readable output");
  cmd->callback([json_output] {
    EngineRegistry& registry = EngineRegistry::shared(default_worker_dir());
    nlohmann::json all = nlohmann::json::array();
    for (const auto& framework : registry.frameworks()) {
      try {
        all.push_back(registry.worker_description(framework));
      } catch (const std::exception& e) {
        all.push_back({{"name", framework}, {"error", e.what()}});
      }
    }
    if (*json_output) {
      std::cout << all.dump(2) << '\n';
      return;
    }
    for (const auto& j : all) {
      if (j.contains("error")) {
        std::cout << j["name"].get<std::string>()
                  << ": unavailable: " << j["error"].get<std::string>() << "\n\n";
        continue;
      }
      const BackendInfo info = backend_info_from_json(j);
      std::cout << info.name << " " << info.version << " — " << info.description << "\n  devices: ";
      for (size_t i = 0; i < info.devices.size(); ++i)
        std::cout << (i ? ", " : "") << info.devices[i];
      std::cout << "\n  formats: ";
      for (size_t i = 0; i < info.formats.size(); ++i)
        std::cout << (i ? ", " : "") << info.formats[i];
      std::cout << '\n';
      for (const auto& k : info.knobs) {
        std::cout << "  " << k.name << " = ";
        if (k.values.empty()) std::cout << "<positive integer>";
        for (size_t i = 0; i < k.values.size(); ++i) {
          std::cout << (i ? " | " : "") << k.values[i];
          if (k.unavailable.count(k.values[i])) std::cout << " (not here)";
        }
        if (k.integer) std::cout << " | <positive integer>";
        std::cout << "  (default " << k.default_value << ")"
                  << (k.help.empty() ? "" : "  " + k.help) << '\n';
      }
      for (const auto& k : info.knobs)
        for (const auto& [value, why] : k.unavailable)
          std::cout << "  " << k.name << "=" << value << " not here: " << why << '\n';
      std::cout << '\n';
    }
    print_conversions(registry);
  });
}

const VerbRegistration kRegistered{30, add_backends};

}  // namespace deltann::cli
