// `deltann bisect`: which pass of environment B's optimisation level makes B's output differ from
// A's on one image. Each probe is B with a set of passes disabled (its engine's `disable` knob),
// planned and built like a campaign variant and run once (docs/LOCALIZE.md, "Pass bisection").
// Exit 0 when B does not differ from A beyond the tolerance, 3 when it does (whatever the search
// found, so that it can gate a pipeline), 1 for an error, 2 for a usage error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/bisect.h"
#include "deltann/campaign.h"
#include "deltann/compare_tensors.h"
#include "deltann/error.h"
#include "deltann/json_number.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/text.h"
#include "model_verb.h"
#include "run/engine_registry.h"
#include "run/protocol.h"
#include "run/worker_process.h"
#include "verbs.h"

namespace deltann::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kDefaultShare = 0.01;  // default tolerance: 1% of the original difference

struct BisectArgs {
  std::string model, spec, image, a, b, cache;
  std::optional<double> tolerance;
  double timeout_s = 300;
  bool json = false;
};

[[noreturn]] void usage(const std::string& message) {
  throw CLI::ValidationError(message, kExitUsage);
}

std::vector<std::string> split_plus(const std::string& value) {
  std::vector<std::string> items;
  if (value.empty() || value == "none") return items;
  std::stringstream in(value);
  for (std::string item; std::getline(in, item, '+');) items.push_back(item);
  return items;
}

// Runs the image once in the environment's worker (no timing wanted) and returns its output.
std::vector<float> run_once(const PreparedEnvironment& env, const fs::path& image,
                            PreprocessCache& cache, double timeout_s) {
  const fs::path tensor = cache.prepare(image, env.spec.input).tensor_path;
  LoadedWorker worker(env.worker, env.artifact, env.env, to_json(env.spec), timeout_s,
                      env.worker_env);
  const auto result = worker.request({{"op", "run"},
                                      {"image", image.filename().string()},
                                      {"tensor", tensor.string()},
                                      {"first", false},
                                      {"warmup", 0},
                                      {"repeat", 1}},
                                     "run", "result", "run failed");
  worker.quit();
  return protocol::decode_floats(result.at("output").get<std::string>());
}

// The largest |a-b| under the comparator's rules (compare_tensors.h): a NaN on one side only, or
// an infinity against anything else, counts as infinite so that it never "vanishes".
double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b,
                          const std::string& what) {
  if (a.size() != b.size())
    throw Error(what + ": outputs of different lengths (" + std::to_string(a.size()) + " and " +
                std::to_string(b.size()) + ")");
  return compare_tensors(a, b).max_abs;
}

// The passes B's level runs that its `disable` knob can name: a build tool's `each` table (TVM),
// else the worker's own (ONNX Runtime), else every value of the knob.
std::vector<std::string> level_passes(const PreparedEnvironment& b, const fs::path& worker_dir) {
  const EngineEntry& engine = EngineRegistry::shared(worker_dir).engine(b.framework);
  const Knob* disable = engine.knob("disable");
  if (!disable || !disable->subset)
    throw Error("environment '" + b.env + "': " + b.framework +
                " has no `disable` knob, so no pass of it can be switched off; "
                "bisect works with engines that have one (tvm, ort)");
  return engine.each_members("disable", parse_environment(b.env));
}

// Counts the builds a bisection costs, as the campaign code tells of them, and says every event
// as a line.
class BuildCounter final : public MessageLines {
 public:
  BuildCounter() : MessageLines(say) {}
  void on_artifact(const ArtifactEvent& e) override {
    if (e.step == "compile") ++(e.cached ? cached : compiled);
    MessageLines::on_artifact(e);
  }
  int compiled = 0, cached = 0;
};

std::string set_text(const std::vector<std::string>& set, size_t all) {
  if (set.size() == all && all > 1) return "all " + std::to_string(all) + " passes";
  return set.empty() ? "none" : joined(set, "+");
}

std::string number(double value) {
  if (std::isinf(value)) return "inf";
  std::ostringstream out;
  out.precision(4);
  out << value;
  return out.str();
}

// Ends a bisection that printed its result: B differing from A exits kExitNegative.
void exit_on_difference(bool differs, const PreparedEnvironment& a, const PreparedEnvironment& b,
                        double original, double tolerance, const std::string& outcome) {
  if (!differs) return;
  throw NegativeAnswer(b.env + " differs from " + a.env + ": max |B - A| = " + number(original) +
                       " > tolerance " + number(tolerance) + " (" + outcome + ")");
}

