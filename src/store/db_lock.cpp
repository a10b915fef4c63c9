#include "deltann/db_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "deltann/error.h"

namespace deltann {
namespace {

// Who holds the lock, as its holder wrote it into the file.
std::string holder_of(int fd) {
  char text[512] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  std::string holder = n > 0 ? std::string(text, static_cast<size_t>(n)) : "";
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  return holder.empty() ? "another process" : holder;
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&t, &local);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

}  // namespace

std::filesystem::path DatabaseLock::path_for(const std::filesystem::path& db) {
  return db.string() + ".lock";
}

DatabaseLock::DatabaseLock(const std::filesystem::path& db, const std::string& purpose, bool wait,
                           const std::function<void(const std::string&)>& waiting) {
  const std::filesystem::path path = path_for(db);
  fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd_.valid())
    throw Error("cannot create the lock file " + path.string() + ": " + std::strerror(errno));
  while (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) {
      const int e = errno;
      throw Error("cannot lock " + path.string() + ": " + std::strerror(e));
    }
    const std::string holder = holder_of(fd_.get());
    if (!wait) {
      throw Error(db.string() + " is in use by " + holder +
                  "; wait for it to finish (or pass --wait), or give another --db");
    }
    if (waiting) waiting("waiting for " + holder + " to finish with " + db.string());
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (const int e = errno; e != EINTR)
        throw Error("cannot lock " + path.string() + ": " + std::strerror(e));
    break;
  }
  const std::string me =
      "pid " + std::to_string(::getpid()) + " (" + purpose + ", since " + now_text() + ")\n";
  if (::ftruncate(fd_.get(), 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(fd_.get(), me.data(), me.size(), 0);
  }
}

// Closing the last descriptor (fd_, a UniqueFd) releases the flock.
DatabaseLock::~DatabaseLock() = default;

}  // namespace deltann
