// The campaign's side of a worker: a child process started from an argument vector (never a
// shell string), with pipes for the protocol and for the engine's own log.
//
// Every child runs in a process group of its own under a small guard process (a fork of deltann)
// that holds the read end of a "lifeline" pipe whose write end only deltann holds. When deltann
// ends for any reason, SIGKILL included, or gives up on the child (timeout), the pipe breaks and
// the guard kills the child's whole group, grandchildren included (docs/PROTOCOL.md, "Process
// model").
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/outcomes.h"
#include "deltann/unique_fd.h"

namespace deltann {

// How a worker ended, in the words the results use.
struct WorkerExit {
  FailureSymptom symptom = FailureSymptom::exit;  // crash | abort | killed | exit | hang | error
  std::string detail;                             // "SIGSEGV", "exit code 3", ...
};

class WorkerProcess {
 public:
  // Starts `program args...`; throws Error when it cannot be started. With a `scratch` folder, the
  // child's TMPDIR points there and the guard deletes the folder when the lifeline breaks, so that
  // nothing a killed tool was writing stays behind. `env`: `NAME=value` entries the child gets on
  // top of deltann's environment (each replaces an inherited variable of that name).
  WorkerProcess(const std::filesystem::path& program, const std::vector<std::string>& args,
                const std::filesystem::path& scratch = {},
                const std::vector<std::string>& env = {});
  ~WorkerProcess();  // kills the worker's process group if it is still running
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // Sends one request line. Returns false when the worker is gone.
  bool send(const nlohmann::json& request);
  // Waits up to `timeout_s` for the next reply line. Returns nullopt when the worker closed its
  // output (it died), stayed silent past the timeout (then hung() is true and it is killed) or
  // wrote a line longer than any reply without ending it (then it is killed too).
  std::optional<nlohmann::json> receive(double timeout_s);
  bool hung() const { return hung_; }
  // Waits up to `grace_s` for the process to end by itself, then kills its group, and classifies
  // how it ended (the guard ends the way the program did).
  WorkerExit finish(double grace_s = 1);
  // The last few kilobytes the engine wrote to its standard error.
  std::string log_tail() const;

 private:
  void drain_stderr();
  // Appends to the log tail, which keeps the last few kilobytes.
  void keep_log(std::string_view text);
  // Breaks the lifeline: the guard kills the program's process group.
  void kill_group();
  pid_t pid_ = -1;  // the guard's
  UniqueFd in_fd_, out_fd_, err_fd_, lifeline_fd_;
  std::string out_buffer_, err_tail_;
  size_t out_scanned_ = 0;  // how much of out_buffer_ is known to hold no newline
  bool hung_ = false;
  bool oversized_ = false;  // wrote a reply line over the limit, so it was killed
  std::optional<WorkerExit> exit_;
};

// Waits for a freshly started worker's ready line, asks it to load `artifact` for the resolved
// environment `env` and the model spec, and returns its reply to the load (loaded or error).
// nullopt when the worker died or stayed silent first: finish() and log_tail() say why. Throws
// Error when the ready line announces another protocol version (protocol::check_version);
// `program` is the worker's path, for that message.
std::optional<nlohmann::json> load_worker(WorkerProcess& worker,
                                          const std::filesystem::path& program,
                                          const std::filesystem::path& artifact,
                                          const std::string& env, const nlohmann::json& spec,
                                          double timeout_s);

// One worker for a one-off job outside a campaign (localize, bisect): started and loaded in the
// constructor, then driven request by request. Every failure is an Error naming the environment
// and the stage: an error reply as "<env>: <refusal>: <message>", a death or silence as
// "<env>: <stage> failed (<symptom>, <detail>); engine log: ...".
class LoadedWorker {
 public:
  // `worker_env`: `NAME=value` entries the worker starts with (worker_environment()).
  LoadedWorker(const std::filesystem::path& program, const std::filesystem::path& artifact,
               const std::string& env, const nlohmann::json& spec, double timeout_s,
               const std::vector<std::string>& worker_env = {});
  // Sends `message` and returns the reply when its event is `event`.
  nlohmann::json request(const nlohmann::json& message, const std::string& stage,
                         const std::string& event, const std::string& refusal);
  void quit();  // asks the worker to exit and waits for it

 private:
  [[noreturn]] void died(const std::string& stage);
  WorkerProcess worker_;
  std::string env_;
  double timeout_s_;
};

// Runs `program --describe` and returns its JSON; throws Error with its stderr when it fails.
nlohmann::json describe_worker(const std::filesystem::path& program, double timeout_s = 60);

}  // namespace deltann
