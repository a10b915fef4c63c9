// bench_analysis_scale: how long the analysis and the reports take on a campaign of ImageNet
// validation size, and how much memory they need.
//
// A synthetic campaign database (default 50,000 images x 20 variants, top-5 ids and scores and 5
// timed samples per result, no full outputs) is generated once with the Store API and cached in a
// file; generating it is never timed. Each round then runs in a fresh child process (fork), so
// every round starts cold in memory like a real `deltann` command, and times:
//
//   compare   deltann::compare_variants(store)        (the analysis behind compare/report/export)
//   json      deltann::export_json                    (to a file beside the database)
//   csv       deltann::export_csv, results table      (to a file beside the database)
//   html      deltann::write_html_report              (when include/deltann/report.h exists)
//
// Peak RSS is the child's getrusage(RUSAGE_SELF).ru_maxrss, read after each phase (so each figure
// is the peak so far in that round). Target: compare + html under 5 s.
//
// Synthetic data: 1000 classes; 90% of images labelled; variant 0 ranks the label first on 80% of
// images. Every other variant agrees with variant 0's top-1 on 97% of images (of the 3% that
// differ, two thirds are near-ties where the top two swap, one third a confident change to another
// class), shuffles ranks 4-5 on 10%, and adds small noise to the scores. Latency per variant is
// lognormal around 2 + 0.25 * v ms (5% spread), so timing tests find real slow-downs.
#include <sys/resource.h>
#include <sys/wait.h>
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
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "deltann/compare.h"
#include "deltann/export.h"
#include "deltann/store.h"

#if __has_include("deltann/report.h")
#include "deltann/report.h"
#define BENCH_HAS_HTML_REPORT 1
#else
#define BENCH_HAS_HTML_REPORT 0
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using deltann::bench::fixed;

namespace {

struct Shape {
  int images = 50'000;
  int variants = 20;
  int samples = 5;
  uint64_t seed = 1;
  std::string text() const {
    return "images=" + std::to_string(images) + ",variants=" + std::to_string(variants) +
           ",samples=" + std::to_string(samples) + ",seed=" + std::to_string(seed) + ",v1";
  }
};

std::vector<std::string> environments(int count) {
  std::vector<std::string> envs;
  for (const char* threads : {"1", "2", "4", "8"}) {
    for (const char* opt : {"disable", "basic", "extended", "all"})
      envs.push_back(std::string("ort:opt=") + opt + ",device=cpu,threads=" + threads);
    for (const char* opt : {"off", "on"})
      envs.push_back(std::string("opencv:opt=") + opt + ",device=cpu,threads=" + threads);
  }
  while (static_cast<int>(envs.size()) < count)
    envs.push_back("ort:opt=all,device=cpu,threads=" + std::to_string(envs.size()));
  envs.resize(static_cast<size_t>(count));
  return envs;
}

const char* kSpec =
    R"({"input":{"channel_order":"RGB","crop":224,"dtype":"float32","interpolation":"bilinear",)"
    R"("layout":"NCHW","mean":[127.0,127.0,127.0],"name":"input","resize":256,"scale":1.0,)"
    R"("shape":[1,3,224,224],"std":[128.0,128.0,128.0]},"name":"synthetic",)"
    R"("output":{"classes":1000,"kind":"logits","label_offset":0,"name":"logits"}})";

std::string engine_json(const std::string& name, const std::vector<std::string>& opt) {
  std::string values;
  for (const auto& o : opt) values += (values.empty() ? "\"" : ",\"") + o + "\"";
  return R"({"name":")" + name + R"(","version":"1.0","description":"","devices":["cpu"],)" +
         R"("knobs":[{"name":"opt","values":[)" + values + R"(],"default":")" + opt[0] +
         R"(","help":""},{"name":"threads","values":[],"default":"1","help":""},)" +
         R"({"name":"device","values":["cpu"],"default":"cpu","help":""}],"formats":["onnx"]})";
}

struct Ranking {
  std::vector<int> ids;
  std::vector<float> scores;
};

