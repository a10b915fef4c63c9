// bench_ort_overhead: what deltann adds to the per-image latency of an ONNX Runtime variant.
//
// It compares, in one run, two measurements of the same model on the same preprocessed tensor
// with the same session settings (graph optimisation level all, intra-op threads --threads,
// inter-op threads 1, sequential execution):
//
//   direct   a minimal loop in this process: one Ort::Session, a first run and --warmup untimed
//            runs, then --repeat timed Run calls with steady_clock around Run only;
//   deltann  `deltann run --env ort:opt=all,threads=T --repeat N --warmup W` on that one image,
//            started as a subprocess from an argument vector; its samples_ns are read back from
//            the campaign database it writes.
//
// Rounds alternate direct, deltann, direct, deltann... so that slow drift of the machine (other
// tenants, frequency, thermal state) falls on both sides alike. Each round uses a fresh session
// (deltann starts a fresh worker per round, so the direct side does the same). The tensor is the
// .npy that deltann's own preprocessing cache holds: this program fills a private cache with
// deltann::PreprocessCache and passes it to `deltann run --cache`, so both sides read one file.
//
// The verdict compares the median of all deltann samples with the median of all direct samples
// against --target (1.02); the median of the per-round ratios is printed beside it. The program
// exits 0 whatever the verdict; it exits 1 only when it cannot measure.
#include <sched.h>
#include <unistd.h>

#include <onnxruntime_cxx_api.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

#include "bench_util.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/tensor.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using deltann::bench::fixed;
using deltann::bench::median;
using deltann::bench::percentile;

namespace {

struct Side {
  std::vector<double> samples_ms;
  double first_ms = NAN;
  double wall_s = NAN;  // deltann only: the whole subprocess, start to exit
  std::vector<float> output;
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string name_or_first(const std::string& wanted, size_t count,
                          const std::function<std::string(size_t)>& name_at) {
  if (!wanted.empty()) return wanted;
  if (count == 0) throw std::runtime_error("the model has no inputs or no outputs");
  return name_at(0);
}

// The reference: what a user calling ONNX Runtime directly would write.
Side run_direct(Ort::Env& env, const fs::path& model, const deltann::ModelSpec& spec,
                deltann::Tensor& input, int threads, int warmup, int repeat) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(ORT_ENABLE_ALL);
  options.SetIntraOpNumThreads(threads);
  options.SetInterOpNumThreads(1);
  options.SetExecutionMode(ORT_SEQUENTIAL);
  Ort::Session session(env, model.c_str(), options);

  Ort::AllocatorWithDefaultOptions allocator;
  const std::string input_name = name_or_first(
      spec.input.name, session.GetInputCount(),
      [&](size_t i) { return std::string(session.GetInputNameAllocated(i, allocator).get()); });
  const std::string output_name = name_or_first(
      spec.output.name, session.GetOutputCount(),
      [&](size_t i) { return std::string(session.GetOutputNameAllocated(i, allocator).get()); });
  const char* in = input_name.c_str();
  const char* out = output_name.c_str();
  const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  Ort::Value value = Ort::Value::CreateTensor<float>(memory, input.data.data(), input.data.size(),
                                                     input.shape.data(), input.shape.size());
  const Ort::RunOptions run_options{nullptr};

  Side side;
  const auto first_start = Clock::now();
  session.Run(run_options, &in, &value, 1, &out, 1);
  side.first_ms = ms_since(first_start);
  for (int i = 0; i < warmup; ++i) session.Run(run_options, &in, &value, 1, &out, 1);
  side.samples_ms.reserve(static_cast<size_t>(repeat));
  std::vector<Ort::Value> outputs;
  for (int i = 0; i < repeat; ++i) {
    const auto start = Clock::now();
    auto result = session.Run(run_options, &in, &value, 1, &out, 1);
    side.samples_ms.push_back(ms_since(start));
    outputs = std::move(result);  // released outside the clock
  }
  const float* data = outputs.front().GetTensorData<float>();
  side.output.assign(data, data + outputs.front().GetTensorTypeAndShapeInfo().GetElementCount());
  return side;
}

template <typename T>
std::vector<T> blob_values(const SQLite::Column& column) {
  std::vector<T> values(static_cast<size_t>(column.getBytes()) / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), column.getBlob(), values.size() * sizeof(T));
  return values;
}

