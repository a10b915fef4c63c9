// The advisory lock beside a campaign database (db_lock.h).
#include "deltann/db_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;
using test::message_of;

// flock(2) locks belong to open file descriptions: a second lock in the same process conflicts
// like one from another process.
TEST(DatabaseLock, SecondHolderIsRefusedWithTheFirstNamed) {
  test::TempDir dir;
  const auto db = dir / "c.db";
  DatabaseLock first(db, "deltann run", false);
  const std::string message = message_of<Error>([&] { DatabaseLock second(db, "x", false); });
  EXPECT_TRUE(Contains(message, db.string()));
  EXPECT_TRUE(Contains(message, "pid " + std::to_string(::getpid())));
  EXPECT_TRUE(Contains(message, "deltann run"));
  EXPECT_TRUE(Contains(message, "--wait"));
}

TEST(DatabaseLock, ReleasedWhenTheHolderEnds) {
  test::TempDir dir;
  const auto db = dir / "c.db";
  { DatabaseLock first(db, "deltann run", false); }
  DatabaseLock again(db, "deltann run", false);
  EXPECT_TRUE(std::filesystem::exists(DatabaseLock::path_for(db)));
}

// The kernel drops the lock of a process killed with SIGKILL: nothing of it lingers.
TEST(DatabaseLock, ReleasedWhenTheHolderIsKilled) {
  test::TempDir dir;
  const auto db = dir / "c.db";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    DatabaseLock held(db, "child", false);
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  EXPECT_THROW(DatabaseLock(db, "parent", false), Error);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  DatabaseLock mine(db, "parent", false);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(DatabaseLock, WaiterIsToldAndGetsTheLockWhenFree) {
  test::TempDir dir;
  const auto db = dir / "c.db";
  int ready[2], release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Holds the lock until the parent, already waiting, says so.
    DatabaseLock held(db, "child", false);
    char byte = 1;
    [[maybe_unused]] auto n = ::write(ready[1], &byte, 1);
    n = ::read(release[0], &byte, 1);
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  std::string told;
  DatabaseLock mine(db, "parent", true, [&](const std::string& line) {
    told = line;
    [[maybe_unused]] const auto n = ::write(release[1], &byte, 1);
  });
  EXPECT_TRUE(Contains(told, "waiting for pid " + std::to_string(child)));
  ::waitpid(child, nullptr, 0);
  for (int fd : {ready[0], ready[1], release[0], release[1]}) ::close(fd);
}

TEST(DatabaseLock, UncreatableLockFileIsAnError) {
  test::TempDir dir;
  const auto db = dir / "no-such-folder" / "c.db";
  EXPECT_TRUE(Contains(message_of<Error>([&] { DatabaseLock lock(db, "x", false); }),
                       "cannot create the lock file"));
}

}  // namespace
}  // namespace deltann
