#include "deltann/bisect.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>

namespace deltann {

const char* to_string(BisectOutcome outcome) {
  switch (outcome) {
    case BisectOutcome::kNoPasses:
      return "no_passes";
    case BisectOutcome::kNotPasses:
      return "not_passes";
    case BisectOutcome::kSinglePass:
      return "single_pass";
    case BisectOutcome::kPassSet:
      return "pass_set";
  }
  return "unknown";
}

namespace {

// Asks each distinct set once: builds are the expensive part (a TVM compile per probe), and the
// halving and the fallback can meet the same set.
class Prober {
 public:
  Prober(const std::function<bool(const std::vector<std::string>&)>& vanishes, BisectResult& result)
      : vanishes_(vanishes), result_(result) {}
  bool operator()(const std::vector<std::string>& set) {
    if (const auto known = answers_.find(set); known != answers_.end()) return known->second;
    const bool vanished = vanishes_(set);
    answers_.emplace(set, vanished);
    result_.probes.push_back({set, vanished});
    return vanished;
  }

 private:
  const std::function<bool(const std::vector<std::string>&)>& vanishes_;
  BisectResult& result_;
  std::map<std::vector<std::string>, bool> answers_;
};

}  // namespace

BisectResult bisect_passes(const std::vector<std::string>& passes,
                           const std::function<bool(const std::vector<std::string>&)>& vanishes) {
  BisectResult result;
  if (passes.empty()) return result;
  Prober probe(vanishes, result);
  if (!probe(passes)) {
    result.outcome = BisectOutcome::kNotPasses;
    return result;
  }
  std::vector<std::string> candidates = passes;
  while (candidates.size() > 1) {
    const auto middle = candidates.begin() + static_cast<std::ptrdiff_t>(candidates.size() / 2);
    const std::vector<std::string> first(candidates.begin(), middle),
        second(middle, candidates.end());
    if (probe(first)) {
      candidates = first;
    } else if (probe(second)) {
      candidates = second;
    } else {
      break;  // the passes that matter sit in both halves
    }
  }
  if (candidates.size() == 1) {
    // Reached by halving, so this very set was probed and vanished.
    result.outcome = BisectOutcome::kSinglePass;
    result.culprits = candidates;
    return result;
  }
  for (const auto& pass : candidates)
    if (probe({pass})) {
      result.outcome = BisectOutcome::kSinglePass;
      result.culprits = {pass};
      return result;
    }
  // Drop each pass the difference can do without; what is left is needed as a whole.
  std::vector<std::string> needed = candidates;
  for (const auto& pass : candidates) {
    std::vector<std::string> without;
    std::copy_if(needed.begin(), needed.end(), std::back_inserter(without),
                 [&](const std::string& p) { return p != pass; });
    if (!without.empty() && probe(without)) needed = without;
  }
  result.outcome = needed.size() == 1 ? BisectOutcome::kSinglePass : BisectOutcome::kPassSet;
  result.culprits = needed;
  return result;
}

}  // namespace deltann