Side run_deltann(const fs::path& deltann, const fs::path& model, const fs::path& list,
                 const fs::path& cache, const fs::path& db, int threads, int warmup, int repeat) {
  fs::remove(db);  // a campaign resumes from its database; every round must start empty
  const std::vector<std::string> args = {
      deltann.string(), "run",
      "--model",        model.string(),
      "--images",       list.string(),
      "--env",          "ort:opt=all,threads=" + std::to_string(threads),
      "--db",           db.string(),
      "--cache",        cache.string(),
      "--repeat",       std::to_string(repeat),
      "--warmup",       std::to_string(warmup),
      "--quiet"};
  fs::path log = db;
  log.replace_extension(".log");
  const auto start = Clock::now();
  const int status = deltann::bench::run_measured(args, log).exit_code;
  Side side;
  side.wall_s = ms_since(start) / 1000.0;
  if (status != 0)
    throw std::runtime_error("`deltann run` exited with status " + std::to_string(status) +
                             "; its output:\n" + deltann::bench::file_text(log));

  SQLite::Database database(db.string(), SQLite::OPEN_READONLY);
  SQLite::Statement results(database, "SELECT samples_ns, output FROM results");
  int rows = 0;
  while (results.executeStep()) {
    ++rows;
    for (const int64_t ns : blob_values<int64_t>(results.getColumn(0)))
      side.samples_ms.push_back(static_cast<double>(ns) / 1e6);
    if (!results.getColumn(1).isNull()) side.output = blob_values<float>(results.getColumn(1));
  }
  if (rows != 1 || side.samples_ms.size() != static_cast<size_t>(repeat))
    throw std::runtime_error(db.string() + ": expected one result with " + std::to_string(repeat) +
                             " samples, found " + std::to_string(rows) + " results with " +
                             std::to_string(side.samples_ms.size()) +
                             " samples; deltann's output:\n" + deltann::bench::file_text(log));
  SQLite::Statement first(database, "SELECT first_ns FROM variants");
  if (first.executeStep() && !first.getColumn(0).isNull())
    side.first_ms = static_cast<double>(first.getColumn(0).getInt64()) / 1e6;
  return side;
}

fs::path default_deltann() {
#ifdef DELTANN_BENCH_DELTANN
  if (fs::exists(DELTANN_BENCH_DELTANN)) return DELTANN_BENCH_DELTANN;
#endif
  // The bench binary lives in <build>/bench/; deltann in <build>/.
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("deltann") : self.parent_path().parent_path() / "deltann";
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return NAN;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
  return worst;
}

void pin_to(const std::string& cpu_text) {
  const int cpu = std::stoi(cpu_text);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    throw std::runtime_error("cannot pin to CPU " + cpu_text + ": " + std::strerror(errno));
}

