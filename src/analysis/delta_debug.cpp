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

Set without(const Set& set, const Set& chunk) {
  Set rest;
  std::set_difference(set.begin(), set.end(), chunk.begin(), chunk.end(), std::back_inserter(rest));
  return rest;
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

// QuickXplain (Junker 2004): the smallest part X of `candidates` such that the property holds
// with `background` + X, when adding items never breaks it; `added` is what was last added to the
// background (nothing to test when empty). About 2k log2(n/k) tests for k of n items.
Set quick_explain(const Set& background, const Set& added, const Set& candidates, Oracle& holds) {
  if (!added.empty() && holds(background)) return {};
  if (candidates.size() == 1) return candidates;
  const std::vector<Set> halves = split(candidates, 2);
  const Set second = quick_explain(joined_sets(background, halves[0]), halves[0], halves[1], holds);
  const Set first = quick_explain(joined_sets(background, second), second, halves[0], holds);
  return joined_sets(first, second);
}

// ddmin from a set known to hold: needs no monotonicity, but O(n^2) tests at worst.
Set ddmin(Set current, Oracle& holds) {
  size_t parts = 2;
  while (current.size() >= 2) {
    const std::vector<Set> chunks = split(current, parts);
    bool reduced = false;
    for (const Set& chunk : chunks)
      if (holds(chunk)) {
        current = chunk;
        parts = 2;
        reduced = true;
        break;
      }
    // With two parts a complement is the other chunk, already asked about.
    if (!reduced && parts > 2)
      for (const Set& chunk : chunks)
        if (Set rest = without(current, chunk); holds(rest)) {
          current = std::move(rest);
          parts = std::max<size_t>(parts - 1, 2);
          reduced = true;
          break;
        }
    if (reduced) continue;
    if (parts >= current.size()) break;  // single items and no complement holds: 1-minimal
    parts = std::min(parts * 2, current.size());
  }
  return current;
}

// Drops single items from a set that holds while it still holds, until none can be dropped. After
// a drop every item is asked about again: without monotonicity, one that was needed in the larger
// set may not be in the smaller one.
Set one_minimal(Set current, Oracle& holds) {
  for (size_t i = 0; i < current.size();) {
    Set less = current;
    less.erase(less.begin() + static_cast<std::ptrdiff_t>(i));
    if (holds(less)) {
      current = std::move(less);
      i = 0;
    } else {
      ++i;
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
  // QuickXplain first: few tests when keeping more layers in float never hurts, as is usual. When
  // its answer does not hold (the property is not monotone on this model), ddmin, which needs no
  // such assumption. Either way the set is checked to be 1-minimal.
  Set found = quick_explain({}, {}, all, oracle);
  if (!oracle(found)) found = ddmin(all, oracle);
  result.found = one_minimal(std::move(found), oracle);
  return result;
}

}  // namespace deltann
