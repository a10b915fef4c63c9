#include "worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "deltann/error.h"
#include "protocol.h"

extern char** environ;

namespace deltann {
namespace {

constexpr size_t kLogTail = 4096;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

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

}  // namespace

WorkerProcess::WorkerProcess(const std::filesystem::path& program,
                             const std::vector<std::string>& args) {
  // A worker that dies while we write to it must not kill the campaign with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw Error(std::string("cannot create pipes for a worker: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<std::string> argv_storage{program.string()};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = ::posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_fd_ = in[1];
  out_fd_ = out[0];
  err_fd_ = err[0];
  if (rc != 0) {
    pid_ = -1;
    close_fd(in_fd_);
    close_fd(out_fd_);
    close_fd(err_fd_);
    throw Error("cannot start worker " + program.string() + ": " + std::strerror(rc));
  }
}

WorkerProcess::~WorkerProcess() {
  close_fd(in_fd_);
  if (pid_ > 0 && !exit_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  close_fd(out_fd_);
  close_fd(err_fd_);
}

bool WorkerProcess::send(const nlohmann::json& request) {
  const std::string line =
      request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(in_fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

void WorkerProcess::drain_stderr() {
  char buffer[4096];
  const ssize_t n = ::read(err_fd_, buffer, sizeof buffer);
  if (n <= 0) {
    close_fd(err_fd_);
    return;
  }
  err_tail_.append(buffer, static_cast<size_t>(n));
  if (err_tail_.size() > kLogTail) err_tail_.erase(0, err_tail_.size() - kLogTail);
}

std::optional<nlohmann::json> WorkerProcess::receive(double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    const auto newline = out_buffer_.find('\n');
    if (newline != std::string::npos) {
      const std::string line = out_buffer_.substr(0, newline);
      out_buffer_.erase(0, newline + 1);
      if (auto reply = protocol::parse_reply_line(line)) return reply;
      // An engine that prints to stdout breaks the protocol line; keep it as log and go on.
      err_tail_ += "[stdout] " + line + "\n";
      continue;
    }
    if (out_fd_ < 0) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      hung_ = true;
      if (pid_ > 0) ::kill(pid_, SIGKILL);
      return std::nullopt;
    }
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    const int ready =
        ::poll(fds, err_fd_ >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR)
      throw Error(std::string("poll failed: ") + std::strerror(errno));
    if (err_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) drain_stderr();
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char buffer[65536];
      const ssize_t n = ::read(out_fd_, buffer, sizeof buffer);
      if (n > 0)
        out_buffer_.append(buffer, static_cast<size_t>(n));
      else if (n == 0 || errno != EINTR)
        close_fd(out_fd_);
    }
  }
}

WorkerExit WorkerProcess::finish() {
  if (exit_) return *exit_;
  close_fd(in_fd_);
  int status = 0;
  if (pid_ > 0) {
    // Give a worker that is shutting down a moment, then make sure it is gone.
    for (int i = 0; i < 50 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(20000);
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  while (err_fd_ >= 0) drain_stderr();
  WorkerExit e;
  if (hung_) {
    e = {"hang", "no reply before the timeout; killed"};
  } else if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    e.detail = signal_name(sig);
    e.symptom = sig == SIGABRT ? "abort" : sig == SIGKILL ? "killed" : "crash";
    if (sig == SIGKILL) e.detail += " (from outside; often the out-of-memory killer)";
  } else {
    e = {"exit", "exit code " + std::to_string(WEXITSTATUS(status))};
  }
  exit_ = e;
  return e;
}

std::string WorkerProcess::log_tail() const { return err_tail_; }

std::optional<nlohmann::json> load_worker(WorkerProcess& worker,
                                          const std::filesystem::path& artifact,
                                          const std::string& env, const nlohmann::json& spec,
                                          double timeout_s) {
  if (!worker.receive(timeout_s)) return std::nullopt;  // the ready line
  worker.send({{"op", "load"}, {"artifact", artifact.string()}, {"env", env}, {"spec", spec}});
  return worker.receive(timeout_s);
}

LoadedWorker::LoadedWorker(const std::filesystem::path& program,
                           const std::filesystem::path& artifact, const std::string& env,
                           const nlohmann::json& spec, double timeout_s)
    : worker_(program, {"--serve"}), env_(env), timeout_s_(timeout_s) {
  const auto loaded = load_worker(worker_, artifact, env, spec, timeout_s);
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
  throw Error(env_ + ": " + stage + " failed (" + exit.symptom + ", " + exit.detail + ")" +
              (log.empty() ? "" : "; engine log: " + log));
}

nlohmann::json describe_worker(const std::filesystem::path& program, double timeout_s) {
  WorkerProcess worker(program, {"--describe"});
  auto reply = worker.receive(timeout_s);
  const WorkerExit exit = worker.finish();
  if (!reply)
    throw Error(program.string() + " --describe failed (" + exit.symptom + ", " + exit.detail +
                "): " + worker.log_tail());
  return *reply;
}

}  // namespace deltann
