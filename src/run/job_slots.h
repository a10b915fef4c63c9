// Where a campaign's concurrent jobs run: with --jobs N the cores this process may use are dealt
// out to N job slots, so that each variant's worker (which inherits the affinity of the thread
// that starts it) keeps to cores of its own instead of competing for one (docs/ANALYSIS.md,
// "Concurrent outputs, serial timing").
#pragma once

#include <vector>

namespace deltann {

// The cores this process may run on (its affinity mask), in ascending order.
std::vector<int> allowed_cores();

// `cores` dealt out to `jobs` slots in contiguous groups whose sizes differ by at most one (the
// first slots get the larger groups). Throws Error when there are fewer cores than jobs: two jobs
// on one core would take turns, not run at once.
std::vector<std::vector<int>> split_cores(const std::vector<int>& cores, int jobs);

// Restricts the calling thread (and the processes it starts from now on) to `cores`. Throws
// Error naming the cores when the system refuses.
void pin_this_thread(const std::vector<int>& cores);

}  // namespace deltann
