// bench_scale_out: what planning and merging cost for a campaign cut into shards
// (docs/SCALE_OUT.md), at the size of a study campaign per model: 5,000 images x 40 variants.
//
//   plan    `deltann plan --model M --images DIR --env testing:threads=1 ... --out PLAN`, the real
//           command (each round into a new folder): listing and hashing 5,000 image files,
//           planning 40 variants, writing the plan folder. The variants are the testing engine's
//           (`testing:after=1..40`), which plans like any engine and needs no real one built.
//   shards  one synthetic database per shard, written with the Store API where `deltann run
//           --plan` would publish it (PLAN/results/shard-NNNN.db): the shard's images (its timing
//           sample marked), its variants, and per (variant, image) a top-5 with scores and the
//           samples a campaign stores (`--repeat` for a timed image, one otherwise), and the meta
//           that merge checks (plan_hash, shard) and keeps (node, shard_group, times). Not timed.
//   status  `deltann status PLAN`, the real command.
//   merge   `deltann merge PLAN -o OUT`, the real command; wall time and peak RSS (wait4's
//           ru_maxrss), also per million merged results, and the merged file's size.
//
// The commands run as subprocesses from argument vectors (no shell), each with its output in a
// log that is shown when it fails.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "bench_util.h"
#include "deltann/store.h"
#include "plan_folder.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using deltann::bench::file_text;
using deltann::bench::fixed;
using deltann::bench::Measured;
using deltann::bench::run_measured;

namespace {

// Runs a command that must succeed (exit 0); otherwise throws with its log.
Measured run_checked(const std::vector<std::string>& args, const fs::path& log) {
  const Measured m = run_measured(args, log);
  if (m.exit_code != 0)
    throw std::runtime_error(args[0] + " " + args[1] + " exited with " +
                             std::to_string(m.exit_code) + "; its output (" + log.string() +
                             "):\n" + file_text(log));
  return m;
}

// `count` distinct 16x16 PNGs (each image's index spelt in its pixels) and a list file of them.
fs::path write_images(const fs::path& dir, int count) {
  fs::create_directories(dir);
  const fs::path list = dir / "images.txt";
  if (fs::exists(list)) {
    std::ifstream in(list);
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    if (lines == count) return list;  // made by an earlier run of the same size
  }
  std::ofstream out(list.string() + ".partial");
  for (int i = 0; i < count; ++i) {
    cv::Mat pixels(16, 16, CV_8UC3, cv::Scalar(i % 256, (i / 256) % 256, (i / 65536) % 256));
    pixels.at<cv::Vec3b>(0, 0) = cv::Vec3b(static_cast<uchar>(i * 7), 1, 2);
    char name[32];
    std::snprintf(name, sizeof name, "img%06d.png", i);
    if (!cv::imwrite((dir / name).string(), pixels))
      throw std::runtime_error("cannot write " + (dir / name).string());
    out << name << '\n';
  }
  out.close();
  fs::rename(list.string() + ".partial", list);
  return list;
}

// One shard's database as `deltann run --plan` publishes it, with synthetic results.
void write_shard_database(const deltann::CampaignPlan& plan, const deltann::ShardManifest& shard,
                          const fs::path& path, int repeat, std::mt19937_64& rng) {
  constexpr int kClasses = 1000;
  std::uniform_int_distribution<int> any_class(0, kClasses - 1);
  std::normal_distribution<double> normal(0, 1);
  fs::remove(path);
  deltann::Store store(path, deltann::StoreMode::ReadWrite, 10'000);
  store.set_meta("created_at", "1700000000");
  store.set_meta("deltann_version", "bench");
  store.set_meta("host", "node" + std::to_string(shard.index));
  store.set_meta("timing", "warmup=3, repeat=" + std::to_string(repeat));
  store.set_meta("plan_hash", plan.hash);
  store.set_meta("shard", std::to_string(shard.index));
  store.set_meta("shard_group", shard.group);
  store.set_meta("node", R"({"cores":16,"cpu":"synthetic","gpus":[],"host":"node)" +
                             std::to_string(shard.index) + R"(","job":{}})");
  store.set_meta("shard_started_at", "2026-01-01T00:00:00Z");
  store.set_meta("shard_finished_at", "2026-01-01T01:00:00Z");
  const std::string model_path = plan.campaign.value("model", std::string("model.onnx"));
  const int64_t model = store.ensure_model({0, model_path, "00ff", "{}"});

