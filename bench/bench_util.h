// Small helpers shared by the benchmark programs: statistics over samples, a command-line reader
// and table formatting. Header-only; nothing here is part of deltann itself.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace deltann::bench {

// Linear interpolation between closest ranks (NumPy's default), the method `deltann compare`
// uses, so medians printed here read the same way as the campaign summary's.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const auto hi = static_cast<size_t>(std::ceil(rank));
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

inline double median(const std::vector<double>& values) { return percentile(values, 50); }

inline std::string fixed(double value, int digits) {
  if (std::isnan(value)) return "-";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

// `--name value` options with defaults; `--help` prints them. Unknown options are an error.
class Options {
 public:
  Options(std::string program, std::string summary)
      : program_(std::move(program)), summary_(std::move(summary)) {}

  void add(const std::string& name, const std::string& fallback, const std::string& help) {
    order_.push_back(name);
    values_[name] = fallback;
    help_[name] = help;
  }

  // Returns false when the program should exit (after --help, or on a bad argument: `status`).
  bool parse(int argc, char** argv, int& status) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage(std::cout);
        status = 0;
        return false;
      }
      std::string name = arg, value;
      const bool has_equals = arg.find('=') != std::string::npos;
      if (has_equals) {
        name = arg.substr(0, arg.find('='));
        value = arg.substr(arg.find('=') + 1);
      }
      if (name.rfind("--", 0) != 0 || !values_.count(name.substr(2))) {
        std::cerr << program_ << ": unknown option '" << arg << "'\n";
        usage(std::cerr);
        status = 2;
        return false;
      }
      if (!has_equals) {
        if (i + 1 >= argc) {
          std::cerr << program_ << ": option " << name << " needs a value\n";
          status = 2;
          return false;
        }
        value = argv[++i];
      }
      values_[name.substr(2)] = value;
    }
    return true;
  }

  const std::string& str(const std::string& name) const { return values_.at(name); }
  int integer(const std::string& name, int minimum) const {
    const std::string& text = values_.at(name);
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || text.empty() || value < minimum)
      throw std::runtime_error("--" + name + " must be an integer of at least " +
                               std::to_string(minimum) + " (got '" + text + "')");
    return value;
  }

 private:
  void usage(std::ostream& out) const {
    out << "usage: " << program_ << " [options]\n" << summary_ << "\n\noptions:\n";
    for (const auto& name : order_)
      out << "  --" << name << " " << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ')
          << help_.at(name)
          << (values_.at(name).empty() ? "" : " (default: " + values_.at(name) + ")") << '\n';
  }

  std::string program_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> values_, help_;
};

inline std::string today_utc() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return buffer;
}

// A finished child process as wait4 saw it.
struct Measured {
  int exit_code = -1;
  double wall_s = 0;
  double cpu_s = 0;         // user + system of the child
  double peak_rss_mib = 0;  // the child's ru_maxrss
};

// Runs `args` (an argument vector, no shell) with stdin from /dev/null and stdout and stderr into
// `log`, waits for it and measures it with wait4: wall time, CPU time and peak RSS of the child.
inline Measured run_measured(const std::vector<std::string>& args,
                             const std::filesystem::path& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(error));
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0)
    if (errno != EINTR) throw std::runtime_error(std::string("wait4: ") + std::strerror(errno));
  Measured m;
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
            static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  m.peak_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return m;
}

// The whole content of a (log) file.
inline std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace deltann::bench
