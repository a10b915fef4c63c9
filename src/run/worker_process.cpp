#include "worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "deltann/error.h"
#include "protocol.h"

extern char** environ;

namespace deltann {
namespace {

constexpr size_t kLogTail = 4096;
// The longest reply line accepted. Replies carry output vectors (per-layer captures go through
// files), so a real one is far shorter; a process that writes more without a newline is broken,
// and reading on would grow deltann's memory without bound.
constexpr size_t kMaxReplyLine = size_t{256} << 20;

std::string signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGKILL:
      return "SIGKILL";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(sig);
  }
}

// --- The guard -------------------------------------------------------------------------------
// Everything below runs in a forked copy of deltann, which may have other threads: only
// async-signal-safe system calls, no allocation, no locks. All it needs is prepared before fork().

// Where the guard keeps its two private pipe ends (0, 1 and 2 are the program's standard streams).
constexpr int kLifelineFd = 3;  // read end of the lifeline: EOF means deltann is gone
constexpr int kReportFd = 4;    // write end of the start report: errno when exec fails
// Signals meant for deltann (Ctrl-C, kill, hang-up) must not end the guard before it has cleaned
// up; it ignores them, and gives the program back the dispositions deltann had.
constexpr int kDeltannSignals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
constexpr int kSavedSignals = 5;  // kDeltannSignals and SIGCHLD

struct Launch {
  const char* program;
  char* const* argv;
  char* const* envp;
  char* const* remove_argv;  // {"rm", "-rf", "--", scratch}, or nullptr without a scratch folder
  int in_read, out_write, err_write, lifeline_read, report_write;
  int max_fd;  // the descriptor limit, for closing without close_range (old kernels)
};

[[noreturn]] void report_and_exit(int error) {
  (void)!::write(kReportFd, &error, sizeof error);
  ::_exit(127);
}

void set_disposition(int sig, void (*handler)(int), struct sigaction* saved) {
  struct sigaction action {};
  action.sa_handler = handler;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(sig, &action, saved);
}

// In the grandchild: become the leader of a new process group and exec the program.
[[noreturn]] void exec_program(const Launch& launch, const struct sigaction* saved, pid_t guard) {
  ::setpgid(0, 0);
  // Should the guard itself be killed from outside, the program goes with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != guard) ::_exit(127);
  // What exec would have given it without the guard: ignored stays ignored, the rest default.
  for (int i = 0; i < kSavedSignals; ++i) {
    const int sig = i < kSavedSignals - 1 ? kDeltannSignals[i] : SIGCHLD;
    set_disposition(sig, saved[i].sa_handler == SIG_IGN ? SIG_IGN : SIG_DFL, nullptr);
  }
  ::execve(launch.program, launch.argv, launch.envp);
  report_and_exit(errno);
}

// Waits until the program ends (false) or the lifeline breaks (true). The program is left a
// zombie, so that its pid, and with it its process group id, cannot be reused before killpg.
bool wait_for_end(pid_t child) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  while (true) {
    // Without a pidfd (old kernels), look at the program every 50 ms.
    pollfd fds[2] = {{kLifelineFd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    if (::poll(fds, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 50) > 0 && fds[0].revents != 0) {
      char byte;
      const ssize_t n = ::read(kLifelineFd, &byte, 1);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
    }
    siginfo_t info;
    info.si_pid = 0;
    if (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno != EINTR) return false;
    } else if (info.si_pid == child) {
      return false;
    }
  }
}

void remove_scratch(const Launch& launch) {
  const pid_t rm = ::fork();
  if (rm == 0) {
    ::execve("/bin/rm", launch.remove_argv, launch.envp);
    ::execve("/usr/bin/rm", launch.remove_argv, launch.envp);
    ::_exit(127);
  }
  if (rm > 0)
    while (::waitpid(rm, nullptr, 0) < 0 && errno == EINTR) {
    }
}

// Ends the guard the way the program ended: the same exit code, or death by the same signal, so
// that WorkerProcess::finish classifies a crash, abort or kill as if there were no guard.
[[noreturn]] void exit_like(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    // No core file of the guard: it is a copy of deltann, not what crashed.
    const struct rlimit no_core {};
    ::setrlimit(RLIMIT_CORE, &no_core);
    set_disposition(sig, SIG_DFL, nullptr);
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, sig);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::kill(::getpid(), sig);
    ::_exit(128 + sig);  // a signal that does not terminate by default
  }
  ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

