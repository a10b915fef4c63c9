// `deltann repair`: undoes, one ONNX graph edit at a time, the parameter and attribute changes a
// conversion made to a model, keeping an edit only where it brings the converted model's outputs
// closer to the source's, and verifies the result on images the search did not see
// (docs/LOCALIZE.md, "Repairing a conversion"). Exit 0 when the repaired model agrees with the
// source within the tolerance on the search images (or already did), 3 when it does not, 1 for an
// error, 2 for a usage error.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "capture.h"
#include "deltann/campaign.h"
#include "deltann/compare_tensors.h"
#include "deltann/dataset.h"
#include "deltann/error.h"
#include "deltann/json_number.h"
#include "deltann/layer_capture.h"
#include "deltann/localize.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/stats.h"
#include "deltann/text.h"
#include "model_verb.h"
#include "run/engine_registry.h"
#include "run/protocol.h"
#include "run/worker_process.h"
#include "verbs.h"
#ifdef DELTANN_MODEL_DIFF
#include "analysis/parameter_report.h"
#include "analysis/repair.h"
#include "core/onnx_model.h"
#endif

namespace deltann::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct RepairArgs {
  std::string model, b_model, spec, b_spec, image_set, a, b, out, record, cache;
  double tolerance = 1e-4;
  std::optional<size_t> search;
  uint64_t seed = 0;
  double timeout_s = 300;
  bool json = false;
};

#ifdef DELTANN_MODEL_DIFF

constexpr double kConfidence = 0.95;

[[noreturn]] void usage(const std::string& message) {
  throw CLI::ValidationError(message, kExitUsage);
}

std::string number(double value) {
  if (std::isinf(value)) return "inf";
  std::ostringstream out;
  out.precision(4);
  out << value;
  return out.str();
}

