// List files (src/data/dataset.cpp through load_dataset): `path [class id]` per line for
// --images, and the synset order for the ImageNet layout (--synsets), both read from the same
// bytes.
#include "deltann/dataset.h"
#include "fuzz_util.h"

namespace {

// An ImageNet-layout folder with one synset folder, for the synset list.
const deltann::fuzz::ScratchFolder& imagenet_folder() {
  static const deltann::fuzz::ScratchFolder root("imagenet");
  std::filesystem::create_directories(root.path() / "n01440764");
  std::ofstream(root.path() / "n01440764" / "a.jpg") << "not read";
  return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  static fuzz::ScratchFile file("images.txt");
  static const std::filesystem::path& imagenet = imagenet_folder().path();
  file.write(data, size);
  fuzz::refusal_is_fine([&] {
    const Dataset d = load_dataset(file.path());
    for (const auto& image : d.images) {
      fuzz::check(!image.key.empty(), "every image has a key");
      fuzz::check(image.path.is_absolute(), "every image path is absolute");
      fuzz::check(!image.label || *image.label >= 0, "labels are non-negative");
    }
  });
  fuzz::refusal_is_fine([&] {
    DatasetOptions options;
    options.synsets = file.path();
    const Dataset d = load_dataset(imagenet, options);
    for (const auto& image : d.images)
      fuzz::check(image.label && *image.label >= 0, "a synset folder's images are labelled");
  });
  return 0;
}