[[noreturn]] void guard_main(const Launch& launch) {
  // A group of its own too: a signal sent to deltann's group (Ctrl-C in a terminal) must not
  // reach the guard or the program, which would otherwise die as a bogus failure.
  ::setpgid(0, 0);
  // Put the program's streams on 0..2 and the guard's pipe ends on 3 and 4 (close-on-exec), then
  // close everything else: the lifeline write ends of deltann and of every other guard included,
  // so that each lifeline's only writer is deltann.
  int fds[] = {launch.in_read, launch.out_write, launch.err_write, launch.lifeline_read,
               launch.report_write};
  for (int& fd : fds)
    if ((fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 10)) < 0) ::_exit(127);
  for (int target = 0; target < 3; ++target) ::dup2(fds[target], target);
  ::dup3(fds[3], kLifelineFd, O_CLOEXEC);
  ::dup3(fds[4], kReportFd, O_CLOEXEC);
  if (::syscall(SYS_close_range, kReportFd + 1, ~0U, 0) != 0)
    for (int fd = kReportFd + 1; fd < launch.max_fd; ++fd) ::close(fd);
  struct sigaction saved[kSavedSignals];
  for (int i = 0; i < kSavedSignals - 1; ++i)
    set_disposition(kDeltannSignals[i], SIG_IGN, &saved[i]);
  set_disposition(SIGCHLD, SIG_DFL, &saved[kSavedSignals - 1]);  // SIG_IGN would reap for us

  const pid_t guard = ::getpid();
  const pid_t child = ::fork();
  if (child == 0) exec_program(launch, saved, guard);
  if (child < 0) report_and_exit(errno);
  ::setpgid(child, child);  // also here, so the group exists before any killpg below
  for (int fd = 0; fd < 3; ++fd) ::close(fd);  // the pipes must close when the program ends
  ::close(kReportFd);

  const bool lifeline_broke = wait_for_end(child);
  ::killpg(child, SIGKILL);  // after a normal end too: nothing it started outlives it
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (lifeline_broke && launch.remove_argv) remove_scratch(launch);
  exit_like(status);
}

int open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 65536;
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20));
}

// The argument vector of execve: pointers into `storage`, ended by nullptr.
std::vector<char*> pointers_to(std::vector<std::string>& storage) {
  std::vector<char*> pointers;
  for (auto& s : storage) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// One pipe: its read end [0] and write end [1], closed on the way out unless handed over.
struct Pipe {
  UniqueFd read, write;
};

// The pipes of one start, closed on the way out unless handed over.
struct Pipes {
  Pipe in, out, err, lifeline, report;
  Pipes() {
    for (Pipe* p : {&in, &out, &err, &lifeline, &report}) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) {
        const int error = errno;
        throw Error(std::string("cannot create pipes for a worker: ") + std::strerror(error));
      }
      p->read.reset(fds[0]);
      p->write.reset(fds[1]);
    }
  }
};

}  // namespace