  std::map<std::string, const deltann::PlanImage*> by_key;
  for (const auto& image : plan.images) by_key[image.key] = &image;
  std::vector<int64_t> image_ids, timed_ids;
  std::vector<bool> timed;
  for (const auto& key : shard.image_keys) {
    const deltann::PlanImage& planned = *by_key.at(key);
    deltann::StoredImage image;
    image.key = planned.key;
    image.path = planned.path;
    image.sha256 = planned.sha256;
    image.label = planned.label;
    image_ids.push_back(store.ensure_image(image));
    const bool is_timed =
        std::find(shard.timed_keys.begin(), shard.timed_keys.end(), key) != shard.timed_keys.end();
    timed.push_back(is_timed);
    if (is_timed) timed_ids.push_back(image_ids.back());
  }
  store.add_to_timing_sample(timed_ids);

  for (size_t v = 0; v < shard.variants.size(); ++v) {
    const std::string& env = shard.variants[v];
    const int64_t id = store.ensure_variant(model, env, env.substr(0, env.find(':')));
    store.record_load(id, "1", "", 50'000'000, "{}");
    store.record_first_inference(id, 9'000'000);
    const double median_ns = (9.0 + 0.25 * static_cast<double>(v)) * 1e6;
    for (size_t i = 0; i < image_ids.size(); ++i) {
      deltann::StoredResult result;
      result.variant_id = id;
      result.image_id = image_ids[i];
      double score = 8 + normal(rng);
      while (result.top_ids.size() < 5) {
        const int c = any_class(rng);
        if (std::find(result.top_ids.begin(), result.top_ids.end(), c) != result.top_ids.end())
          continue;
        result.top_ids.push_back(c);
        result.top_scores.push_back(static_cast<float>(score));
        score -= 0.5 + 0.1 * std::abs(normal(rng));
      }
      const int samples = timed[i] ? repeat : 1;
      for (int k = 0; k < samples; ++k)
        result.samples_ns.push_back(static_cast<int64_t>(median_ns * std::exp(0.05 * normal(rng))));
      store.add_result(std::move(result));
    }
    store.set_variant_status(id, deltann::VariantStatus::done);
  }
  store.flush();
}

double mib(const fs::path& p) { return static_cast<double>(fs::file_size(p)) / 1048576.0; }

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "?" : one;
}

}  // namespace

