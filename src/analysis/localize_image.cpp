#include "deltann/localize_image.h"

#include <map>
#include <vector>

#include "deltann/compare_tensors.h"
#include "deltann/error.h"

namespace deltann {

namespace {

// The largest |a-b| over two stored output vectors; -1 when either is missing.
double max_abs_output_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.empty() || a.size() != b.size()) return -1;
  return compare_tensors(a, b).max_abs;
}

}  // namespace

LocalizeImage choose_localize_image(const Store& store, int64_t model_id, const std::string& env_a,
                                    const std::string& env_b, const std::string& requested_key) {
  const std::string db = store.path().string();
  const std::vector<StoredImage> images = store.images();
  if (!requested_key.empty()) {
    for (const auto& image : images)
      if (image.status == ImageStatus::ok && image.key == requested_key)
        return {image.key, image.path, ""};
    throw Error(db + " has no usable image with key '" + requested_key + "'");
  }
  int64_t id_a = 0, id_b = 0;
  for (const auto& v : store.variants()) {
    if (v.model_id != model_id) continue;
    if (v.env == env_a) id_a = v.id;
    if (v.env == env_b) id_b = v.id;
  }
  if (id_a == 0 || id_b == 0)
    throw Error(db + " has no results for " + (id_a == 0 ? env_a : env_b) +
                "; name the image with --image KEY");
  std::map<int64_t, StoredResult> results_b;
  for (auto& r : store.results(id_b, true)) results_b.emplace(r.image_id, std::move(r));
  std::map<int64_t, const StoredImage*> by_id;
  for (const auto& image : images) by_id.emplace(image.id, &image);
  const StoredImage* largest = nullptr;
  double largest_d = -1;
  for (const auto& ra : store.results(id_a, true)) {
    const auto rb = results_b.find(ra.image_id);
    const auto image = by_id.find(ra.image_id);
    if (rb == results_b.end() || image == by_id.end()) continue;
    if (!largest) largest = image->second;
    if (!ra.top_ids.empty() && !rb->second.top_ids.empty() &&
        ra.top_ids.front() != rb->second.top_ids.front())
      return {image->second->key, image->second->path,
              "the first whose top-1 differs between A and B"};
    if (const double d = max_abs_output_difference(ra.output, rb->second.output); d > largest_d) {
      largest_d = d;
      largest = image->second;
    }
  }
  if (!largest) throw Error(db + " has no image with results for both " + env_a + " and " + env_b);
  return {largest->key, largest->path, "no top-1 differs; the largest output difference"};
}

}  // namespace deltann
