#include "job_slots.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "deltann/error.h"

namespace deltann {

std::vector<int> allowed_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0)
    throw Error(std::string("cannot read this process's CPU affinity: ") + std::strerror(errno));
  std::vector<int> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cores.push_back(cpu);
  return cores;
}

std::vector<std::vector<int>> split_cores(const std::vector<int>& cores, int jobs) {
  if (jobs < 1) throw Error("--jobs must be at least 1");
  if (static_cast<size_t>(jobs) > cores.size())
    throw Error("--jobs " + std::to_string(jobs) + " asks for more variants at a time than the " +
                std::to_string(cores.size()) + " cores this process may use");
  std::vector<std::vector<int>> slots(static_cast<size_t>(jobs));
  const size_t base = cores.size() / slots.size();
  const size_t larger = cores.size() % slots.size();  // slots that get one core more
  size_t next = 0;
  for (size_t slot = 0; slot < slots.size(); ++slot) {
    const size_t size = base + (slot < larger ? 1 : 0);
    slots[slot].assign(cores.begin() + static_cast<std::ptrdiff_t>(next),
                       cores.begin() + static_cast<std::ptrdiff_t>(next + size));
    next += size;
  }
  return slots;
}

void pin_this_thread(const std::vector<int>& cores) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string list;
  for (int cpu : cores) {
    CPU_SET(cpu, &set);
    list += (list.empty() ? "" : ",") + std::to_string(cpu);
  }
  // 0: the calling thread (Linux affinity is per thread); processes forked by it inherit it.
  if (::sched_setaffinity(0, sizeof(set), &set) != 0)
    throw Error("cannot run a job on cores " + list + ": " + std::strerror(errno));
}

}  // namespace deltann
