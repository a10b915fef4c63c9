// An advisory lock beside a campaign database (`<db>.lock`, flock(2)): one process at a time runs
// engines into a database, so that two campaigns never time their variants while competing for
// the CPU, nor run the same variants twice. The kernel releases the lock when its holder exits in
// any way, SIGKILL included; the file itself stays (removing it would race with a waiter).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "deltann/unique_fd.h"

namespace deltann {

class DatabaseLock {
 public:
  // Takes the lock for `purpose` (e.g. "deltann run"). When another process holds it: throws
  // Error naming that process, or, with `wait`, tells `waiting` so once and blocks until it is
  // free. Throws Error when the lock file cannot be created.
  DatabaseLock(const std::filesystem::path& db, const std::string& purpose, bool wait,
               const std::function<void(const std::string&)>& waiting = {});
  ~DatabaseLock();
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

  static std::filesystem::path path_for(const std::filesystem::path& db);

 private:
  UniqueFd fd_;
};

}  // namespace deltann