// A private working folder for the candidate models and the captures, removed at the end.
class WorkDir {
 public:
  WorkDir() {
    std::string pattern = (fs::temp_directory_path() / "deltann-repair-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw Error("cannot create a temporary folder in /tmp");
    path_ = pattern;
  }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_model(const onnx::ModelProto& model, const fs::path& path) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw Error(path.string() + ": cannot serialise the model");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error(path.string() + ": cannot write the model");
}

// The images of the set, one output vector per image, from one worker of `env`.
using Outputs = std::vector<std::vector<float>>;
Outputs run_images(const PreparedEnvironment& env, const std::vector<const ImageEntry*>& images,
                   PreprocessCache& cache, double timeout_s) {
  LoadedWorker worker(env.worker, env.artifact, env.env, to_json(env.spec), timeout_s,
                      env.worker_env);
  Outputs outputs;
  for (const ImageEntry* image : images) {
    const fs::path tensor = cache.prepare(image->path, env.spec.input).tensor_path;
    const auto result = worker.request({{"op", "run"},
                                        {"image", image->key},
                                        {"tensor", tensor.string()},
                                        {"first", false},
                                        {"warmup", 0},
                                        {"repeat", 1}},
                                       "run", "result", "run failed");
    outputs.push_back(protocol::decode_floats(result.at("output").get<std::string>()));
  }
  worker.quit();
  return outputs;
}

// The outputs of the search images and of the held-out ones, from one worker.
std::pair<Outputs, Outputs> run_parts(const PreparedEnvironment& env,
                                      const std::vector<const ImageEntry*>& search,
                                      const std::vector<const ImageEntry*>& held,
                                      PreprocessCache& cache, double timeout_s) {
  std::vector<const ImageEntry*> all = search;
  all.insert(all.end(), held.begin(), held.end());
  Outputs outputs = run_images(env, all, cache, timeout_s);
  Outputs held_out(std::make_move_iterator(outputs.begin() + static_cast<long>(search.size())),
                   std::make_move_iterator(outputs.end()));
  outputs.resize(search.size());
  return {std::move(outputs), std::move(held_out)};
}

// max |b - a| of one image's outputs under the comparator's rules (compare_tensors.h).
double max_abs(const std::vector<float>& a, const std::vector<float>& b, const std::string& key) {
  if (a.size() != b.size())
    throw Error(key + ": the outputs have different lengths (" + std::to_string(a.size()) +
                " and " + std::to_string(b.size()) + ")");
  return compare_tensors(a, b).max_abs;
}

size_t top1(const std::vector<float>& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// How far B's outputs are from A's over a set of images.
struct Agreement {
  size_t n = 0, labels_agree = 0;
  double max_abs = 0;  // over every image
  std::vector<double> per_image;
};

Agreement agreement(const Outputs& a, const Outputs& b,
                    const std::vector<const ImageEntry*>& keys) {
  Agreement g;
  g.n = a.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = max_abs(a[i], b[i], keys[i]->key);
    g.per_image.push_back(d);
    g.max_abs = std::max(g.max_abs, d);
    if (!a[i].empty() && top1(a[i]) == top1(b[i])) ++g.labels_agree;
  }
  return g;
}

json agreement_json(const Agreement& g) {
  json j = {{"images", g.n},
            {"labels_agree", g.labels_agree},
            {"label_agreement", g.n ? json_number(double(g.labels_agree) / double(g.n)) : json()},
            {"max_abs", json_number(g.max_abs)}};
  if (const auto ci = stats::rate_interval(static_cast<int64_t>(g.labels_agree),
                                           static_cast<int64_t>(g.n), kConfidence))
    j["label_agreement_ci"] = {json_number(ci->low), json_number(ci->high)};
  std::vector<double> sorted = g.per_image;
  std::sort(sorted.begin(), sorted.end());
  if (!sorted.empty()) {
    const auto ci = stats::median_ci_sorted(sorted, kConfidence);
    j["median_max_abs"] = json_number(stats::percentile_sorted(sorted, 50));
    j["median_max_abs_ci"] = {json_number(ci.low), json_number(ci.high)};
  }
  return j;
}

std::string agreement_text(const Agreement& g) {
  std::ostringstream s;
  s << "labels agree " << g.labels_agree << "/" << g.n;
  if (const auto ci = stats::rate_interval(static_cast<int64_t>(g.labels_agree),
                                           static_cast<int64_t>(g.n), kConfidence))
    s << " (95% CI " << number(ci->low) << "-" << number(ci->high) << ")";
  std::vector<double> sorted = g.per_image;
  std::sort(sorted.begin(), sorted.end());
  s << ", max |d| " << number(g.max_abs);
  if (!sorted.empty()) {
    const auto ci = stats::median_ci_sorted(sorted, kConfidence);
    s << ", median per image " << number(stats::percentile_sorted(sorted, 50)) << " (95% CI "
      << number(ci.low) << "-" << number(ci.high) << ")";
  }
  return s.str();
}

// B's environment run natively on its converted file: the engine and the engine's own knobs (a
// conversion's knobs, such as quantize, are already in the file).
std::string native_environment(const std::string& env, const CampaignConfig& config) {
  Environment parsed = parse_environment(env);
  parsed.conversion.clear();
  const EngineEntry& engine =
      EngineRegistry::shared(config.worker_dir, config.cache_dir).engine(parsed.framework);
  std::erase_if(parsed.knobs, [&](const auto& knob) { return engine.knob(knob.first) == nullptr; });
  return parsed.to_string();
}

// Everything one repair needs to run B on a model file.
struct Sides {
  CampaignConfig config_a, config_b;
  ModelSpec spec_a, spec_b;
  PreparedEnvironment env_a;
  std::string env_b;        // what runs each candidate (B's environment, natively when B converted)
  fs::path converted;       // B's model file: --b-model, else B's converted artifact
  std::string b_label;      // B as given
  bool own_spec_b = false;  // B reads its input by its own spec, not A's
};

Sides plan_sides(const RepairArgs& a) {
  Sides s;
  s.config_a = model_config(a.model, a.spec, a.cache, a.timeout_s);
  s.spec_a = load_spec_saying_default(s.config_a);
  s.env_a = prepare_environment(s.config_a, s.spec_a, a.a, say);
  s.config_b = s.config_a;
  s.b_label = a.b;
  if (!a.b_model.empty()) {
    // As localize's --b-model: --b-spec, else the copy's own sidecar, else A's spec.
    s.converted = a.b_model;
    if (!a.b_spec.empty()) s.config_b.spec = a.b_spec;
    const bool own_spec =
        !a.b_spec.empty() || fs::exists(fs::path(a.b_model).replace_extension(".spec.json"));
    s.own_spec_b = own_spec;
    if (own_spec) {
      if (a.b_spec.empty()) s.config_b.spec.reset();
      s.spec_b = load_model_spec(s.converted, s.config_b.spec);
    } else {
      s.spec_b = s.spec_a;
    }
    s.env_b = a.b;
  } else {
    // B converts the model: its artifact is the file to repair, run by B's engine as it is.
    const PreparedEnvironment b = prepare_environment(s.config_a, s.spec_a, a.b, say);
    std::error_code ec;
    if (b.artifact.extension() != ".onnx" || fs::equivalent(b.artifact, a.model, ec))
      throw Error("environment '" + b.env +
                  "' runs no converted ONNX file of the model, so there is no file to repair; "
                  "give the converted model with --b-model");
    s.converted = b.artifact;
    s.spec_b = b.spec;
    s.own_spec_b = true;
    s.env_b = native_environment(b.env, s.config_a);
  }
  return s;
}

PreparedEnvironment prepare_b(const Sides& s, const fs::path& model) {
  CampaignConfig config = s.config_b;
  config.model = model;
  return prepare_environment(config, s.spec_b, s.env_b, [](const std::string&) {});
}

// The differences between the files, in A's graph order, as localize finds them for one image:
// both captured, their layers matched (by name for an edited copy, by structure across a
// renaming conversion), and the files compared through that matching. An environment that
// cannot capture leaves the node-by-name comparison.
std::vector<ParameterDifference> find_differences(const Sides& s, const PreparedEnvironment& b,
                                                  const ImageEntry& image, PreprocessCache& cache,
                                                  const fs::path& dir, double timeout_s,
                                                  std::string& how) {
  std::vector<LayerCapture> captures;
  try {
    for (const PreparedEnvironment* env : {&s.env_a, &b}) {
      const fs::path out = dir / (env == &b ? "b" : "a");
      LoadedWorker worker(env->worker, env->artifact, env->env, to_json(env->spec), timeout_s,
                          env->worker_env);
      captures.push_back(
          capture_with(worker, *env, cache.prepare(image.path, env->spec.input).tensor_path, out));
      worker.quit();
    }
  } catch (const Error& e) {
    how = "compared node by name (no capture to match layers with: " + std::string(e.what()) + ")";
    return diff_models(s.config_a.model, s.converted);
  }
  const Localization result = localize(captures[0], captures[1], {}, LocalizeOptions{});
  const auto counts = match_counts(result);
  const bool by_name = counts.size() == 1 && counts.begin()->first == "name";
  how = std::string(by_name ? "compared node by name" : "compared through the layer matching") +
        " (" + std::to_string(result.layers.size()) + " layers matched on " + image.key + ")";
  return model_differences(s.config_a.model, s.converted, result);
}

struct Repair {
  std::vector<std::string> search_keys, held_keys;
  Agreement search_before, search_after, held_before, held_after;
  std::string b_runs_as;  // B's environment as each candidate runs, canonical
  std::string how;        // how the differences were found
  size_t differences = 0;
  RepairSearch search;
  std::string verdict, reason;
  double seconds = 0;
};

std::string verdict_reason(const Repair& r, double tolerance) {
  if (r.verdict == "no-difference")
    return "B already agrees with A within the tolerance on the search images";
  if (r.verdict == "repaired") return "B agrees with A within the tolerance after the kept edits";
  if (r.differences == 0)
    return "no fix found: the two files have no parameter or attribute difference, so the "
           "divergence (max |d| " +
           number(r.search.initial) +
           ") comes from how B runs them (the engine or the conversion's arithmetic), not from "
           "a changed parameter";
  std::vector<std::string> why;
  size_t kept = 0;
  for (const auto& step : r.search.steps) {
    kept += step.kept;
    if (!step.edit.applied && !step.edit.action.empty()) why.push_back(step.edit.action);
  }
  if (kept > 0)
    return "improved but not repaired: max |d| " + number(r.search.final) + " > tolerance " +
           number(tolerance) + " after " + std::to_string(kept) + " kept edit(s)" +
           (why.empty() ? "" : "; " + joined(why, "; "));
  if (!why.empty()) return joined(why, "; ");
  return "no fix found: no inverse edit reduced the divergence";
}

json step_json(const RepairStep& step) {
  json j = {{"difference", difference_json(step.difference)},
            {"node", step.difference.node},
            {"what", step.difference.what},
            {"kind", step.difference.kind.kind},
            {"applied", step.edit.applied},
            {"action", step.edit.action},
            {"tried", step.tried},
            {"kept", step.kept},
            {"divergence_before", json_number(step.before)}};
  if (!step.edit.node_b.empty()) j["node_b"] = step.edit.node_b;
  if (step.tried) j["divergence_after"] = json_number(step.after);
  if (!step.note.empty()) j["note"] = step.note;
  return j;
}

// The second try of the rejected edits, all at once (null when there was none); `steps` are
// positions in `edits`, from 1.
json together_json(const RepairSearch& search) {
  if (!search.together) return nullptr;
  std::vector<size_t> steps;
  for (const size_t i : search.together->steps) steps.push_back(i + 1);
  return {{"steps", steps},
          {"divergence_before", json_number(search.together->before)},
          {"divergence_after", json_number(search.together->after)},
          {"kept", search.together->kept}};
}

json repair_json(const RepairArgs& a, const Sides& s, const Repair& r, const fs::path& record) {
  json steps = json::array();
  for (const auto& step : r.search.steps) steps.push_back(step_json(step));
  json j = {
      {"model", fs::absolute(a.model).string()},
      {"converted", fs::absolute(s.converted).string()},
      {"repaired", fs::absolute(a.out).string()},
      {"record", fs::absolute(record).string()},
      {"a", s.env_a.env},
      {"b", s.b_label},
      {"b_runs_as", r.b_runs_as},
      {"image_set", fs::absolute(a.image_set).string()},
      {"split",
       {{"seed", a.seed},
        {"search", r.search_keys},
        {"held_out", r.held_keys},
        {"rule",
         "seeded shuffle (mt19937_64, Fisher-Yates) of the usable images; the "
         "first " +
             std::to_string(r.search_keys.size()) + " search, the rest held out"}}},
      {"tolerance", json_number(a.tolerance)},
      {"differences_found", r.differences},
      {"differences_from", r.how},
      {"edits", steps},
      {"evaluations", r.search.evaluations},
      {"together", together_json(r.search)},
      {"search",
       {{"before", agreement_json(r.search_before)}, {"after", agreement_json(r.search_after)}}},
      {"held_out",
       {{"before", agreement_json(r.held_before)}, {"after", agreement_json(r.held_after)}}},
      {"verdict", r.verdict},
      {"reason", r.reason},
      {"seconds", r.seconds}};
  return j;
}

std::string repair_text(const RepairArgs& a, const Sides& s, const Repair& r,
                        const fs::path& record) {
  std::ostringstream t;
  t << "A: " << s.env_a.env << " on " << a.model << "\nB: " << r.b_runs_as << " on "
    << s.converted.string() << "\nimages: " << r.search_keys.size() << " for the search, "
    << r.held_keys.size() << " held out (seed " << a.seed << ")\n"
    << "differences: " << r.differences << ", " << r.how << "\n";
  for (size_t i = 0; i < r.search.steps.size(); ++i) {
    const auto& step = r.search.steps[i];
    const auto& d = step.difference;
    t << "  " << i + 1 << ". " << d.node << ": " << d.what << " [" << d.kind.kind << "]\n     ";
    if (step.tried)
      t << (step.kept ? "kept: " : "not kept: ") << step.edit.action << "; max |d| "
        << number(step.before) << " -> " << number(step.after)
        << (step.kept && !step.note.empty() ? " (" + step.note + ")" : "") << "\n";
    else if (!step.edit.action.empty())
      t << step.edit.action << "\n";
    else
      t << step.note << "\n";
  }
  if (const auto& g = r.search.together)
    t << "the " << g->steps.size() << " edits not kept, tried together: max |d| "
      << number(g->before) << " -> " << number(g->after) << (g->kept ? ": kept" : ": not kept")
      << "\n";
  t << "search images: before " << agreement_text(r.search_before) << "\n"
    << "               after  " << agreement_text(r.search_after) << "\n"
    << "held-out images: before " << agreement_text(r.held_before) << "\n"
    << "                 after  " << agreement_text(r.held_after) << "\n"
    << "verdict: " << r.verdict << ": " << r.reason << "\n"
    << "repaired model: " << a.out << "\nrecord: " << record.string() << "\n"
    << r.search.evaluations << " candidate(s) evaluated, took " << std::lround(r.seconds * 1000)
    << " ms\n";
  return t.str();
}

void execute(const CLI::App& cmd, RepairArgs& a) {
  if (!cmd.remaining().empty()) usage("unexpected argument '" + cmd.remaining().front() + "'");
  if (a.model.empty() || a.image_set.empty() || a.a.empty() || a.b.empty() || a.out.empty())
    usage("--model SRC, --image-set DIR, --a ENV, --b ENV and -o FIXED.onnx are required");
  if (!(a.tolerance >= 0)) usage("--tolerance must not be negative");
  if (a.timeout_s <= 0) usage("--timeout must be positive");
  if (a.b_model.empty() && !a.b_spec.empty()) usage("--b-spec needs --b-model");
  if (a.search && *a.search == 0) usage("--search must be at least 1");
  if (!fs::is_regular_file(a.model)) throw Error("model file " + a.model + " does not exist");
  if (!a.b_model.empty() && !fs::is_regular_file(a.b_model))
    throw Error("model file " + a.b_model + " (--b-model) does not exist");
  const auto start = std::chrono::steady_clock::now();

  const Dataset dataset = load_dataset(a.image_set);
  std::vector<const ImageEntry*> usable;
  for (const auto& image : dataset.images)
    if (image.usable())
      usable.push_back(&image);
    else
      say("image " + image.key + " left out: " + image.problem);
  if (usable.size() < 2)
    throw Error(a.image_set + ": " + std::to_string(usable.size()) +
                " usable image(s); the repair needs at least 2 (one to search on, one held out)");
  const size_t search_count = std::min(a.search.value_or((usable.size() + 1) / 2),
                                       usable.size() - 1);  // at least one held out
  const ImageSplit split = split_images(usable.size(), search_count, a.seed);
  std::vector<const ImageEntry*> search, held;
  for (const auto i : split.search) search.push_back(usable[i]);
  for (const auto i : split.held_out) held.push_back(usable[i]);

  const Sides s = plan_sides(a);
  const onnx::ModelProto model_a = load_onnx_model(s.config_a.model);
  const onnx::ModelProto model_b = load_onnx_model(s.converted);
  PreprocessCache cache(s.config_a.cache_dir);
  WorkDir work;

  Repair r;
  for (const auto* image : search) r.search_keys.push_back(image->key);
  for (const auto* image : held) r.held_keys.push_back(image->key);
  say("A: running " + std::to_string(usable.size()) + " images");
  const auto [a_search, a_held] = run_parts(s.env_a, search, held, cache, a.timeout_s);
  const PreparedEnvironment b_before = prepare_b(s, s.converted);
  r.b_runs_as = b_before.env;
  say("B: running " + std::to_string(usable.size()) + " images on " + s.converted.string());
  const auto [b_search, b_held] = run_parts(b_before, search, held, cache, a.timeout_s);
  r.search_before = agreement(a_search, b_search, search);
  r.held_before = agreement(a_held, b_held, held);

  std::vector<ParameterDifference> differences;
  if (r.search_before.max_abs > a.tolerance) {
    // The differences are looked for on the search image where B is farthest from A.
    const size_t worst = static_cast<size_t>(
        std::max_element(r.search_before.per_image.begin(), r.search_before.per_image.end()) -
        r.search_before.per_image.begin());
    differences =
        find_differences(s, b_before, *search[worst], cache, work.path(), a.timeout_s, r.how);
  } else {
    r.how = "not looked for: B already agrees";
  }
  r.differences = differences.size();
  size_t candidate = 0;
  r.search = search_repair(
      model_a, model_b, differences, r.search_before.max_abs, a.tolerance,
      [&](const onnx::ModelProto& edited) {
        const fs::path path = work.path() / ("candidate-" + std::to_string(++candidate) + ".onnx");
        write_model(edited, path);
        try {
          const Agreement g = agreement(
              a_search, run_images(prepare_b(s, path), search, cache, a.timeout_s), search);
          say("candidate " + std::to_string(candidate) + ": max |d| " + number(g.max_abs));
          return g.max_abs;
        } catch (const Error& e) {
          // An edit the engine refuses is an edit that does not help; the others still run.
          say("candidate " + std::to_string(candidate) + " cannot run: " + e.what());
          return std::numeric_limits<double>::infinity();
        }
      });

  // The repaired model is written, then verified from the file itself.
  if (fs::path(a.out).has_parent_path()) fs::create_directories(fs::path(a.out).parent_path());
  write_model(r.search.repaired, a.out);
  if (s.own_spec_b) {
    // B reads its input in its own way: the sidecar lets the repaired file run as B ran.
    std::ofstream spec_out(fs::path(a.out).replace_extension(".spec.json"));
    spec_out << to_json(s.spec_b).dump(2) << '\n';
    if (!spec_out) throw Error(a.out + ": cannot write its spec sidecar");
  }
  const auto [after_search, after_held] =
      run_parts(prepare_b(s, a.out), search, held, cache, a.timeout_s);
  r.search_after = agreement(a_search, after_search, search);
  r.held_after = agreement(a_held, after_held, held);

  r.verdict = r.search_before.max_abs <= a.tolerance ? "no-difference"
              : r.search.within                      ? "repaired"
              : std::any_of(r.search.steps.begin(), r.search.steps.end(),
                            [](const RepairStep& st) { return st.kept; })
                  ? "improved"
                  : "no-fix-found";
  r.reason = verdict_reason(r, a.tolerance);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const fs::path record =
      a.record.empty() ? fs::path(a.out).replace_extension(".repair.json") : fs::path(a.record);
  const json j = repair_json(a, s, r, record);
  {
    std::ofstream out(record);
    out << j.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
    if (!out) throw Error(record.string() + ": cannot write the record");
  }
  if (a.json)
    std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
  else
    std::cout << terminal_safe_lines(repair_text(a, s, r, record));
  if (r.verdict != "repaired" && r.verdict != "no-difference")
    throw NegativeAnswer("B still differs from A: " + r.reason);
}

#else

void execute(const CLI::App&, RepairArgs&) {
  throw Error("repair needs ONNX's protobuf classes (libonnx-dev), absent from this build");
}

#endif

}  // namespace

