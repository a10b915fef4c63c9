// How a campaign with --jobs N deals the machine's cores out to its concurrent jobs.
#include "run/job_slots.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

#include "deltann/error.h"

namespace deltann {
namespace {

using Slots = std::vector<std::vector<int>>;

TEST(JobSlots, DealsCoresOutInContiguousGroupsTheFirstOnesLarger) {
  EXPECT_EQ(split_cores({0, 1}, 2), (Slots{{0}, {1}}));
  EXPECT_EQ(split_cores({0, 1, 2, 3, 4}, 2), (Slots{{0, 1, 2}, {3, 4}}));
  EXPECT_EQ(split_cores({2, 5, 7}, 1), (Slots{{2, 5, 7}}));
  EXPECT_EQ(split_cores({0, 1, 2, 3, 4, 5, 6}, 3), (Slots{{0, 1, 2}, {3, 4}, {5, 6}}));
}

TEST(JobSlots, RefusesMoreJobsThanCoresAndNoJobs) {
  try {
    split_cores({0, 1}, 3);
    FAIL() << "3 jobs on 2 cores were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--jobs 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2 cores"), std::string::npos) << e.what();
  }
  EXPECT_THROW(split_cores({0, 1}, 0), Error);
}

// A thread pinned to one of the cores it may use stays there; other threads keep theirs.
TEST(JobSlots, PinsOnlyTheCallingThread) {
  const std::vector<int> before = allowed_cores();
  ASSERT_FALSE(before.empty());
  std::vector<int> inside;
  std::thread pinned([&] {
    pin_this_thread({before.back()});
    inside = allowed_cores();
  });
  pinned.join();
  EXPECT_EQ(inside, std::vector<int>{before.back()});
  EXPECT_EQ(allowed_cores(), before);
}

TEST(JobSlots, RefusingToPinNamesTheCores) {
  std::string message;
  std::thread pinned([&] {
    try {
      pin_this_thread({CPU_SETSIZE - 1});  // no machine here has that many cores
    } catch (const Error& e) {
      message = e.what();
    }
  });
  pinned.join();
  EXPECT_NE(message.find(std::to_string(CPU_SETSIZE - 1)), std::string::npos) << message;
}

}  // namespace
}  // namespace deltann
