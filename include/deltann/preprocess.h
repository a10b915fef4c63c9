// Image decoding and preprocessing (OpenCV imgcodecs + imgproc), done once per (image, input spec)
// and cached on disk as .npy, so that every variant of a campaign sees byte-identical inputs.
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "deltann/spec.h"
#include "deltann/tensor.h"

namespace deltann {

struct PreparedImage {
  Tensor tensor;
  std::vector<std::string> notes;  // conversions applied, e.g. "16-bit PNG scaled to 8-bit"
};

// Limits that protect the run from decompression bombs.
struct DecodeLimits {
  int64_t max_pixels = 100'000'000;  // width * height
  int64_t max_file_bytes = 256 * 1024 * 1024;
};

// Decodes and preprocesses one image. Throws Error naming the file and the reason (missing, not a
// regular file, empty, not an image, a GIF the decoder cannot read, truncated, too large).
PreparedImage preprocess_image(const std::filesystem::path& image, const InputSpec& spec,
                               const DecodeLimits& limits = {});

// Applies the spec to already decoded 8-bit pixels (rows of interleaved RGB). Exposed for tests.
Tensor preprocess_pixels(const unsigned char* rgb, int width, int height, const InputSpec& spec);

// The image format that a file's first bytes announce: "jpeg", "png", "gif", "bmp", "tiff",
// "webp" or "pnm"; "" when they are none of these.
std::string image_format_of(const unsigned char* bytes, size_t size);

// Names the library and settings that produce the tensors, e.g. "OpenCV 4.6.0, bilinear".
std::string preprocessing_description(const InputSpec& spec);

class PreprocessCache {
 public:
  explicit PreprocessCache(std::filesystem::path dir);
  struct Entry {
    std::filesystem::path tensor_path;  // .npy file a worker reads
    std::string image_sha256;
    std::vector<std::string> notes;
    bool from_cache = false;
  };
  // Returns the cached tensor file for (image content, spec), creating it when absent.
  // Throws Error (naming the image) when the image cannot be prepared.
  Entry prepare(const std::filesystem::path& image, const InputSpec& spec,
                const DecodeLimits& limits = {});
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::set<std::filesystem::path> swept_;  // folders cleared of dead runs' temporary files
};

// $DELTANN_CACHE, else $XDG_CACHE_HOME/deltann, else ~/.cache/deltann.
std::filesystem::path default_cache_dir();

}  // namespace deltann
