#include "deltann/delta_debug.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace deltann {

const char* to_string(DeltaDebugOutcome outcome) {
  switch (outcome) {
    case DeltaDebugOutcome::kHoldsWithoutAny:
      return "holds_without_any";
    case DeltaDebugOutcome::kNotRestorable:
      return "not_restorable";
    case DeltaDebugOutcome::kMinimal:
      return "minimal";
  }
  return "unknown";
}

namespace {

using Set = std::vector<size_t>;

// `set` cut into `parts` contiguous chunks of near-equal size (the first ones one larger).
std::vector<Set> split(const Set& set, size_t parts) {
  std::vector<Set> chunks;
  size_t begin = 0;
  for (size_t i = 0; i < parts; ++i) {
    const size_t size = set.size() / parts + (i < set.size() % parts ? 1 : 0);
    chunks.emplace_back(set.begin() + static_cast<std::ptrdiff_t>(begin),
                        set.begin() + static_cast<std::ptrdiff_t>(begin + size));
    begin += size;
  }
  return chunks;
}

// Asks the caller once per distinct set and records every answer in order.
class Oracle {
 public:
  Oracle(const std::function<bool(const Set&)>& holds, std::vector<DeltaDebugTest>& tests)
      : holds_(holds), tests_(tests) {}
  bool operator()(const Set& set) {
    if (const auto it = answers_.find(set); it != answers_.end()) return it->second;
    const bool answer = holds_(set);
    answers_.emplace(set, answer);
    tests_.push_back({set, answer});
    return answer;
  }

 private:
  const std::function<bool(const Set&)>& holds_;
  std::vector<DeltaDebugTest>& tests_;
  std::map<Set, bool> answers_;
};

Set joined_sets(const Set& a, const Set& b) {
  Set both;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return both;
}

// QuickXplain (Junker 2004): a part X of `candidates` such that the property holds with
// `background` + X, called when it holds with `background` + `candidates`; the smallest such part
// when adding items never breaks the property. `added` is what was last added to the background
// (nothing to test when empty). About 2k log2(n/k) tests for k of n items.
Set quick_explain(const Set& background, const Set& added, const Set& candidates, Oracle& holds) {
  if (!added.empty() && holds(background)) return {};
  if (candidates.size() == 1) return candidates;
  const std::vector<Set> halves = split(candidates, 2);
  const Set second = quick_explain(joined_sets(background, halves[0]), halves[0], halves[1], holds);
  const Set first = quick_explain(joined_sets(background, second), second, halves[0], holds);
  return joined_sets(first, second);
}

// Drops single items from a set that holds while it still holds, pass after pass until a whole
// pass drops none: every item of the result is then needed. (Without monotonicity an item needed
// in a larger set may not be needed in a smaller one, hence the further passes.)
Set one_minimal(Set current, Oracle& holds) {
  for (bool dropped = true; dropped;) {
    dropped = false;
    for (size_t i = 0; i < current.size();) {
      Set less = current;
      less.erase(less.begin() + static_cast<std::ptrdiff_t>(i));
      if (holds(less)) {
        current = std::move(less);  // and ask about the item now at i
        dropped = true;
      } else {
        ++i;
      }
    }
  }
  return current;
}

}  // namespace

DeltaDebugResult delta_debug(size_t n,
                             const std::function<bool(const std::vector<size_t>&)>& holds) {
  DeltaDebugResult result;
  Oracle oracle(holds, result.tests);
  if (oracle({})) {
    result.outcome = DeltaDebugOutcome::kHoldsWithoutAny;
    return result;
  }
  Set all(n);
  std::iota(all.begin(), all.end(), size_t{0});
  if (!oracle(all)) {
    result.outcome = DeltaDebugOutcome::kNotRestorable;
    return result;
  }
  result.outcome = DeltaDebugOutcome::kMinimal;
  // QuickXplain's answer holds whatever the property (each call returns a part X of its
  // candidates such that background + X holds, given that background + candidates does); it is
  // minimal only when the property is monotone, hence the 1-minimal pass.
  result.found = one_minimal(quick_explain({}, {}, all, oracle), oracle);
  return result;
}

}  // namespace deltann
