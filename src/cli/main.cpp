#include <filesystem>
#include <iostream>

#include "deltann/error.h"
#include "deltann/version.h"
#include "verbs.h"

int main(int argc, char** argv) {
  CLI::App app{
      "deltann: differential testing of image-recognition models across engines and settings"};
  app.set_version_flag("--version", deltann::kVersion);
  app.require_subcommand(1);
  deltann::cli::add_run(app);
  deltann::cli::add_compare(app);
  deltann::cli::add_backends(app);
  deltann::cli::add_report(app);
  deltann::cli::add_export(app);
  deltann::cli::add_check(app);
  deltann::cli::add_localize(app);
  deltann::cli::add_bisect(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every usage error exits 2, whatever CLI11's own code for it.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const deltann::Error& e) {
    std::cerr << "deltann: " << e.what() << '\n';
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path that could not be read where no code expected it: its name and the plain reason.
    std::cerr << "deltann: " << deltann::describe(e) << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "deltann: unexpected error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
