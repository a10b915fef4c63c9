// NumPy .npy tensor files (src/core/tensor.cpp read_npy): what workers read their input from and
// what `deltann localize` reads captured tensors from.
#include <cstring>

#include "deltann/tensor.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  static fuzz::ScratchFile file("tensor.npy");
  static fuzz::ScratchFile again("again.npy");
  file.write(data, size);
  fuzz::refusal_is_fine([&] {
    const Tensor t = read_npy(file.path());
    fuzz::check(static_cast<int64_t>(t.data.size()) == t.element_count(),
                "the data holds as many values as the shape says");
    fuzz::check(t.data.size() * sizeof(float) <= size, "no more values than the file has bytes");
    // What was read writes back and reads again to the same tensor, bit for bit.
    write_npy(again.path(), t);
    const Tensor u = read_npy(again.path());
    fuzz::check(u.shape == t.shape && u.data.size() == t.data.size() &&
                    (t.data.empty() ||
                     std::memcmp(u.data.data(), t.data.data(), t.data.size() * sizeof(float)) == 0),
                "write_npy then read_npy gives the tensor back");
  });
  return 0;
}
