// The verbs of the `deltann` command. Each verb's file (src/cli/<verb>.cpp, compiled into the
// program by CMakeLists.txt's glob) defines a function that adds its subcommand, options and
// action, and registers it with one line:
//
//   const VerbRegistration kRegistered{30, add_report};
//
// The rank orders the verbs in `deltann --help` (workflow order: run, compare, report, ...).
#pragma once

#include <stdexcept>

#include <CLI/CLI.hpp>

namespace deltann::cli {

// Exit statuses, the same for every verb (README.md, "Exit codes"): 0 success, 1 an error (no
// answer), 2 a usage error, and kExitNegative when a verb ran to the end and its answer is the one
// a pipeline stops on: `check` failed a variant, `localize` or `bisect` found that A and B
// diverge, `repair` left B diverging from A, `precision` found no float set that restores the
// labels, `run` got a result from no variant.
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNegative = 3;

// Thrown by a verb whose answer is negative after it printed its output; main() prints the
// message and exits kExitNegative.
class NegativeAnswer : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using AddVerb = void (*)(CLI::App&);

// Registers a verb when the program starts (a namespace-scope constant in the verb's file).
struct VerbRegistration {
  VerbRegistration(int rank, AddVerb add);
};

// Adds every registered verb to `app`, in rank order.
void add_verbs(CLI::App& app);

}  // namespace deltann::cli
