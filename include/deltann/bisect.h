// Compiler-pass bisection (docs/LOCALIZE.md, "Pass bisection"): which of the passes an
// optimisation level runs must be switched off for its output to match a baseline again. The
// search is pure; the caller says, for a set of disabled passes, whether the difference vanished.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace deltann {

// One tried set of disabled passes, in the order they were tried.
struct BisectProbe {
  std::vector<std::string> disabled;  // in the order of the pass list
  bool vanished = false;
};

enum class BisectOutcome {
  kNoPasses,    // the level runs no pass that can be disabled
  kNotPasses,   // disabling every pass leaves the difference: a setting of the level, not a pass
  kSinglePass,  // one pass alone; culprits has one name
  kPassSet,     // no pass alone suffices: a smallest set found (each member needed)
};
const char* to_string(BisectOutcome outcome);

struct BisectResult {
  BisectOutcome outcome = BisectOutcome::kNoPasses;
  std::vector<std::string> culprits;
  std::vector<BisectProbe> probes;  // every distinct set asked about, in order
};

// `vanishes(set)` answers whether disabling exactly `set` (a subset of `passes`, kept in their
// order) makes the difference vanish. Each distinct set is asked about once.
//
// Disabling everything must make it vanish, else kNotPasses. Then halves: the half whose removal
// makes it vanish is searched further, down to one pass. When neither half suffices on its own
// (passes that matter only together), each remaining pass is tried alone, and if none suffices,
// the remaining set is shrunk one pass at a time while it still vanishes, giving a set from which
// no pass can be dropped.
BisectResult bisect_passes(const std::vector<std::string>& passes,
                           const std::function<bool(const std::vector<std::string>&)>& vanishes);

}  // namespace deltann
