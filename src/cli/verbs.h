// Each verb of the `deltann` command registers its options and its action here.
#pragma once

#include <stdexcept>

#include <CLI/CLI.hpp>

namespace deltann::cli {

// Exit statuses, the same for every verb (README.md, "Exit codes"): 0 success, 1 an error (no
// answer), 2 a usage error, and kExitNegative when a verb ran to the end and its answer is the one
// a pipeline stops on: `check` failed a variant, `localize` or `bisect` found that A and B
// diverge, `run` got a result from no variant.
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNegative = 3;

// Thrown by a verb whose answer is negative after it printed its output; main() prints the
// message and exits kExitNegative.
class NegativeAnswer : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void add_run(CLI::App& app);
void add_compare(CLI::App& app);
void add_backends(CLI::App& app);
void add_report(CLI::App& app);
void add_export(CLI::App& app);
void add_check(CLI::App& app);
void add_localize(CLI::App& app);
void add_bisect(CLI::App& app);

}  // namespace deltann::cli