int main(int argc, char** argv) {
  deltann::bench::Options options(
      "bench_scale_out",
      "Times `deltann plan` of a campaign of IMAGES x VARIANTS (testing engine), writes a\n"
      "synthetic database for every shard, then times `deltann status` and `deltann merge`\n"
      "(wall time, peak RSS, also per million results) and prints the merged file's size.");
  options.add("images", "5000", "images in the campaign (16x16 PNGs, written once)");
  options.add("variants", "40", "variants (testing:after=1..N)");
  options.add("shard-images", "500", "images per shard");
  options.add("repeat", "5", "timed samples per result of an image in the timing sample");
  options.add("timing-images", "50", "images in the campaign's timing sample");
  options.add("plan-rounds", "3", "times `deltann plan` runs (each into a new folder)");
  options.add("merge-rounds", "1", "times `deltann merge` runs (each into a new file)");
  options.add("work", "", "folder for images, plans and databases (default <tmp>/deltann-bench)");
  options.add("deltann", "", "the deltann binary (default: the one built beside the bench)");
  options.add("workers", "", "folder holding deltann-worker-testing (default: BUILD/test-workers)");
  options.add("model", DELTANN_BENCH_DEMO_DIR "/efficientnet-lite0.onnx",
              "model to plan (its spec beside it); the testing engine never loads it here");
  int status = 0;
  if (!options.parse(argc, argv, status)) return status;
  try {
    const int images = options.integer("images", 1);
    const int variants = options.integer("variants", 1);
    const int shard_images = options.integer("shard-images", 1);
    const int repeat = options.integer("repeat", 1);
    const int plan_rounds = options.integer("plan-rounds", 1);
    const int merge_rounds = options.integer("merge-rounds", 1);
    const fs::path deltann_bin = options.str("deltann").empty() ? fs::path(DELTANN_BENCH_DELTANN)
                                                                : fs::path(options.str("deltann"));
    const fs::path workers = options.str("workers").empty()
                                 ? deltann_bin.parent_path() / "test-workers"
                                 : fs::path(options.str("workers"));
    if (!fs::exists(workers / "deltann-worker-testing"))
      throw std::runtime_error(workers.string() +
                               " holds no deltann-worker-testing: build it "
                               "(cmake --build --preset ci --target deltann-worker-testing)");
    ::setenv("DELTANN_WORKER_DIR", workers.c_str(), 1);
    const fs::path work = (options.str("work").empty() ? fs::temp_directory_path() / "deltann-bench"
                                                       : fs::path(options.str("work"))) /
                          ("scale_out_" + std::to_string(images) + "x" + std::to_string(variants));
    fs::create_directories(work);
    const fs::path cache = work / "cache";

    std::cout << "bench_scale_out " << deltann::bench::today_utc() << ", load average "
              << load_average() << " at the start\n"
              << images << " images x " << variants << " variants, " << shard_images
              << " images per shard, timing sample " << options.str("timing-images") << " x "
              << repeat << " samples, the rest 1 sample\n\n";
    const fs::path list = write_images(work / "images", images);

    std::vector<std::string> plan_args = {deltann_bin.string(),
                                          "plan",
                                          "--model",
                                          options.str("model"),
                                          "--images",
                                          list.string(),
                                          "--repeat",
                                          std::to_string(repeat),
                                          "--timing-images",
                                          options.str("timing-images"),
                                          "--shard-images",
                                          std::to_string(shard_images)};
    for (int v = 1; v <= variants; ++v) {
      plan_args.push_back("--env");
      plan_args.push_back("testing:after=" + std::to_string(v));
    }
    fs::path plan_dir;
    std::vector<double> plan_wall;
    Measured plan_m;
    for (int r = 0; r < plan_rounds; ++r) {
      plan_dir = work / ("plan-" + std::to_string(r));
      fs::remove_all(plan_dir);
      std::vector<std::string> args = plan_args;
      args.insert(args.end(), {"--out", plan_dir.string()});
      ::setenv("DELTANN_CACHE", cache.c_str(), 1);
      plan_m = run_checked(args, work / "plan.log");
      plan_wall.push_back(plan_m.wall_s);
      std::cout << "plan round " << (r + 1) << ": " << fixed(plan_m.wall_s, 2) << " s wall, "
                << fixed(plan_m.cpu_s, 2) << " s CPU, peak RSS " << fixed(plan_m.peak_rss_mib, 0)
                << " MiB\n";
    }

    const deltann::CampaignPlan plan = deltann::read_plan_folder(plan_dir);
    std::mt19937_64 rng(1);
    const auto shards_start = Clock::now();
    int64_t results = 0;
    for (const auto& shard : plan.shards) {
      write_shard_database(plan, shard, deltann::shard_result_path(plan_dir, shard.index), repeat,
                           rng);
      results += static_cast<int64_t>(shard.variants.size() * shard.image_keys.size());
    }
    double shards_mib = 0;
    for (const auto& shard : plan.shards)
      shards_mib += mib(deltann::shard_result_path(plan_dir, shard.index));
    std::cout << "wrote " << plan.shards.size() << " shard databases (" << results << " results, "
              << fixed(shards_mib, 1) << " MiB) in "
              << fixed(std::chrono::duration<double>(Clock::now() - shards_start).count(), 1)
              << " s (not timed)\n";

    const Measured status_m =
        run_checked({deltann_bin.string(), "status", plan_dir.string()}, work / "status.log");
    std::vector<double> merge_wall, merge_rss, merge_cpu;
    fs::path merged;
    for (int r = 0; r < merge_rounds; ++r) {
      merged = work / ("merged-" + std::to_string(r) + ".db");
      fs::remove(merged);
      const Measured m =
          run_checked({deltann_bin.string(), "merge", plan_dir.string(), "-o", merged.string()},
                      work / "merge.log");
      merge_wall.push_back(m.wall_s);
      merge_cpu.push_back(m.cpu_s);
      merge_rss.push_back(m.peak_rss_mib);
      std::cout << "deltann merge: " << file_text(work / "merge.log");  // its "merged ..." line
      std::cout << "merge round " << (r + 1) << ": " << fixed(m.wall_s, 2) << " s wall, "
                << fixed(m.cpu_s, 2) << " s CPU, peak RSS " << fixed(m.peak_rss_mib, 0) << " MiB\n";
    }
    const double per_million = 1e6 / static_cast<double>(results);
    const double wall = deltann::bench::median(merge_wall);
    const double cpu = deltann::bench::median(merge_cpu);
    const double rss = *std::max_element(merge_rss.begin(), merge_rss.end());
    std::cout << "\n"
              << "plan folder: " << plan_dir.string() << " (" << plan.shards.size() << " shards, "
              << plan.groups.size() << " group(s))\n"
              << "load average " << load_average() << " at the end\n\n";
    std::printf("%-34s %10s %10s %14s\n", "step", "wall s", "CPU s", "peak RSS MiB");
    std::printf("%-34s %10s %10s %14s\n", "deltann plan (median of rounds)",
                fixed(deltann::bench::median(plan_wall), 2).c_str(), fixed(plan_m.cpu_s, 2).c_str(),
                fixed(plan_m.peak_rss_mib, 0).c_str());
    std::printf("%-34s %10s %10s %14s\n", "deltann status", fixed(status_m.wall_s, 2).c_str(),
                fixed(status_m.cpu_s, 2).c_str(), fixed(status_m.peak_rss_mib, 0).c_str());
    std::printf("%-34s %10s %10s %14s\n", "deltann merge (median; RSS max)", fixed(wall, 2).c_str(),
                fixed(cpu, 2).c_str(), fixed(rss, 0).c_str());
    // Peak RSS is not scaled: merge copies shards with SQL and holds the plan, not the results,
    // so its memory does not grow in proportion to them (compare runs of two sizes instead).
    std::printf("%-34s %10s %10s %14s\n", "merge per million results",
                fixed(wall * per_million, 2).c_str(), fixed(cpu * per_million, 2).c_str(),
                "(not linear)");
    std::cout << "\nmerged database: " << fixed(mib(merged), 1) << " MiB (" << results
              << " results; " << fixed(mib(merged) * per_million, 1)
              << " MiB per million results); shard databases together " << fixed(shards_mib, 1)
              << " MiB\n";
    // For bench/scale_out, which hands the measured costs to bench/scale_estimate.py.
    std::cout << "estimate inputs: --plan-s " << fixed(deltann::bench::median(plan_wall), 2)
              << " --merge-s-per-million " << fixed(wall * per_million, 2) << '\n';
  } catch (const std::exception& e) {
    std::cerr << "bench_scale_out: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