WorkerProcess::WorkerProcess(const std::filesystem::path& program,
                             const std::vector<std::string>& args,
                             const std::filesystem::path& scratch,
                             const std::vector<std::string>& env) {
  // A worker that dies while we write to it must not kill the campaign with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  Pipes pipes;
  std::vector<std::string> argv_storage{program.string()};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<std::string> remove_storage, overrides = env;
  if (!scratch.empty()) {
    overrides.push_back("TMPDIR=" + scratch.string());
    remove_storage = {"rm", "-rf", "--", scratch.string()};
  }
  // deltann's environment less the variables set here, then those.
  const auto overridden = [&](std::string_view entry) {
    const size_t equals = entry.find('=');
    if (equals == std::string_view::npos) return false;
    const std::string_view name = entry.substr(0, equals + 1);
    return std::any_of(overrides.begin(), overrides.end(),
                       [&](const std::string& o) { return o.starts_with(name); });
  };
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e)
    if (!overridden(*e)) env_storage.emplace_back(*e);
  env_storage.insert(env_storage.end(), overrides.begin(), overrides.end());
  const std::string program_text = program.string();
  auto argv = pointers_to(argv_storage);
  auto envp = pointers_to(env_storage);
  auto remove_argv = pointers_to(remove_storage);
  const Launch launch{.program = program_text.c_str(),
                      .argv = argv.data(),
                      .envp = envp.data(),
                      .remove_argv = scratch.empty() ? nullptr : remove_argv.data(),
                      .in_read = pipes.in.read.get(),
                      .out_write = pipes.out.write.get(),
                      .err_write = pipes.err.write.get(),
                      .lifeline_read = pipes.lifeline.read.get(),
                      .report_write = pipes.report.write.get(),
                      .max_fd = open_file_limit()};
  pid_ = ::fork();
  if (pid_ == 0) guard_main(launch);
  if (pid_ < 0)
    throw Error("cannot start worker " + program_text + ": fork failed: " + std::strerror(errno));
  pipes.report.write.reset();
  in_fd_ = std::move(pipes.in.write);
  out_fd_ = std::move(pipes.out.read);
  err_fd_ = std::move(pipes.err.read);
  lifeline_fd_ = std::move(pipes.lifeline.write);
  // The report pipe closes when the program has been exec'd; before that, an errno means it could
  // not be.
  int error = 0;
  ssize_t n;
  while ((n = ::read(pipes.report.read.get(), &error, sizeof error)) < 0 && errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof error)) {
    kill_group();
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    in_fd_.reset();
    out_fd_.reset();
    err_fd_.reset();
    throw Error("cannot start worker " + program_text + ": " + std::strerror(error));
  }
}

void WorkerProcess::kill_group() { lifeline_fd_.reset(); }

WorkerProcess::~WorkerProcess() {
  in_fd_.reset();
  kill_group();
  if (pid_ > 0 && !exit_) ::waitpid(pid_, nullptr, 0);
  out_fd_.reset();
  err_fd_.reset();
}

bool WorkerProcess::send(const nlohmann::json& request) {
  const std::string line =
      request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(in_fd_.get(), line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

void WorkerProcess::keep_log(std::string_view text) {
  err_tail_.append(text);
  if (err_tail_.size() > kLogTail) err_tail_.erase(0, err_tail_.size() - kLogTail);
}

void WorkerProcess::drain_stderr() {
  char buffer[4096];
  const ssize_t n = ::read(err_fd_.get(), buffer, sizeof buffer);
  if (n <= 0) {
    err_fd_.reset();
    return;
  }
  keep_log(std::string_view(buffer, static_cast<size_t>(n)));
}

std::optional<nlohmann::json> WorkerProcess::receive(double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (!oversized_) {
    // Only the bytes read since the last look can hold the newline: a long line is scanned once.
    const auto newline = out_buffer_.find('\n', out_scanned_);
    out_scanned_ = newline == std::string::npos ? out_buffer_.size() : 0;
    if (newline != std::string::npos) {
      const std::string line = out_buffer_.substr(0, newline);
      out_buffer_.erase(0, newline + 1);
      if (auto reply = protocol::parse_reply_line(line)) return reply;
      // An engine that prints to stdout breaks the protocol line; keep it as log and go on.
      keep_log("[stdout] " + line.substr(0, kLogTail) + "\n");
      continue;
    }
    if (out_buffer_.size() > kMaxReplyLine) {
      oversized_ = true;
      out_buffer_.clear();
      out_scanned_ = 0;
      kill_group();
      return std::nullopt;
    }
    if (!out_fd_.valid()) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      hung_ = true;
      kill_group();
      return std::nullopt;
    }
    pollfd fds[2] = {{out_fd_.get(), POLLIN, 0}, {err_fd_.get(), POLLIN, 0}};
    const int ready =
        ::poll(fds, err_fd_.valid() ? 2 : 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR)
      throw Error(std::string("poll failed: ") + std::strerror(errno));
    if (err_fd_.valid() && (fds[1].revents & (POLLIN | POLLHUP))) drain_stderr();
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char buffer[65536];
      const ssize_t n = ::read(out_fd_.get(), buffer, sizeof buffer);
      if (n > 0)
        out_buffer_.append(buffer, static_cast<size_t>(n));
      else if (n == 0 || errno != EINTR)
        out_fd_.reset();
    }
  }
  return std::nullopt;
}

