// Each verb of the `deltann` command registers its options and its action here.
#pragma once

#include <CLI/CLI.hpp>

namespace deltann::cli {

void add_run(CLI::App& app);
void add_compare(CLI::App& app);
void add_backends(CLI::App& app);
void add_report(CLI::App& app);
void add_export(CLI::App& app);
void add_check(CLI::App& app);
void add_localize(CLI::App& app);
void add_bisect(CLI::App& app);

}  // namespace deltann::cli