// Writes the synthetic campaign to `path` (a new file), in batches of 10,000 results.
void generate(const fs::path& path, const Shape& shape) {
  constexpr int kClasses = 1000;
  std::mt19937_64 rng(shape.seed);
  std::uniform_int_distribution<int> any_class(0, kClasses - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  std::normal_distribution<double> normal(0, 1);
  std::exponential_distribution<double> gap(1.0);

  deltann::Store store(path, deltann::StoreMode::ReadWrite, 10'000);
  store.set_meta("created_at", "1700000000");
  store.set_meta("deltann_version", "bench");
  store.set_meta("host", "synthetic");
  store.set_meta("dataset", "/data/imagenet/val (synthetic)");
  store.set_meta("images", "/data/imagenet/val");
  store.set_meta("preprocessing", "synthetic");
  store.set_meta("timing", "warmup=0, repeat=" + std::to_string(shape.samples));
  store.set_meta("engine:ort", engine_json("ort", {"all", "disable", "basic", "extended"}));
  store.set_meta("engine:opencv", engine_json("opencv", {"on", "off"}));
  store.set_meta("bench_shape", shape.text());
  const int64_t model = store.ensure_model({0, "/models/synthetic.onnx", "00ff", kSpec});

  std::vector<int64_t> image_ids;
  std::vector<Ranking> base(static_cast<size_t>(shape.images));
  for (int i = 0; i < shape.images; ++i) {
    deltann::StoredImage image;
    char key[64];
    std::snprintf(key, sizeof key, "n%05d/ILSVRC2012_val_%08d.JPEG", i % 1000, i + 1);
    image.key = key;
    image.path = std::string("/data/imagenet/val/") + key;
    image.sha256 = std::to_string(i);
    const int label = any_class(rng);
    if (unit(rng) < 0.9) image.label = label;
    image_ids.push_back(store.ensure_image(image));
    // Variant 0's ranking: the label first on 80% of images, four other distinct classes.
    Ranking& r = base[static_cast<size_t>(i)];
    r.ids.push_back(unit(rng) < 0.8 ? label : any_class(rng));
    while (r.ids.size() < 5) {
      const int c = any_class(rng);
      if (std::find(r.ids.begin(), r.ids.end(), c) == r.ids.end()) r.ids.push_back(c);
    }
    double s = 8 + normal(rng);
    for (size_t k = 0; k < 5; ++k) {
      r.scores.push_back(static_cast<float>(s));
      s -= gap(rng) * (k == 0 ? 2.0 : 0.5);
    }
  }

  const auto envs = environments(shape.variants);
  for (int v = 0; v < shape.variants; ++v) {
    const std::string& env = envs[static_cast<size_t>(v)];
    const int64_t id = store.ensure_variant(model, env, env.substr(0, env.find(':')));
    store.record_load(id, "1.0", "00ff", 50'000'000, "{}");
    store.record_first_inference(id, 9'000'000);
    const double median_ns = (2.0 + 0.25 * v) * 1e6;
    for (int i = 0; i < shape.images; ++i) {
      Ranking r = base[static_cast<size_t>(i)];
      if (v > 0) {
        for (auto& score : r.scores) score += static_cast<float>(0.01 * normal(rng));
        const double u = unit(rng);
        if (u < 0.02) {  // near-tie: the top two swap with almost equal scores
          std::swap(r.ids[0], r.ids[1]);
          r.scores[1] = r.scores[0] - 0.01f;
        } else if (u < 0.03) {  // confident change to a class outside the list
          int c = any_class(rng);
          while (std::find(r.ids.begin(), r.ids.end(), c) != r.ids.end()) c = any_class(rng);
          r.ids.insert(r.ids.begin(), c);
          r.ids.pop_back();
          r.scores.insert(r.scores.begin(), r.scores[0] + 1.0f);
          r.scores.pop_back();
        } else if (u < 0.13) {
          std::swap(r.ids[3], r.ids[4]);
          std::swap(r.scores[3], r.scores[4]);
        }
      }
      deltann::StoredResult result;
      result.variant_id = id;
      result.image_id = image_ids[static_cast<size_t>(i)];
      result.top_ids = std::move(r.ids);
      result.top_scores = std::move(r.scores);
      for (int k = 0; k < shape.samples; ++k)
        result.samples_ns.push_back(static_cast<int64_t>(median_ns * std::exp(0.05 * normal(rng))));
      store.add_result(std::move(result));
    }
    store.set_variant_status(id, deltann::VariantStatus::done);
    std::cerr << "\rgenerated variant " << (v + 1) << "/" << shape.variants << std::flush;
  }
  store.flush();
  std::cerr << '\n';
}

// The cached database for `shape`, generated when missing or made for another shape.
fs::path cached_database(const fs::path& path, const Shape& shape) {
  if (fs::exists(path)) {
    try {
      deltann::Store store(path);
      if (store.meta("bench_shape") == shape.text()) return path;
    } catch (const std::exception&) {
    }
    std::cerr << path.string() << " holds another shape; generating again\n";
  }
  // Generated under another name and renamed when complete, so an interrupted run is not reused.
  const fs::path partial = path.string() + ".partial";
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(partial.string() + suffix);
  const auto start = Clock::now();
  generate(partial, shape);
  { deltann::Store checkpoint(partial); }  // the last connection folds the WAL into the file
  for (const char* suffix : {"-wal", "-shm"}) fs::remove(path.string() + suffix);
  fs::rename(partial, path);
  std::cerr << "generated " << path.string() << " in "
            << fixed(std::chrono::duration<double>(Clock::now() - start).count(), 1) << " s\n";
  return path;
}

double peak_rss_mib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

// What one round measured: seconds and the peak RSS after each phase.
struct Round {
  double compare_s = NAN, json_s = NAN, csv_s = NAN, html_s = NAN;
  double rss_open = NAN, rss_compare = NAN, rss_json = NAN, rss_csv = NAN, rss_html = NAN;
  double json_mib = NAN, csv_mib = NAN, html_mib = NAN;
  int pairs = 0, findings = 0;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double file_mib(const fs::path& p) { return static_cast<double>(fs::file_size(p)) / 1048576.0; }

Round run_round(const fs::path& db, const fs::path& out_dir, const std::string& phases) {
  Round r;
  deltann::Store store(db);
  r.rss_open = peak_rss_mib();
  auto start = Clock::now();
  const deltann::Comparison c = deltann::compare_variants(store);
  r.compare_s = seconds_since(start);
  r.rss_compare = peak_rss_mib();
  r.pairs = static_cast<int>(c.pairs.size());
  r.findings = static_cast<int>(c.findings.size());
  if (phases.find("json") != std::string::npos) {
    const fs::path file = out_dir / "bench_export.json";
    start = Clock::now();
    {
      std::ofstream out(file, std::ios::binary);
      deltann::export_json(store, c, out);
    }
    r.json_s = seconds_since(start);
    r.rss_json = peak_rss_mib();
    r.json_mib = file_mib(file);
    fs::remove(file);
  }
  if (phases.find("csv") != std::string::npos) {
    const fs::path file = out_dir / "bench_export.csv";
    start = Clock::now();
    {
      std::ofstream out(file, std::ios::binary);
      deltann::export_csv(store, c, deltann::ExportTable::results, out);
    }
    r.csv_s = seconds_since(start);
    r.rss_csv = peak_rss_mib();
    r.csv_mib = file_mib(file);
    fs::remove(file);
  }
#if BENCH_HAS_HTML_REPORT
  if (phases.find("html") != std::string::npos) {
    const fs::path file = out_dir / "bench_report.html";
    start = Clock::now();
    {
      std::ofstream out(file, std::ios::binary);
      deltann::write_html_report(store, c, out);
    }
    r.html_s = seconds_since(start);
    r.rss_html = peak_rss_mib();
    r.html_mib = file_mib(file);
    fs::remove(file);
  }
#endif
  return r;
}

// Runs one round in a child process and reads its Round back through a pipe.
bool run_round_in_child(const fs::path& db, const fs::path& out_dir, const std::string& phases,
                        Round& round) {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    ::close(fds[0]);
    int status = 0;
    try {
      const Round r = run_round(db, out_dir, phases);
      status = ::write(fds[1], &r, sizeof r) == static_cast<ssize_t>(sizeof r) ? 0 : 1;
    } catch (const std::exception& e) {
      std::cerr << "round failed: " << e.what() << '\n';
      status = 1;
    }
    ::_exit(status);
  }
  ::close(fds[1]);
  const ssize_t got = ::read(fds[0], &round, sizeof round);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return got == static_cast<ssize_t>(sizeof round) && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

double median_of(const std::vector<Round>& rounds, double Round::*field) {
  std::vector<double> v;
  for (const auto& r : rounds) v.push_back(r.*field);
  return deltann::bench::median(v);
}

double max_of(const std::vector<Round>& rounds, double Round::*field) {
  double m = NAN;
  for (const auto& r : rounds)
    if (!std::isnan(r.*field)) m = std::isnan(m) ? r.*field : std::max(m, r.*field);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  deltann::bench::Options options(
      "bench_analysis_scale",
      "Times compare_variants, the JSON and CSV exports and the HTML report on a synthetic\n"
      "campaign (generated once, cached), each round in a fresh process; prints peak RSS.");
  options.add("images", "50000", "images in the synthetic campaign");
  options.add("variants", "20", "variants in the synthetic campaign");
  options.add("samples", "5", "timed samples per result");
  options.add("seed", "1", "seed of the generator");
  options.add("db", "", "cached database (default: <tmp>/deltann-bench/analysis_<shape>.db)");
  options.add("rounds", "3", "rounds, each in a new process");
  options.add("phases", "json,csv,html", "what to time after compare: json, csv, html");
  options.add("target", "5", "seconds that compare + html should stay under");
  int status = 0;
  if (!options.parse(argc, argv, status)) return status;
  try {
    Shape shape;
    shape.images = options.integer("images", 1);
    shape.variants = options.integer("variants", 2);
    shape.samples = options.integer("samples", 1);
    shape.seed = static_cast<uint64_t>(options.integer("seed", 0));
    const int rounds = options.integer("rounds", 1);
    const double target = std::stod(options.str("target"));
    fs::path db = options.str("db");
    if (db.empty()) {
      db = fs::temp_directory_path() / "deltann-bench" /
           ("analysis_" + std::to_string(shape.images) + "x" + std::to_string(shape.variants) +
            "x" + std::to_string(shape.samples) + "_s" + std::to_string(shape.seed) + ".db");
    }
    if (db.has_parent_path()) fs::create_directories(db.parent_path());
    cached_database(db, shape);
    const fs::path out_dir = db.has_parent_path() ? db.parent_path() : fs::current_path();

    std::cout << "bench_analysis_scale " << deltann::bench::today_utc() << '\n'
              << "database: " << db.string() << " (" << fixed(file_mib(db), 1) << " MiB; "
              << shape.images << " images x " << shape.variants << " variants, " << shape.samples
              << " samples per result, no full outputs)\n";
    std::vector<Round> results;
    for (int i = 0; i < rounds; ++i) {
      Round r;
      if (!run_round_in_child(db, out_dir, options.str("phases"), r)) {
        std::cerr << "bench_analysis_scale: round " << (i + 1) << " failed\n";
        return 1;
      }
      std::cout << "round " << (i + 1) << ": compare " << fixed(r.compare_s, 2) << " s, json "
                << fixed(r.json_s, 2) << " s, csv " << fixed(r.csv_s, 2) << " s, html "
                << fixed(r.html_s, 2) << " s, peak RSS " << fixed(r.rss_html, 0) << " MiB\n";
      results.push_back(r);
    }
    const Round& any = results.front();
    std::cout << "\n"
              << any.pairs << " pairs, " << any.findings << " findings; median of " << rounds
              << " rounds (peak RSS: largest of the rounds, cumulative within a round)\n\n";
    std::printf("%-26s %10s %16s %12s\n", "phase", "seconds", "peak RSS MiB", "output MiB");
    std::printf("%-26s %10s %16s %12s\n", "open store", "-",
                fixed(max_of(results, &Round::rss_open), 0).c_str(), "-");
    std::printf("%-26s %10s %16s %12s\n", "compare_variants",
                fixed(median_of(results, &Round::compare_s), 2).c_str(),
                fixed(max_of(results, &Round::rss_compare), 0).c_str(), "-");
    std::printf("%-26s %10s %16s %12s\n", "export_json",
                fixed(median_of(results, &Round::json_s), 2).c_str(),
                fixed(max_of(results, &Round::rss_json), 0).c_str(),
                fixed(any.json_mib, 1).c_str());
    std::printf("%-26s %10s %16s %12s\n", "export_csv (results)",
                fixed(median_of(results, &Round::csv_s), 2).c_str(),
                fixed(max_of(results, &Round::rss_csv), 0).c_str(), fixed(any.csv_mib, 1).c_str());
    std::printf("%-26s %10s %16s %12s\n",
                BENCH_HAS_HTML_REPORT ? "write_html_report" : "write_html_report (n/a)",
                fixed(median_of(results, &Round::html_s), 2).c_str(),
                fixed(max_of(results, &Round::rss_html), 0).c_str(),
                fixed(any.html_mib, 1).c_str());
    const double total =
        median_of(results, &Round::compare_s) +
        (std::isnan(median_of(results, &Round::html_s)) ? 0 : median_of(results, &Round::html_s));
    std::cout << "\ncompare + html: " << fixed(total, 2) << " s (target < " << fixed(target, 1)
              << " s): " << (total < target ? "met" : "NOT met") << '\n';
  } catch (const std::exception& e) {
    std::cerr << "bench_analysis_scale: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