int measure(const deltann::bench::Options& o) {
  const fs::path model = fs::absolute(o.str("model"));
  const fs::path image = fs::absolute(o.str("image"));
  const fs::path deltann =
      o.str("deltann").empty() ? default_deltann() : fs::path(o.str("deltann"));
  const int threads = o.integer("threads", 1), rounds = o.integer("rounds", 1);
  const int repeat = o.integer("repeat", 1), warmup = o.integer("warmup", 0);
  const double target = std::stod(o.str("target"));
  if (!fs::is_regular_file(model))
    throw std::runtime_error("model " + model.string() + " does not exist");
  if (!fs::is_regular_file(image))
    throw std::runtime_error("image " + image.string() + " does not exist");
  if (!fs::is_regular_file(deltann))
    throw std::runtime_error("deltann binary " + deltann.string() +
                             " does not exist (pass --deltann PATH)");
  if (!o.str("pin").empty()) pin_to(o.str("pin"));

  // A private work folder: the campaign databases, deltann's logs, and the tensor cache.
  std::string pattern = (fs::temp_directory_path() / "deltann-bench-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary folder");
  const fs::path work = pattern;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{work};

  const deltann::ModelSpec spec = deltann::load_model_spec(model);
  deltann::PreprocessCache cache(work / "cache");
  const auto entry = cache.prepare(image, spec.input);
  deltann::Tensor tensor = deltann::read_npy(entry.tensor_path);
  const fs::path list = work / "images.txt";
  std::ofstream(list) << image.string() << '\n';

  std::cout << "bench_ort_overhead: deltann vs direct ONNX Runtime, same tensor, same settings\n"
            << "  date       " << deltann::bench::today_utc() << '\n'
            << "  model      " << model.string() << '\n'
            << "  image      " << image.string() << "  (tensor " << tensor.shape_string()
            << " from " << entry.tensor_path.filename().string() << ")\n"
            << "  deltann    " << deltann.string() << '\n'
            << "  settings   ORT " << OrtGetApiBase()->GetVersionString()
            << ", graph opt all, intra-op threads " << threads << ", inter-op 1, sequential"
            << (o.str("pin").empty() ? "" : ", pinned to CPU " + o.str("pin")) << '\n'
            << "  method     " << rounds << " rounds x (direct, deltann), each: first run + "
            << warmup << " warm-up + " << repeat << " timed runs\n\n";

  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "bench_ort_overhead");
  std::vector<double> all_direct, all_deltann, round_ratios;
  std::vector<double> first_direct, first_deltann;
  double worst_output_difference = 0;
  std::cout << std::right << std::setw(5) << "round" << std::setw(12) << "direct med"
            << std::setw(10) << "p90" << std::setw(13) << "deltann med" << std::setw(10) << "p90"
            << std::setw(8) << "ratio" << std::setw(10) << "1st dir" << std::setw(10) << "1st dnn"
            << std::setw(11) << "deltann s" << '\n';
  for (int r = 1; r <= rounds; ++r) {
    const Side direct = run_direct(env, model, spec, tensor, threads, warmup, repeat);
    const Side ours =
        run_deltann(deltann, model, list, work / "cache",
                    work / ("round" + std::to_string(r) + ".db"), threads, warmup, repeat);
    const double ratio = median(ours.samples_ms) / median(direct.samples_ms);
    round_ratios.push_back(ratio);
    all_direct.insert(all_direct.end(), direct.samples_ms.begin(), direct.samples_ms.end());
    all_deltann.insert(all_deltann.end(), ours.samples_ms.begin(), ours.samples_ms.end());
    first_direct.push_back(direct.first_ms);
    first_deltann.push_back(ours.first_ms);
    const double difference = max_abs_difference(direct.output, ours.output);
    if (std::isnan(difference) || difference > worst_output_difference)
      worst_output_difference = difference;
    std::cout << std::setw(5) << r << std::setw(12) << fixed(median(direct.samples_ms), 3)
              << std::setw(10) << fixed(percentile(direct.samples_ms, 90), 3) << std::setw(13)
              << fixed(median(ours.samples_ms), 3) << std::setw(10)
              << fixed(percentile(ours.samples_ms, 90), 3) << std::setw(8) << fixed(ratio, 3)
              << std::setw(10) << fixed(direct.first_ms, 2) << std::setw(10)
              << fixed(ours.first_ms, 2) << std::setw(11) << fixed(ours.wall_s, 2) << '\n'
              << std::flush;
  }

  const double direct_median = median(all_direct), deltann_median = median(all_deltann);
  const double ratio_of_medians = deltann_median / direct_median;
  const double median_round_ratio = median(round_ratios);
  std::cout << "\nall rounds (" << all_direct.size()
            << " samples a side), milliseconds per inference\n"
            << "  " << std::left << std::setw(9) << "" << std::right << std::setw(10) << "median"
            << std::setw(10) << "p90" << std::setw(10) << "min" << std::setw(12) << "first run"
            << '\n';
  const auto row = [&](const char* name, const std::vector<double>& s,
                       const std::vector<double>& first) {
    std::cout << "  " << std::left << std::setw(9) << name << std::right << std::setw(10)
              << fixed(median(s), 3) << std::setw(10) << fixed(percentile(s, 90), 3)
              << std::setw(10) << fixed(percentile(s, 0), 3) << std::setw(12)
              << fixed(median(first), 2) << '\n';
  };
  row("direct", all_direct, first_direct);
  row("deltann", all_deltann, first_deltann);
  std::cout << "  ratio deltann/direct: " << fixed(ratio_of_medians, 3) << " (of medians), "
            << fixed(median_round_ratio, 3) << " (median of per-round ratios), "
            << fixed(percentile(all_deltann, 90) / percentile(all_direct, 90), 3) << " (of p90s)\n"
            << "  outputs: max |direct - deltann| = " << fixed(worst_output_difference, 7)
            << " (0 means the same computation)\n"
            << (ratio_of_medians <= target ? "PASS" : "FAIL") << ": ratio of medians "
            << fixed(ratio_of_medians, 3) << (ratio_of_medians <= target ? " <= " : " > ")
            << fixed(target, 2) << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  deltann::bench::Options o(
      "bench_ort_overhead",
      "Per-image latency of `deltann run` with an ONNX Runtime variant against a direct\n"
      "ONNX Runtime loop on the same tensor, in alternating rounds. Exits 0 whatever the verdict.");
  const std::string demo = DELTANN_BENCH_DEMO_DIR;
  o.add("model", demo + "/efficientnet-lite0.onnx",
        "ONNX model (its .spec.json sidecar is used when present)");
  o.add("image", demo + "/images/squirrel_cls.jpg", "the one image both sides run");
  o.add("threads", "1", "ONNX Runtime intra-op threads, both sides");
  o.add("rounds", "5", "rounds; each runs direct then deltann");
  o.add("repeat", "100", "timed runs per side per round");
  o.add("warmup", "10", "untimed runs after the first one, per side per round");
  o.add("deltann", "", "deltann binary (default: the one built beside this benchmark)");
  o.add("pin", "", "pin this process and its children to one CPU (e.g. 1); default: no pinning");
  o.add("target", "1.02", "largest acceptable ratio deltann/direct of medians");
  int status = 0;
  if (!o.parse(argc, argv, status)) return status;
  try {
    return measure(o);
  } catch (const std::exception& e) {
    std::cerr << "bench_ort_overhead: " << e.what() << '\n';
    return 1;
  }
}
