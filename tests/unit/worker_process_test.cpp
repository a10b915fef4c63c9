// WorkerProcess's guard: exit statuses pass through it unchanged, and the program's whole process
// group (grandchildren included) ends when the program does, when it hangs, and when the process
// that started it dies by SIGKILL, where no handler of that process runs. And the tools' scratch
// folders: those of runs that are gone are removed.
#include "run/worker_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "deltann/error.h"
#include "run/builder.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::ScopedEnv;

const fs::path kShell = "/bin/sh";

// A process that has not ended: it exists and is not a zombie (an orphan's zombie may wait a
// while for its reaper).
bool running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// Whether `pid` ends within a few seconds.
bool ends_soon(pid_t pid) {
  for (int i = 0; i < 250; ++i) {
    if (!running(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A shell that starts a grandchild `sleep`, replies {"pids": [shell pid, sleep pid]} (a reply is
// a JSON object) and waits for it.
const std::vector<std::string> kShellWithGrandchild = {
    "-c", "sleep 300 & echo \"{\\\"pids\\\": [$$, $!]}\"; wait"};

WorkerExit exit_of(const std::string& script) {
  WorkerProcess process(kShell, {"-c", script});
  return process.finish();
}

TEST(WorkerProcess, ExitCodePassesThroughTheGuard) {
  const WorkerExit e = exit_of("exit 3");
  EXPECT_EQ(e.symptom, FailureSymptom::exit);
  EXPECT_EQ(e.detail, "exit code 3");
  EXPECT_EQ(exit_of("exit 0").detail, "exit code 0");
}

TEST(WorkerProcess, DeathBySignalPassesThroughTheGuard) {
  const WorkerExit crash = exit_of("kill -SEGV $$");
  EXPECT_EQ(crash.symptom, FailureSymptom::crash);
  EXPECT_EQ(crash.detail, "SIGSEGV");
  EXPECT_EQ(exit_of("kill -ABRT $$").symptom, FailureSymptom::abort);
  EXPECT_EQ(exit_of("kill -KILL $$").symptom, FailureSymptom::killed);
}

TEST(WorkerProcess, ProgramThatCannotStartIsAnError) {
  try {
    WorkerProcess process("/nonexistent/deltann-worker-none", {"--serve"});
    FAIL() << "started a program that does not exist";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start worker /nonexistent/deltann-worker-none"),
              std::string::npos)
        << e.what();
  }
}

TEST(WorkerProcess, RepliesAndLogArriveThroughThePipes) {
  WorkerProcess process(kShell, {"-c", "read line; echo \"$line\"; echo oops >&2"});
  ASSERT_TRUE(process.send({{"op", "echo"}}));
  const auto reply = process.receive(10);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->value("op", ""), "echo");
  EXPECT_EQ(process.finish().detail, "exit code 0");
  EXPECT_EQ(process.log_tail(), "oops\n");
}

TEST(WorkerProcess, EndlessLineWithoutNewlineIsKilledNotBuffered) {
  WorkerProcess process(kShell, {"-c", "echo '{\"op\": \"first\"}'; tr -d '\\n' < /dev/zero"});
  const auto first = process.receive(10);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->value("op", ""), "first");
  EXPECT_FALSE(process.receive(60).has_value());
  EXPECT_FALSE(process.hung());
  const WorkerExit e = process.finish();
  EXPECT_EQ(e.symptom, FailureSymptom::error);
  EXPECT_NE(e.detail.find("256 MiB"), std::string::npos) << e.detail;
}

TEST(WorkerProcess, StdoutNoiseKeptAsLogIsBounded) {
  WorkerProcess process(
      kShell, {"-c",
               "i=0; while [ $i -lt 2000 ]; do echo 'not a reply, just noise'; i=$((i+1)); "
               "done; echo '{\"op\": \"done\"}'"});
  const auto reply = process.receive(30);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->value("op", ""), "done");
  EXPECT_LE(process.log_tail().size(), 4096u);
  EXPECT_NE(process.log_tail().find("[stdout] not a reply"), std::string::npos);
}

TEST(WorkerProcess, NothingTheProgramStartedOutlivesIt) {
  WorkerProcess process(kShell, {"-c", "sleep 300 & echo \"{\\\"pids\\\": [$$, $!]}\""});
  const auto reply = process.receive(10);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(process.finish().detail, "exit code 0");
  EXPECT_TRUE(ends_soon(reply->at("pids").at(1).get<pid_t>())) << "the background sleep survived";
}

TEST(WorkerProcess, HangKillsTheWholeGroup) {
  WorkerProcess process(kShell, kShellWithGrandchild);
  const auto reply = process.receive(10);
  ASSERT_TRUE(reply.has_value());
  EXPECT_FALSE(process.receive(0.2).has_value());
  EXPECT_TRUE(process.hung());
  EXPECT_EQ(process.finish().symptom, FailureSymptom::hang);
  EXPECT_FALSE(running(reply->at("pids").at(0).get<pid_t>())) << "the shell survived";
  EXPECT_TRUE(ends_soon(reply->at("pids").at(1).get<pid_t>())) << "the grandchild sleep survived";
}

TEST(WorkerProcess, ScratchFolderIsTheProgramsTmpdir) {
  const fs::path scratch =
      fs::temp_directory_path() / ("deltann-scratch-" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  WorkerProcess process(kShell, {"-c", "echo \"{\\\"tmpdir\\\": \\\"$TMPDIR\\\"}\""}, scratch);
  const auto reply = process.receive(10);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->value("tmpdir", ""), scratch.string());
  EXPECT_EQ(process.finish().detail, "exit code 0");
  EXPECT_TRUE(fs::exists(scratch)) << "removed although its owner lives";
  fs::remove_all(scratch);
}

// The starter (standing in for deltann) runs in a forked process that leads its own process
// group, is killed by `sig` once the program's grandchild runs (sent to its whole group with
// `to_group`, as a terminal sends Ctrl-C), and must take the program, the grandchild and the
// scratch folder with it. The program records in `interrupted` a SIGINT that reaches it.
void check_death_of_the_starter_ends_everything(int sig, bool to_group = false) {
  const fs::path scratch =
      fs::temp_directory_path() /
      ("deltann-scratch-" + std::to_string(::getpid()) + "-" + std::to_string(sig));
  const fs::path interrupted = scratch.string() + ".interrupted";
  fs::create_directories(scratch);
  fs::remove(interrupted);
  const std::vector<std::string> program = {
      "-c", "trap 'echo > " + interrupted.string() + "' INT; " + kShellWithGrandchild[1]};
  std::ofstream(scratch / "partial.so") << "half an artifact";
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t starter = ::fork();
  ASSERT_GE(starter, 0);
  if (starter == 0) {
    ::setpgid(0, 0);
    ::close(report[0]);
    try {
      WorkerProcess process(kShell, program, scratch);
      const auto reply = process.receive(10);
      const std::string text =
          reply ? reply->value("pids", nlohmann::json()).dump() + "\n" : "none\n";
      (void)!::write(report[1], text.data(), text.size());
      if (reply) ::pause();
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(report[1]);
  char buffer[128] = {};
  ssize_t n = 0;
  for (ssize_t r; n < static_cast<ssize_t>(sizeof buffer) - 1 &&
                  (r = ::read(report[0], buffer + n, sizeof buffer - 1 - n)) > 0;) {
    n += r;
    if (buffer[n - 1] == '\n') break;
  }
  ::close(report[0]);
  const auto pids =
      nlohmann::json::parse(std::string(buffer, static_cast<size_t>(n)), nullptr, false);
  if (!pids.is_array()) {
    // Never leave the starter behind: it holds the test runner's output pipe open.
    ::kill(starter, SIGKILL);
    ::waitpid(starter, nullptr, 0);
  }
  ASSERT_TRUE(pids.is_array()) << "the starter reported: " << buffer;
  const pid_t shell = pids.at(0).get<pid_t>(), sleeper = pids.at(1).get<pid_t>();
  if (!running(shell) || !running(sleeper)) {
    ::kill(starter, SIGKILL);
    ::waitpid(starter, nullptr, 0);
    FAIL() << "the program or its child ended before the starter was killed";
  }
  ::kill(to_group ? -starter : starter, sig);
  int status = 0;
  ::waitpid(starter, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig);
  EXPECT_TRUE(ends_soon(shell)) << "the program survived its starter";
  EXPECT_TRUE(ends_soon(sleeper)) << "the program's child survived its starter";
  for (int i = 0; i < 250 && fs::exists(scratch); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(fs::exists(scratch)) << "the scratch folder of a dead starter was left behind";
  EXPECT_FALSE(fs::exists(interrupted)) << "the starter's SIGINT reached the program";
  fs::remove_all(scratch);
  fs::remove(interrupted);
}

TEST(WorkerProcess, EnvironmentEntriesReplaceInheritedOnesAndAddNewOnes) {
  // HOME is normally inherited, DELTANN_TEST_ADDED never is.
  WorkerProcess process(
      kShell,
      {"-c", "echo \"{\\\"home\\\": \\\"$HOME\\\", \\\"added\\\": \\\"$DELTANN_TEST_ADDED\\\"}\""},
      {}, {"HOME=/replaced", "DELTANN_TEST_ADDED=yes"});
  const auto reply = process.receive(10);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->value("home", ""), "/replaced");
  EXPECT_EQ(reply->value("added", ""), "yes");
  EXPECT_EQ(process.finish().detail, "exit code 0");
}

TEST(RunTool, ToolsRunWithTheirPackageFolderFirstOnPythonPath) {
  const ScopedEnv tools("DELTANN_TOOLS_DIR", "/opt/deltann/python/deltann_tools/");
  {
    const ScopedEnv inherited("PYTHONPATH", "/elsewhere");
    EXPECT_EQ(tools_python_path(), "/opt/deltann/python:/elsewhere");
  }
  const ScopedEnv none("PYTHONPATH", nullptr);
  EXPECT_EQ(tools_python_path(), "/opt/deltann/python");
}

TEST(WorkerProcess, SigkillOfTheStarterEndsTheProgramAndItsChildren) {
  check_death_of_the_starter_ends_everything(SIGKILL);
}

TEST(WorkerProcess, SigtermOfTheStarterEndsTheProgramAndItsChildren) {
  check_death_of_the_starter_ends_everything(SIGTERM);
}

TEST(WorkerProcess, CtrlCEndsTheStarterButDoesNotReachTheProgram) {
  check_death_of_the_starter_ends_everything(SIGINT, /*to_group=*/true);
}

TEST(ScratchDir, RemovesTheFoldersOfRunsThatAreGone) {
  const fs::path cache =
      fs::temp_directory_path() / ("deltann-scratch-cache-" + std::to_string(::getpid()));
  fs::remove_all(cache);
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const fs::path of_gone = cache / "tmp" / (std::to_string(gone) + "-abcdef");
  const fs::path of_running = cache / "tmp" / (std::to_string(::getppid()) + "-abcdef");
  fs::create_directories(of_gone / "partial");
  fs::create_directories(of_running);
  fs::path made;
  {
    const ScratchDir scratch(cache);
    made = scratch.path();
    EXPECT_TRUE(fs::is_directory(made));
    EXPECT_EQ(made.parent_path(), cache / "tmp");
    EXPECT_FALSE(fs::exists(of_gone)) << "the folder of a run that is gone was kept";
    EXPECT_TRUE(fs::exists(of_running)) << "the folder of a running process was removed";
  }
  EXPECT_FALSE(fs::exists(made)) << "a scratch folder outlived its ScratchDir";
  fs::remove_all(cache);
}

}  // namespace
}  // namespace deltann