// What one bisection found, for the JSON and the text output.
struct Bisection {
  std::string spec_source;
  fs::path image;
  PreparedEnvironment env_a, env_b;
  std::vector<std::string> passes;   // the suspects: B's level's passes B does not disable
  std::vector<std::string> already;  // passes B disables anyway
  double original = 0, tolerance = 0;
  bool differs = false;  // B is farther from A than the tolerance: there is something to bisect
  BisectResult result;
  struct Measured {
    std::string env;
    double max_abs = 0;
  };
  std::map<std::vector<std::string>, Measured> measured;  // by the set of passes disabled
  int compiled = 0, cached = 0;                           // artifacts built, found cached
  double seconds = 0;
  std::string outcome() const { return differs ? to_string(result.outcome) : "no_difference"; }
  // With all suspects disabled, what remains (kNotPasses only).
  double remaining() const {
    return result.outcome == BisectOutcome::kNotPasses ? measured.at(passes).max_abs : 0;
  }
};

Bisection run_bisection(const BisectArgs& a, const CampaignConfig& config, const ModelSpec& spec) {
  Bisection r;
  const auto start = std::chrono::steady_clock::now();
  // The report counts the artifacts compiled and those found cached, since builds are what a
  // bisection costs.
  BuildCounter watch;
  r.env_a = prepare_environment(config, spec, a.a, watch);
  r.env_b = prepare_environment(config, spec, a.b, watch);
  r.passes = level_passes(r.env_b, config.worker_dir);
  // Passes B already disables stay disabled in every probe and are not suspects.
  Environment b_parsed = parse_environment(r.env_b.env);
  r.already = split_plus(b_parsed.knob("disable"));
  std::erase_if(r.passes, [&](const std::string& p) {
    return std::find(r.already.begin(), r.already.end(), p) != r.already.end();
  });

  PreprocessCache cache(config.cache_dir);
  r.image = fs::absolute(a.image);
  const std::vector<float> out_a = run_once(r.env_a, r.image, cache, a.timeout_s);
  const std::vector<float> out_b = run_once(r.env_b, r.image, cache, a.timeout_s);
  r.original = max_abs_difference(out_a, out_b, "A and B");
  if (!a.tolerance && std::isinf(r.original))
    throw Error("B's output differs from A's by NaN or infinity; give --tolerance");
  r.tolerance = a.tolerance ? *a.tolerance : kDefaultShare * r.original;

  r.differs = r.original > r.tolerance && r.original > 0;
  if (r.differs) {
    r.result = bisect_passes(r.passes, [&](const std::vector<std::string>& set) {
      Environment probe = b_parsed;
      std::vector<std::string> disabled = r.already;
      disabled.insert(disabled.end(), set.begin(), set.end());
      probe.knobs["disable"] = disabled.empty() ? "none" : joined(disabled, "+");
      const PreparedEnvironment env = prepare_environment(config, spec, probe.to_string(), watch);
      const double d =
          max_abs_difference(out_a, run_once(env, r.image, cache, a.timeout_s), env.env);
      r.measured[set] = {env.env, d};
      say("probe: disable " + set_text(set, r.passes.size()) + ": max |d| = " + number(d) +
          (d <= r.tolerance ? " (vanished)" : ""));
      return d <= r.tolerance;
    });
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.compiled = watch.compiled;
  r.cached = watch.cached;
  return r;
}

json bisection_json(const BisectArgs& a, const CampaignConfig& config, const Bisection& r) {
  json probes = json::array();
  for (const auto& p : r.result.probes)
    probes.push_back({{"disabled", p.disabled},
                      {"env", r.measured.at(p.disabled).env},
                      {"max_abs", json_number(r.measured.at(p.disabled).max_abs)},
                      {"vanished", p.vanished}});
  json j = {{"model", fs::absolute(config.model).string()},
            {"spec", r.spec_source},
            {"image", r.image.string()},
            {"a", r.env_a.env},
            {"b", r.env_b.env},
            {"original_max_abs", json_number(r.original)},
            {"tolerance", json_number(r.tolerance)},
            {"tolerance_default", !a.tolerance.has_value()},
            {"passes", r.passes},
            {"already_disabled", r.already},
            {"outcome", r.outcome()},
            {"culprits", r.result.culprits},
            {"probes", probes},
            {"builds", r.compiled},
            {"cached_builds", r.cached},
            {"seconds", r.seconds}};
  if (r.result.outcome == BisectOutcome::kNotPasses)
    j["remaining_max_abs"] = json_number(r.remaining());
  return j;
}

// The verdict line of a bisection that had something to bisect.
std::string outcome_text(const Bisection& r) {
  switch (r.result.outcome) {
    case BisectOutcome::kNoPasses:
      return "B's level runs no pass that can be disabled: not caused by a pass\n";
    case BisectOutcome::kNotPasses:
      return "not caused by one of these passes: with all of them disabled, max |d| = " +
             number(r.remaining()) +
             " remains (a setting of B's level that is not a pass, such as TVM opt=4's "
             "fast-math, or a pass that cannot be disabled)\n";
    case BisectOutcome::kSinglePass:
      return "culprit: " + r.result.culprits.front() +
             " (disabling it alone brings B within the tolerance of A)\n";
    case BisectOutcome::kPassSet:
      return "culprits, needed together: " + joined(r.result.culprits, ", ") +
             " (no one of them alone suffices; none of them can be left out)\n";
  }
  return "";
}

std::string bisection_text(const BisectArgs& a, const Bisection& r) {
  std::ostringstream text;
  text << "A: " << r.env_a.env << "\nB: " << r.env_b.env << "\nspec " << r.spec_source << "\nimage "
       << a.image << ": max |B - A| = " << number(r.original)
       << "; vanishes at max |d| <= " << number(r.tolerance) << (a.tolerance ? "" : " (1% of it)")
       << "\n";
  if (!r.differs) {
    text << "B does not differ from A on this image beyond the tolerance: nothing to bisect\n";
  } else {
    text << "passes of B's level that can be disabled (" << r.passes.size()
         << "): " << (r.passes.empty() ? "none" : joined(r.passes, ", ")) << "\n";
    for (size_t i = 0; i < r.result.probes.size(); ++i) {
      const auto& p = r.result.probes[i];
      text << "  probe " << i + 1 << ": disable " << set_text(p.disabled, r.passes.size())
           << ": max |d| = " << number(r.measured.at(p.disabled).max_abs)
           << (p.vanished ? "  vanished" : "") << "\n";
    }
    text << outcome_text(r);
  }
  text << r.result.probes.size() << " probes, " << r.compiled << " builds (" << r.cached
       << " cached), took " << std::lround(r.seconds * 1000) << " ms\n";
  return text.str();
}

void execute(const CLI::App& cmd, BisectArgs& a) {
  if (!cmd.remaining().empty()) usage("unexpected argument '" + cmd.remaining().front() + "'");
  if (a.model.empty() || a.image.empty() || a.a.empty() || a.b.empty())
    usage("--model M.onnx, --image IMG, --a ENV and --b ENV are required");
  if (a.tolerance && !(*a.tolerance >= 0)) usage("--tolerance must not be negative");
  if (a.timeout_s <= 0) usage("--timeout must be positive");

  const CampaignConfig config = model_config(a.model, a.spec, a.cache, a.timeout_s);
  if (!fs::is_regular_file(config.model))
    throw Error("model file " + config.model.string() + " does not exist");
  if (!fs::is_regular_file(a.image)) throw Error("image " + a.image + " does not exist");
  const ModelSpec spec = load_spec_saying_default(config);

  Bisection r = run_bisection(a, config, spec);
  r.spec_source = spec_source_text(config.model, config.spec);
  if (a.json)
    std::cout << bisection_json(a, config, r).dump(2, ' ', false, json::error_handler_t::replace)
              << '\n';
  else  // Pass and image names come from files: the text is made safe for the terminal as a whole.
    std::cout << terminal_safe_lines(bisection_text(a, r));
  exit_on_difference(r.differs, r.env_a, r.env_b, r.original, r.tolerance, r.outcome());
}

}  // namespace

void add_bisect(CLI::App& app) {
  auto args = std::make_shared<BisectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bisect", "find the compiler pass of B's optimisation level that makes B differ from A");
  cmd->add_option("--model", args->model, "the model (ONNX)");
  cmd->add_option("--spec", args->spec, "model spec (default: <model>.spec.json when present)");
  cmd->add_option("--image", args->image, "the image file");
  cmd->add_option("--a", args->a, "the baseline environment, e.g. ort:opt=disable");
  cmd->add_option("--b", args->b,
                  "the optimised environment whose passes are bisected, e.g. ort:opt=basic");
  cmd->add_option("--tolerance", args->tolerance,
                  "max |out - out_A| at which the difference has vanished (default: 1% of the "
                  "original max |out_B - out_A|)");
  cmd->add_option("--cache", args->cache, "preprocessed-tensor and artifact cache folder");
  cmd->add_option("--timeout", args->timeout_s, "seconds a worker may stay silent")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->allow_extras();
  cmd->callback([cmd, args] { execute(*cmd, *args); });
}

const VerbRegistration kRegistered{80, add_bisect};

}  // namespace deltann::cli
