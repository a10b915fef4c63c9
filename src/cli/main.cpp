#include <algorithm>
#include <filesystem>
#include <iostream>
#include <utility>
#include <vector>

#include "deltann/error.h"
#include "deltann/text.h"
#include "deltann/version.h"
#include "run/locate.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

// The registered verbs. A function's static, so that it exists before the first registration,
// whichever file's constants are initialised first.
std::vector<std::pair<int, AddVerb>>& registered_verbs() {
  static std::vector<std::pair<int, AddVerb>> verbs;
  return verbs;
}

}  // namespace

VerbRegistration::VerbRegistration(int rank, AddVerb add) {
  registered_verbs().emplace_back(rank, add);
}

void add_verbs(CLI::App& app) {
  auto verbs = registered_verbs();
  std::sort(verbs.begin(), verbs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [rank, add] : verbs) add(app);
}

}  // namespace deltann::cli

int main(int argc, char** argv) {
  deltann::export_tool_environment();
  CLI::App app{
      "deltann: differential testing of image-recognition models across engines and settings"};
  app.set_version_flag("--version", deltann::kVersion);
  app.require_subcommand(1);
  deltann::cli::add_verbs(app);
  // Messages name files, images and layers, whose names may hold control characters.
  const auto say = [](const std::string& text) {
    std::cerr << "deltann: " << deltann::terminal_safe_lines(text) << '\n';
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every usage error exits 2, whatever CLI11's own code for it.
    return app.exit(e) == 0 ? 0 : deltann::cli::kExitUsage;
  } catch (const deltann::cli::NegativeAnswer& e) {
    say(e.what());
    return deltann::cli::kExitNegative;
  } catch (const deltann::Error& e) {
    say(e.what());
    return deltann::cli::kExitError;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path that could not be read where no code expected it: its name and the plain reason.
    say(deltann::describe(e));
    return deltann::cli::kExitError;
  } catch (const std::exception& e) {
    say(std::string("unexpected error: ") + e.what());
    return deltann::cli::kExitError;
  }
  return 0;
}
