// Running a command-line tool to its end and keeping what it said: `nvidia-smi` for a node's
// GPUs, `sbatch` and `scancel` for a cluster. An argument vector, never a shell string.
#pragma once

#include <string>
#include <vector>

namespace deltann {

struct ProgramRun {
  bool started = false;    // false: it could not be started (not found, not executable)
  bool timed_out = false;  // it ran past its time and was killed
  int exit_code = -1;      // its exit status; -1 when it did not exit by itself (a signal)
  std::string out;         // its standard output
  std::string err;         // the end of its standard error (at most 64 KiB)
  bool ok() const { return started && !timed_out && exit_code == 0; }
  // Why it did not succeed, in a few words: "not found", "exit code 1", "timed out after 20 s".
  std::string failure() const;
};

// Starts `argv[0]` (looked up in PATH when it has no '/') with `argv` and deltann's environment,
// reads its output and error until it ends, and kills it after `timeout_s` seconds.
ProgramRun run_program(const std::vector<std::string>& argv, double timeout_s);

}  // namespace deltann
