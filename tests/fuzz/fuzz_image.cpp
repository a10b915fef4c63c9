// Image files (src/data/preprocess.cpp): the header sniffing that names the format, reads the
// dimensions and spots truncation before anything is decoded, then OpenCV's decoding and the
// preprocessing, exactly as `deltann run` prepares an image.
//
// The pixel limit is lowered to 2^20 so that a header which slips past the check shows: decoding
// what it claims then allocates far more than libFuzzer's -malloc_limit_mb, which reports the
// allocation as a crash.
#include <cmath>

#include "deltann/preprocess.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  static fuzz::ScratchFile file("image");
  static const InputSpec spec = [] {
    InputSpec s;  // a small square input keeps each run quick
    s.shape = {1, 3, 8, 8};
    s.resize = 8;
    s.crop = 8;
    return s;
  }();
  DecodeLimits limits;
  limits.max_pixels = int64_t{1} << 20;
  file.write(data, size);
  fuzz::refusal_is_fine([&] {
    const PreparedImage prepared = preprocess_image(file.path(), spec, limits);
    fuzz::check(prepared.tensor.data.size() == 3 * 8 * 8, "the tensor has the spec's size");
    for (const float v : prepared.tensor.data)
      fuzz::check(std::isfinite(v), "a decoded pixel is a finite value");
  });
  return 0;
}
