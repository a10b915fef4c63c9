// UniqueFd (unique_fd.h): the descriptor is closed exactly once, by its last owner.
#include "deltann/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <utility>

namespace deltann {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesOnDestruction) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    UniqueFd read(fds[0]), write(fds[1]);
    EXPECT_TRUE(read.valid());
    EXPECT_EQ(read.get(), fds[0]);
  }
  EXPECT_FALSE(is_open(fds[0]));
  EXPECT_FALSE(is_open(fds[1]));
}

TEST(UniqueFd, MoveHandsOverAndResetCloses) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  UniqueFd c = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(c.get(), fds[0]);
  c = std::move(b);  // closes fds[0], holds fds[1]
  EXPECT_FALSE(is_open(fds[0]));
  EXPECT_EQ(c.get(), fds[1]);
  c.reset();
  EXPECT_FALSE(is_open(fds[1]));
  EXPECT_FALSE(c.valid());
}

TEST(UniqueFd, ReleaseGivesUpWithoutClosing) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd write(fds[1]);
  int raw = -1;
  {
    UniqueFd read(fds[0]);
    raw = read.release();
    EXPECT_FALSE(read.valid());
  }
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

}  // namespace
}  // namespace deltann
