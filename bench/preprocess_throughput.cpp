// bench_preprocess_throughput: images per second per core of deltann::preprocess_image against a
// plain OpenCV loop doing the same work, single-threaded (cv::setNumThreads(1)).
//
//   deltann  deltann::preprocess_image(path, spec.input): reads the file, checks its header,
//            cv::imdecode, cvtColor BGR->RGB, resize of the shorter side, centre crop, then its
//            own per-pixel loop to normalised float NCHW;
//   plain    cv::imread(IMREAD_COLOR), cvtColor BGR->RGB, cv::resize of the shorter side (same
//            interpolation and rounding), centre crop, convertTo float with scale/mean/std, and
//            cv::split into the NCHW planes of the output tensor.
//
// Rounds alternate deltann, plain, deltann, plain... over --passes passes of the whole image set,
// so drift of a shared machine falls on both. Throughput is images per second of this thread's
// CPU time (per core, insensitive to time the thread spends descheduled), with the wall-clock
// figure beside it. Both sides' tensors are compared once, so the comparison is of equal work.
#include <malloc.h>
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "bench_util.h"
#include "deltann/dataset.h"
#include "deltann/preprocess.h"
#include "deltann/spec.h"
#include "deltann/tensor.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using deltann::bench::fixed;
using deltann::bench::median;

namespace {

// Minor page faults of this thread so far: a fresh buffer costs one per 4 KiB page touched, so
// this shows when a pipeline's large buffers go back to the kernel between calls.
long thread_page_faults() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

int interpolation(const std::string& name) {
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "area") return cv::INTER_AREA;
  if (name == "bicubic") return cv::INTER_CUBIC;
  return cv::INTER_LINEAR;
}

// The reference, after decoding: resize, crop, normalise and split with OpenCV calls. `image` is
// 8-bit, 3 channels, already in the spec's channel order.
deltann::Tensor plain_from_pixels(const cv::Mat& image, const deltann::InputSpec& spec) {
  const double factor = static_cast<double>(spec.resize) / std::min(image.cols, image.rows);
  const int new_w = std::max(spec.crop, static_cast<int>(std::lround(image.cols * factor)));
  const int new_h = std::max(spec.crop, static_cast<int>(std::lround(image.rows * factor)));
  cv::Mat resized;
  cv::resize(image, resized, cv::Size(new_w, new_h), 0, 0, interpolation(spec.interpolation));
  const int size = spec.crop;
  const cv::Mat crop = resized(cv::Rect((new_w - size) / 2, (new_h - size) / 2, size, size));

  cv::Mat normalised;
  const bool uniform = spec.mean[0] == spec.mean[1] && spec.mean[1] == spec.mean[2] &&
                       spec.std[0] == spec.std[1] && spec.std[1] == spec.std[2];
  if (uniform) {
    crop.convertTo(normalised, CV_32F, spec.scale / spec.std[0], -spec.mean[0] / spec.std[0]);
  } else {
    crop.convertTo(normalised, CV_32F, spec.scale);
    cv::subtract(normalised, cv::Scalar(spec.mean[0], spec.mean[1], spec.mean[2]), normalised);
    cv::divide(normalised, cv::Scalar(spec.std[0], spec.std[1], spec.std[2]), normalised);
  }

  deltann::Tensor t;
  t.shape = spec.shape;
  t.data.resize(static_cast<size_t>(3) * size * size);
  if (spec.layout == deltann::Layout::NCHW) {
    std::vector<cv::Mat> planes;
    for (int c = 0; c < 3; ++c)
      planes.emplace_back(size, size, CV_32F, t.data.data() + static_cast<size_t>(c) * size * size);
    cv::split(normalised,
              planes);  // writes into the tensor: the planes already have the right size and type
  } else {
    normalised.copyTo(cv::Mat(size, size, CV_32FC3, t.data.data()));
  }
  return t;
}

