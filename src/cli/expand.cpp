// `deltann expand --images DATASET -o OUT`: natural variants of real photos. Each image of the
// dataset is kept as it is and corrupted by ImageNet-C's noise, blur, weather and digital
// corruptions at the severities asked for; OUT gets the images, a list file `deltann run --images`
// reads, and each output's provenance (docs/DATASETS.md, "Expanding photos"). The dataset is read
// here, by the loader `run` uses; the images are made by the tool expand.py of the tools folder.
#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/dataset.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/preprocess.h"  // default_cache_dir()
#include "deltann/text.h"
#include "run/builder.h"  // run_tool, ScratchDir
#include "verbs.h"

namespace deltann::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct ExpandOptions {
  std::string images, labels, synsets, out, cache;
  std::string corruptions;  // "" = all
  std::string severities = "1-5";
  int64_t seed = 0;
};

// "1-5", "2", "1,3,5" or "1-2,5": the severities in the order given, each 1 to 5.
std::vector<int> parse_severities(const std::string& text) {
  std::vector<int> severities;
  const auto bad = [&] {
    return Error("--severities takes severities 1 to 5 as a list or range (1-5, 1,3,5), not '" +
                 text + "'");
  };
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ',')) {
    int first = 0, last = 0;
    char dash = 0, rest = 0;
    std::istringstream in(part);
    if (!(in >> first)) throw bad();
    if (in >> dash) {
      if (dash != '-' || !(in >> last) || (in >> rest)) throw bad();
    } else {
      last = first;
    }
    if (first < 1 || last > 5 || first > last) throw bad();
    for (int s = first; s <= last; ++s) severities.push_back(s);
  }
  if (severities.empty()) throw bad();
  return severities;
}

// The usable images of the dataset, with their content hashes, as the tool reads them. Entries
// that cannot be used are named on stderr and left out.
json manifest_of(const Dataset& dataset) {
  json images = json::array();
  for (const auto& entry : dataset.images) {
    if (!entry.usable()) {
      std::cerr << "deltann: skipped " << terminal_safe(entry.key) << ": "
                << terminal_safe(entry.problem) << '\n';
      continue;
    }
    std::string sha;
    try {
      sha = sha256_file(entry.path);
    } catch (const std::exception& e) {
      std::cerr << "deltann: skipped " << terminal_safe(entry.key) << ": "
                << terminal_safe(e.what()) << '\n';
      continue;
    }
    images.push_back({{"key", entry.key},
                      {"path", entry.path.string()},
                      {"label", entry.label ? json(*entry.label) : json(nullptr)},
                      {"sha256", sha}});
  }
  return {{"images", images}};
}

void execute(const ExpandOptions& o) {
  const std::vector<int> severities = parse_severities(o.severities);
  DatasetOptions dataset_options;
  if (!o.labels.empty()) dataset_options.labels = o.labels;
  if (!o.synsets.empty()) dataset_options.synsets = o.synsets;
  const Dataset dataset = load_dataset(o.images, dataset_options);
  for (const auto& note : dataset.notes) std::cerr << "deltann: " << terminal_safe(note) << '\n';
  const json manifest = manifest_of(dataset);
  if (manifest["images"].empty()) throw Error("no usable image in " + o.images);

  const fs::path tool = tools_dir() / "expand.py";
  if (!fs::is_regular_file(tool))
    throw Error("the expansion tool is missing: " + tool.string() + " is not a file");
  const fs::path cache = o.cache.empty() ? default_cache_dir() : fs::path(o.cache);
  const ScratchDir scratch(cache);
  const fs::path manifest_file = scratch.path() / "manifest.json";
  {
    std::ofstream out(manifest_file);
    out << manifest.dump();
    if (!out.flush()) throw Error("cannot write " + manifest_file.string());
  }
  std::string severity_list;
  for (const int s : severities)
    severity_list += (severity_list.empty() ? "" : ",") + std::to_string(s);
  std::vector<std::string> args = {tool.string(),
                                   "--manifest",
                                   manifest_file.string(),
                                   "--out",
                                   fs::absolute(o.out).string(),
                                   "--cache",
                                   (cache / "artifacts" / "expand").string(),
                                   "--severities",
                                   severity_list,
                                   "--seed",
                                   std::to_string(o.seed)};
  if (!o.corruptions.empty()) {
    args.push_back("--corruptions");
    args.push_back(o.corruptions);
  }
  // Glass blur, the slowest corruption, takes about 1 s for a 512×512 photo on a loaded machine:
  // 10 s per output leaves room for larger photos.
  const size_t corruption_count =
      o.corruptions.empty() ? 19 : std::count(o.corruptions.begin(), o.corruptions.end(), ',') + 1;
  const double timeout_s = 120.0 + 10.0 * static_cast<double>(manifest["images"].size() *
                                                              corruption_count * severities.size());
  const ToolRun run = run_tool(tools_python(), args, timeout_s, scratch.path());
  if (!run.ok())
    throw Error("expanding the images failed (" + run.exit.detail + ")" +
                (run.log.empty() ? "" : ": " + run.log));
  const json& reply = *run.reply;
  const json skipped = reply.value("skipped", json::array());
  for (const auto& s : skipped)
    std::cerr << "deltann: skipped " << terminal_safe(s.value("path", "")) << ": "
              << terminal_safe(s.value("reason", "")) << '\n';
  std::cout << reply.value("outputs", 0) << " images in " << o.out << " ("
            << reply.value("originals", 0) << " originals, " << reply.value("computed", 0)
            << " corrupted now, " << reply.value("cached", 0) << " from the cache)\n";
  // Throughput of what was computed now, per corruption: the numbers docs/PERFORMANCE.md quotes.
  const json computed = reply.value("computed_per_corruption", json::object());
  const json seconds_per_corruption = reply.value("seconds", json::object());
  for (const auto& [name, seconds] : seconds_per_corruption.items()) {
    const int count = computed.value(name, 0);
    if (count == 0) continue;
    std::cout << "  " << std::left << std::setw(18) << name << count << " in " << std::fixed
              << std::setprecision(2) << seconds.get<double>() << " s (" << std::setprecision(1)
              << count / std::max(seconds.get<double>(), 1e-9) << " images/s)\n";
  }
  std::cout << "list: " << (fs::path(o.out) / "images.txt").string()
            << ", provenance: " << (fs::path(o.out) / "provenance.json").string() << '\n';
}

}  // namespace

void add_expand(CLI::App& app) {
  auto o = std::make_shared<ExpandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "expand",
      "natural variants of photos: ImageNet-C corruptions at 5 severities, with provenance");
  cmd->add_option("--images", o->images,
                  "the photos: a folder, a list file (path [label] per line) or one image")
      ->required();
  cmd->add_option("-o,--out", o->out, "output folder: the images, images.txt, provenance.json")
      ->required();
  cmd->add_option("--labels", o->labels, "list file with ground-truth labels for a plain folder");
  cmd->add_option("--synsets", o->synsets, "synset order for the ImageNet layout");
  cmd->add_option("--corruptions", o->corruptions,
                  "comma-separated corruption names (default: all 19; docs/DATASETS.md)");
  cmd->add_option("--severities", o->severities, "severities 1 to 5: a range or list (1-5, 1,3)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the random corruptions")->capture_default_str();
  cmd->add_option("--cache", o->cache, "cache folder (default: deltann's cache)");
  cmd->callback([o] { execute(*o); });
}

const VerbRegistration kRegistered{55, add_expand};

}  // namespace deltann::cli
