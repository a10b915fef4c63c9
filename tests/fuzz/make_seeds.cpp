// Writes the fuzz targets' generated seed corpora (docs/FUZZING.md), one folder per target under
// OUT: small images in every format deltann reads, written by OpenCV as the unit tests write them;
// .npy tensors written by write_npy; and copies of the project's own inputs: the demo's spec and
// list file, the models, specs and image made by make_test_models.py, and the ONNX backend node
// tests' models. A source that is absent is skipped with a note, so a machine without the Python
// environment still fuzzes from the rest.
//
//   make_seeds OUT [--demo DIR] [--models DIR] [--node-tests DIR]
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "deltann/tensor.h"

namespace fs = std::filesystem;

namespace {

// Larger models only slow the fuzzer (libFuzzer's maximum input length follows the largest seed).
constexpr uintmax_t kMaxOnnxSeedBytes = 16 * 1024;

cv::Mat gradient(int width, int height, int type) {
  cv::Mat image(height, width, type);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < image.channels(); ++c) {
        const int v = (x * 37 + y * 11 + c * 83) % 256;
        if (image.depth() == CV_16U)
          image.ptr<uint16_t>(y)[x * image.channels() + c] = static_cast<uint16_t>(v * 257);
        else
          image.ptr<uint8_t>(y)[x * image.channels() + c] = static_cast<uint8_t>(v);
      }
  return image;
}

void write_images(const fs::path& dir) {
  const cv::Mat colour = gradient(8, 6, CV_8UC3);
  for (const char* ext : {".png", ".jpg", ".bmp", ".tiff", ".webp", ".ppm"})
    cv::imwrite((dir / (std::string("colour") + ext)).string(), colour);
  const cv::Mat grey = gradient(7, 5, CV_8UC1);
  for (const char* ext : {".png", ".jpg", ".pgm", ".bmp"})
    cv::imwrite((dir / (std::string("grey") + ext)).string(), grey);
  cv::imwrite((dir / "rgba.png").string(), gradient(4, 4, CV_8UC4));
  cv::imwrite((dir / "sixteen_bit.png").string(), gradient(4, 3, CV_16UC3));
  cv::imwrite((dir / "progressive.jpg").string(), colour, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
}

void write_tensors(const fs::path& dir) {
  using deltann::Tensor;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  deltann::write_npy(dir / "image.npy", Tensor{{1, 3, 2, 2}, std::vector<float>(12, 0.5f)});
  deltann::write_npy(dir / "specials.npy", Tensor{{5}, {nan, inf, -inf, -0.0f, 1e-40f}});
  deltann::write_npy(dir / "scalar.npy", Tensor{{}, {3.0f}});
  deltann::write_npy(dir / "empty.npy", Tensor{{0}, {}});
  deltann::write_npy(dir / "matrix.npy", Tensor{{2, 3}, {1, 2, 3, 4, 5, 6}});
}

void copy_if(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (fs::is_regular_file(from, ec)) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

void copy_models(const fs::path& models, const fs::path& out) {
  for (const auto& entry : fs::directory_iterator(models)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 10 && name.substr(name.size() - 10) == ".spec.json")
      copy_if(entry.path(), out / "spec" / name);
    else if (entry.path().extension() == ".onnx")
      copy_if(entry.path(), out / "onnx_model" / name);
    else if (entry.path().extension() == ".png")
      copy_if(entry.path(), out / "image" / name);
  }
}

void copy_node_tests(const fs::path& node_tests, const fs::path& out) {
  int copied = 0;
  for (const auto& entry : fs::directory_iterator(node_tests)) {
    const fs::path model = entry.path() / "model.onnx";
    std::error_code ec;
    if (!fs::is_regular_file(model, ec) || fs::file_size(model, ec) > kMaxOnnxSeedBytes) continue;
    copy_if(model, out / "onnx_model" / (entry.path().filename().string() + ".onnx"));
    ++copied;
  }
  std::printf("make_seeds: %d ONNX node-test models from %s\n", copied, node_tests.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc % 2 != 0) {
    std::fprintf(stderr, "usage: make_seeds OUT [--demo DIR] [--models DIR] [--node-tests DIR]\n");
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* target :
       {"image", "npy", "spec", "list_file", "environment", "worker_reply", "onnx_model"})
    fs::create_directories(out / target);
  write_images(out / "image");
  write_tensors(out / "npy");
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    const fs::path dir = argv[i + 1];
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) {
      std::printf("make_seeds: no %s folder '%s'; going without its seeds\n", option.c_str(),
                  dir.c_str());
      continue;
    }
    if (option == "--demo") {
      copy_if(dir / "efficientnet-lite0.spec.json", out / "spec" / "demo.spec.json");
      copy_if(dir / "images.txt", out / "list_file" / "demo_images.txt");
    } else if (option == "--models") {
      copy_models(dir, out);
    } else if (option == "--node-tests") {
      copy_node_tests(dir, out);
    } else {
      std::fprintf(stderr, "make_seeds: unknown option %s\n", option.c_str());
      return 2;
    }
  }
  return 0;
}