WorkerExit WorkerProcess::finish(double grace_s) {
  if (exit_) return *exit_;
  in_fd_.reset();
  int status = 0;
  if (pid_ > 0) {
    // Give a process that is shutting down `grace_s`, reading what it still logs so that it cannot
    // block on a full pipe, then make sure it is gone.
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::duration<double>(grace_s);
    pid_t ended;
    while (((ended = ::waitpid(pid_, &status, WNOHANG)) == 0 || (ended < 0 && errno == EINTR)) &&
           Clock::now() < deadline) {
      pollfd log{err_fd_.get(), POLLIN, 0};
      if (::poll(&log, err_fd_.valid() ? 1 : 0, 20) > 0) drain_stderr();
    }
    if (ended <= 0) {
      kill_group();
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  while (err_fd_.valid()) drain_stderr();
  WorkerExit e;
  if (hung_) {
    e = {FailureSymptom::hang, "no reply before the timeout; killed"};
  } else if (oversized_) {
    e = {FailureSymptom::error, "wrote a line of over " + std::to_string(kMaxReplyLine >> 20) +
                                    " MiB to its reply channel; killed"};
  } else if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    e.detail = signal_name(sig);
    e.symptom = sig == SIGABRT   ? FailureSymptom::abort
                : sig == SIGKILL ? FailureSymptom::killed
                                 : FailureSymptom::crash;
    if (sig == SIGKILL) e.detail += " (from outside; often the out-of-memory killer)";
  } else {
    e = {FailureSymptom::exit, "exit code " + std::to_string(WEXITSTATUS(status))};
  }
  exit_ = e;
  return e;
}

std::string WorkerProcess::log_tail() const { return err_tail_; }

std::optional<nlohmann::json> load_worker(WorkerProcess& worker,
                                          const std::filesystem::path& program,
                                          const std::filesystem::path& artifact,
                                          const std::string& env, const nlohmann::json& spec,
                                          double timeout_s) {
  const auto ready = worker.receive(timeout_s);
  if (!ready) return std::nullopt;
  if (ready->value("event", "") == "ready") protocol::check_version(*ready, program.string());
  worker.send({{"op", "load"}, {"artifact", artifact.string()}, {"env", env}, {"spec", spec}});
  return worker.receive(timeout_s);
}

LoadedWorker::LoadedWorker(const std::filesystem::path& program,
                           const std::filesystem::path& artifact, const std::string& env,
                           const nlohmann::json& spec, double timeout_s,
                           const std::vector<std::string>& worker_env)
    : worker_(program, {"--serve"}, {}, worker_env), env_(env), timeout_s_(timeout_s) {
  const auto loaded = load_worker(worker_, program, artifact, env, spec, timeout_s);
  if (!loaded) died("load");
  if (loaded->value("event", "") != "loaded")
    throw Error(env_ + ": load failed: " + loaded->value("message", loaded->dump()));
}

nlohmann::json LoadedWorker::request(const nlohmann::json& message, const std::string& stage,
                                     const std::string& event, const std::string& refusal) {
  worker_.send(message);
  auto reply = worker_.receive(timeout_s_);
  if (!reply) died(stage);
  if (reply->value("event", "") != event)
    throw Error(env_ + ": " + refusal + ": " + reply->value("message", reply->dump()));
  return std::move(*reply);
}

void LoadedWorker::quit() {
  worker_.send({{"op", "quit"}});
  worker_.finish();
}

void LoadedWorker::died(const std::string& stage) {
  const WorkerExit exit = worker_.finish();
  std::string log = worker_.log_tail();
  if (log.size() > 1500) log = "..." + log.substr(log.size() - 1500);
  throw Error(env_ + ": " + stage + " failed (" + std::string(to_string(exit.symptom)) + ", " +
              exit.detail + ")" + (log.empty() ? "" : "; engine log: " + log));
}

nlohmann::json describe_worker(const std::filesystem::path& program, double timeout_s) {
  WorkerProcess worker(program, {"--describe"});
  auto reply = worker.receive(timeout_s);
  const WorkerExit exit = worker.finish();
  if (!reply)
    throw Error(program.string() + " --describe failed (" + std::string(to_string(exit.symptom)) +
                ", " + exit.detail + "): " + worker.log_tail());
  return *reply;
}

}  // namespace deltann
