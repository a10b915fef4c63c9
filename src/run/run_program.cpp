#include "run_program.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>

#include "deltann/unique_fd.h"

extern char** environ;

namespace deltann {
namespace {

constexpr size_t kErrorTail = 64 * 1024;

struct Pipe {
  UniqueFd read_end, write_end;
};

bool make_pipe(Pipe& p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  p.read_end.reset(fds[0]);
  p.write_end.reset(fds[1]);
  return true;
}

// Reads what is there; false at the end of the stream (or on an error).
bool read_some(int fd, std::string& into) {
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return false;
  into.append(buffer, static_cast<size_t>(n));
  return true;
}

}  // namespace

std::string ProgramRun::failure() const {
  if (!started) return "could not be started (not found or not executable)";
  if (timed_out) return "timed out";
  if (exit_code < 0) return "killed by a signal";
  return exit_code == 0 ? "" : "exit code " + std::to_string(exit_code);
}

ProgramRun run_program(const std::vector<std::string>& argv, double timeout_s) {
  ProgramRun run;
  Pipe out, err;
  if (argv.empty() || !make_pipe(out) || !make_pipe(err)) return run;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.write_end.get(), STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  out.write_end.reset();
  err.write_end.reset();
  if (spawned != 0) return run;
  run.started = true;

  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(std::ceil(timeout_s * 1000)));
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out.read_end.get() : -1, POLLIN, 0},
                     {err_open ? err.read_end.get() : -1, POLLIN, 0}};
    const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (out_open && fds[0].revents) out_open = read_some(out.read_end.get(), run.out);
    if (err_open && fds[1].revents) {
      err_open = read_some(err.read_end.get(), run.err);
      if (run.err.size() > kErrorTail) run.err.erase(0, run.err.size() - kErrorTail);
    }
  }
  if (run.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

}  // namespace deltann