cv::Mat plain_decode(const fs::path& path, const deltann::InputSpec& spec) {
  cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error(path.string() + ": cv::imread cannot read it");
  if (spec.channel_order == deltann::ChannelOrder::BGR) return bgr;
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

// The reference: the same preprocessing written as a plain OpenCV pipeline.
deltann::Tensor plain_opencv(const fs::path& path, const deltann::InputSpec& spec) {
  return plain_from_pixels(plain_decode(path, spec), spec);
}

struct Image {
  fs::path path;
  std::string name;
  cv::Mat pixels;  // decoded once, in the spec's channel order, for the pixel-stage comparison
};

struct SideRound {
  double cpu_s = 0, wall_s = 0;
  int images = 0;
  long page_faults = 0;
  double faults_per_image() const { return static_cast<double>(page_faults) / images; }
};

// Runs `preprocess(i)` for every image, `passes` times. Each call's wall time goes to
// `per_image_ms[i]`; the totals (CPU and wall) cover the whole side, the tensor's release included.
template <typename Preprocess>
SideRound run_side(size_t count, int passes, Preprocess preprocess,
                   std::vector<std::vector<double>>& per_image_ms) {
  per_image_ms.resize(count);
  SideRound r;
  const long faults_start = thread_page_faults();
  const double cpu_start = thread_cpu_seconds();
  const auto wall_start = Clock::now();
  for (int p = 0; p < passes; ++p)
    for (size_t i = 0; i < count; ++i) {
      const auto start = Clock::now();
      const deltann::Tensor t = preprocess(i);
      per_image_ms[i].push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      if (t.data.empty()) throw std::runtime_error("empty tensor");
      ++r.images;
    }
  r.wall_s = std::chrono::duration<double>(Clock::now() - wall_start).count();
  r.cpu_s = thread_cpu_seconds() - cpu_start;
  r.page_faults = thread_page_faults() - faults_start;
  return r;
}

double max_abs_difference(const deltann::Tensor& a, const deltann::Tensor& b) {
  if (a.data.size() != b.data.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(a.data[i] - b.data[i])));
  return worst;
}