void add_repair(CLI::App& app) {
  auto args = std::make_shared<RepairArgs>();
  CLI::App* cmd = app.add_subcommand(
      "repair",
      "undo a conversion's parameter and attribute changes, edit by edit, until the converted "
      "model agrees with the source");
  cmd->add_option("--model", args->model, "the source model (ONNX)");
  cmd->add_option("--b-model", args->b_model,
                  "the converted model to repair (ONNX; default: B's converted artifact)");
  cmd->add_option("--spec", args->spec, "the source's spec (default: <model>.spec.json)");
  cmd->add_option("--b-spec", args->b_spec,
                  "the converted model's spec (default: its sidecar, else the source's)");
  cmd->add_option("--image-set", args->image_set,
                  "images (a folder or a list file), split into search and held-out images");
  cmd->add_option("--a", args->a, "the source's environment, e.g. ort:opt=disable");
  cmd->add_option("--b", args->b, "the converted model's environment");
  cmd->add_option("-o,--out", args->out, "where the repaired model is written");
  cmd->add_option("--record", args->record,
                  "the JSON record of the repair (default: <out>.repair.json)");
  cmd->add_option("--tolerance", args->tolerance,
                  "max |out_B - out_A| over the search images at which B agrees with A")
      ->capture_default_str();
  cmd->add_option("--search", args->search,
                  "images used for the search (default: half, rounded up); the rest are held out");
  cmd->add_option("--seed", args->seed, "seed of the search/held-out split")->capture_default_str();
  cmd->add_option("--cache", args->cache, "preprocessed-tensor and artifact cache folder");
  cmd->add_option("--timeout", args->timeout_s, "seconds a worker may stay silent")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the record as JSON");
  cmd->allow_extras();
  cmd->callback([cmd, args] { execute(*cmd, *args); });
}

const VerbRegistration kRegistered{85, add_repair};

}  // namespace deltann::cli
