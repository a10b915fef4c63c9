// Delta debugging over a set of items, here the quantised layers of a model (docs/PRECISION.md):
// a small set that, kept at full precision, makes a property hold again. The search is pure; the
// caller says, for a set, whether the property holds.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace deltann {

// One tried set, in the order the sets were tried.
struct DeltaDebugTest {
  std::vector<size_t> set;  // item indices, ascending
  bool holds = false;
};

enum class DeltaDebugOutcome {
  kHoldsWithoutAny,  // the property holds with the empty set: nothing to find
  kNotRestorable,    // it fails even with every item: no subset can make it hold
  kMinimal,          // `found` is a 1-minimal set: it holds, and it fails without any one item
};
const char* to_string(DeltaDebugOutcome outcome);

struct DeltaDebugResult {
  DeltaDebugOutcome outcome = DeltaDebugOutcome::kMinimal;
  std::vector<size_t> found;          // ascending; empty unless kMinimal
  std::vector<DeltaDebugTest> tests;  // every distinct set asked about, in order
};

// `holds(set)` answers whether the property holds with exactly `set` (indices into the n items,
// ascending). Each distinct set is asked about at most once.
//
// First the empty set (when the property already holds there is nothing to search) and the full
// set (when it fails there, no subset helps), as Polygraphy's precision bisection does. Then
// QuickXplain (Junker 2004): recursive halving that finds a smallest set in about 2k log2(n/k)
// tests when adding items never breaks the property, and a set for which the property holds
// whatever it is. Keeping more layers in float can break a label again (a near-tie tipped the
// other way), so last, items are dropped one at a time while the property still holds, pass after
// pass: the set found is 1-minimal, dropping any one item breaks the property. 1-minimal is not
// smallest; the smallest would take exponentially many tests.
DeltaDebugResult delta_debug(size_t n,
                             const std::function<bool(const std::vector<size_t>&)>& holds);

}  // namespace deltann