int measure(const deltann::bench::Options& o) {
  // glibc returns the top of the heap to the kernel when more than M_TRIM_THRESHOLD is free, and
  // serves blocks above M_MMAP_THRESHOLD with fresh mappings; both thresholds move with the
  // allocation history. Each pipeline here allocates a few hundred KiB to a few MiB per image, so
  // by default whether a call re-faults its buffers page by page depends on what ran before it.
  // `retain` fixes both thresholds high so that freed memory stays mapped and the comparison is
  // of the work itself; `glibc` leaves the defaults (what a process that tunes nothing gets).
  const std::string malloc_mode = o.str("malloc");
  if (malloc_mode == "retain") {
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
  } else if (malloc_mode != "glibc") {
    throw std::runtime_error("--malloc must be retain or glibc (got '" + malloc_mode + "')");
  }
  cv::setNumThreads(1);
  const fs::path model = fs::absolute(o.str("model"));
  const int rounds = o.integer("rounds", 1), passes = o.integer("passes", 1);
  const deltann::ModelSpec spec = deltann::load_model_spec(
      model, o.str("spec").empty() ? std::nullopt : std::optional<fs::path>(o.str("spec")));
  const deltann::InputSpec& in = spec.input;
  const deltann::Dataset dataset = deltann::load_dataset(o.str("images"));
  std::vector<Image> images;
  for (const auto& entry : dataset.images) {
    if (!entry.usable()) {
      std::cerr << "skipped " << entry.key << ": " << entry.problem << '\n';
      continue;
    }
    images.push_back({entry.path, entry.path.filename().string(), plain_decode(entry.path, in)});
  }
  if (images.empty()) throw std::runtime_error("no images in " + o.str("images"));
  const size_t n = images.size();

  // The four things timed: whole pipelines from the file, and the pixel stage alone (resize, crop,
  // normalise, layout) on pixels decoded beforehand.
  const auto deltann_full = [&](size_t i) {
    return deltann::preprocess_image(images[i].path, in).tensor;
  };
  const auto plain_full = [&](size_t i) { return plain_opencv(images[i].path, in); };
  const auto deltann_pixels = [&](size_t i) {
    const cv::Mat& m = images[i].pixels;
    return deltann::preprocess_pixels(m.data, m.cols, m.rows, in);
  };
  const auto plain_pixels = [&](size_t i) { return plain_from_pixels(images[i].pixels, in); };

  // Equal work: the two tensors must agree (up to float rounding of the normalisation).
  std::vector<double> difference(n);
  for (size_t i = 0; i < n; ++i) difference[i] = max_abs_difference(deltann_full(i), plain_full(i));

  std::cout
      << "bench_preprocess_throughput: deltann::preprocess_image vs plain OpenCV, one thread\n"
      << "  date       " << deltann::bench::today_utc() << '\n'
      << "  spec       " << model.filename().string() << ": resize " << in.resize << " ("
      << in.interpolation << "), crop " << in.crop << ", "
      << (in.layout == deltann::Layout::NCHW ? "NCHW" : "NHWC") << ", "
      << (in.channel_order == deltann::ChannelOrder::RGB ? "RGB" : "BGR") << '\n'
      << "  images     " << n << " from " << o.str("images") << '\n'
      << "  library    OpenCV " << CV_VERSION << ", cv::getNumThreads() = " << cv::getNumThreads()
      << '\n'
      << "  malloc     "
      << (malloc_mode == "retain" ? "retain (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 512 MiB)"
                                  : "glibc defaults (dynamic thresholds)")
      << '\n'
      << "  method     " << rounds << " rounds x (deltann, plain), each " << passes
      << " passes over the images, after one untimed pass a side\n\n";

  std::vector<std::vector<double>> scratch, d_full_ms, p_full_ms, d_pix_ms, p_pix_ms;
  run_side(n, 1, deltann_full, scratch);  // warm the page cache and the libraries
  run_side(n, 1, plain_full, scratch);

  std::vector<double> d_cpu, p_cpu, d_wall, p_wall, ratios, d_faults, p_faults, dp_faults,
      pp_faults;
  std::cout << "images per second per CPU-second of this thread (per wall-second in brackets); "
               "page faults per image\n"
            << std::right << std::setw(5) << "round" << std::setw(16) << "deltann img/s"
            << std::setw(16) << "plain img/s" << std::setw(20) << "time deltann/plain"
            << std::setw(12) << "faults d" << std::setw(10) << "faults p" << '\n';
  for (int r = 1; r <= rounds; ++r) {
    const SideRound d = run_side(n, passes, deltann_full, d_full_ms);
    const SideRound p = run_side(n, passes, plain_full, p_full_ms);
    dp_faults.push_back(run_side(n, passes, deltann_pixels, d_pix_ms).faults_per_image());
    pp_faults.push_back(run_side(n, passes, plain_pixels, p_pix_ms).faults_per_image());
    d_faults.push_back(d.faults_per_image());
    p_faults.push_back(p.faults_per_image());
    d_cpu.push_back(d.images / d.cpu_s);
    p_cpu.push_back(p.images / p.cpu_s);
    d_wall.push_back(d.images / d.wall_s);
    p_wall.push_back(p.images / p.wall_s);
    ratios.push_back(d.cpu_s / p.cpu_s);
    std::cout << std::setw(5) << r << std::setw(16)
              << (fixed(d_cpu.back(), 1) + " (" + fixed(d_wall.back(), 1) + ")") << std::setw(16)
              << (fixed(p_cpu.back(), 1) + " (" + fixed(p_wall.back(), 1) + ")") << std::setw(20)
              << fixed(ratios.back(), 3) << std::setw(12) << fixed(d_faults.back(), 1)
              << std::setw(10) << fixed(p_faults.back(), 1) << '\n'
              << std::flush;
  }

  std::cout << "\nmedian over rounds, images per second on one core\n"
            << "  " << std::left << std::setw(9) << "" << std::right << std::setw(12) << "per CPU-s"
            << std::setw(12) << "per wall-s" << '\n'
            << "  " << std::left << std::setw(9) << "deltann" << std::right << std::setw(12)
            << fixed(median(d_cpu), 1) << std::setw(12) << fixed(median(d_wall), 1) << '\n'
            << "  " << std::left << std::setw(9) << "plain" << std::right << std::setw(12)
            << fixed(median(p_cpu), 1) << std::setw(12) << fixed(median(p_wall), 1) << '\n'
            << "  throughput deltann/plain: " << fixed(median(d_cpu) / median(p_cpu), 3)
            << " (CPU), " << fixed(median(d_wall) / median(p_wall), 3)
            << " (wall); median per-round CPU-time ratio deltann/plain: "
            << fixed(median(ratios), 3) << '\n'
            << "  minor page faults per image (median over rounds): whole pipeline deltann "
            << fixed(median(d_faults), 1) << ", plain " << fixed(median(p_faults), 1)
            << "; pixel stage deltann " << fixed(median(dp_faults), 1) << ", plain "
            << fixed(median(pp_faults), 1) << "\n\n";

  std::cout << "per image, median wall ms over " << rounds * passes
            << " calls a side; 'pixels' = resize, crop,\n"
            << "normalise and layout only, on pixels decoded beforehand "
               "(deltann::preprocess_pixels vs OpenCV calls)\n"
            << "  " << std::left << std::setw(18) << "image" << std::right << std::setw(10)
            << "size" << std::setw(10) << "deltann" << std::setw(8) << "plain" << std::setw(7)
            << "ratio" << std::setw(10) << "pixels d" << std::setw(10) << "pixels p" << std::setw(7)
            << "ratio" << std::setw(11) << "max |d|" << '\n';
  double sum_df = 0, sum_pf = 0, sum_dp = 0, sum_pp = 0;
  for (size_t i = 0; i < n; ++i) {
    const double df = median(d_full_ms[i]), pf = median(p_full_ms[i]);
    const double dp = median(d_pix_ms[i]), pp = median(p_pix_ms[i]);
    sum_df += df, sum_pf += pf, sum_dp += dp, sum_pp += pp;
    std::cout << "  " << std::left << std::setw(18) << images[i].name << std::right << std::setw(10)
              << (std::to_string(images[i].pixels.cols) + "x" +
                  std::to_string(images[i].pixels.rows))
              << std::setw(10) << fixed(df, 3) << std::setw(8) << fixed(pf, 3) << std::setw(7)
              << fixed(df / pf, 3) << std::setw(10) << fixed(dp, 3) << std::setw(10) << fixed(pp, 3)
              << std::setw(7) << fixed(dp / pp, 3) << std::setw(11) << fixed(difference[i], 7)
              << '\n';
  }
  std::cout << "  " << std::left << std::setw(28) << "all images (sum)" << std::right
            << std::setw(10) << fixed(sum_df, 3) << std::setw(8) << fixed(sum_pf, 3) << std::setw(7)
            << fixed(sum_df / sum_pf, 3) << std::setw(10) << fixed(sum_dp, 3) << std::setw(10)
            << fixed(sum_pp, 3) << std::setw(7) << fixed(sum_dp / sum_pp, 3) << '\n'
            << "  deltann minus plain per pass over the images: whole pipeline "
            << fixed(sum_df - sum_pf, 3) << " ms, pixel stage alone " << fixed(sum_dp - sum_pp, 3)
            << " ms\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  deltann::bench::Options o(
      "bench_preprocess_throughput",
      "Single-thread images per second of deltann::preprocess_image against a plain OpenCV\n"
      "pipeline doing the same work, in alternating rounds.");
  const std::string demo = DELTANN_BENCH_DEMO_DIR;
  o.add("model", demo + "/efficientnet-lite0.onnx",
        "model whose spec sidecar gives the preprocessing");
  o.add("spec", "", "spec JSON to use instead of the model's sidecar");
  o.add("images", demo + "/images.txt", "list file or folder of images");
  o.add("rounds", "5", "rounds; each runs deltann then plain");
  o.add("passes", "5", "passes over the image set per side per round");
  o.add("malloc", "retain",
        "retain: keep freed memory mapped (compares the work); glibc: default allocator settings");
  int status = 0;
  if (!o.parse(argc, argv, status)) return status;
  try {
    return measure(o);
  } catch (const std::exception& e) {
    std::cerr << "bench_preprocess_throughput: " << e.what() << '\n';
    return 1;
  }
}
