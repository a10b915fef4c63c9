// Which stored image `deltann localize --db` localises on: the campaign already says where two
// environments disagree, so the image is taken from their stored results (docs/LOCALIZE.md).
#pragma once

#include <cstdint>
#include <string>

#include "deltann/store.h"

namespace deltann {

struct LocalizeImage {
  std::string key;
  std::string path;
  std::string why;  // how it was chosen, for the person running the command; "" when named
};

// The image to localise variant `env_a` against `env_b` (canonical environment strings) of model
// `model_id`. With `requested_key`, that usable image. Otherwise the first image, in image order,
// whose top-1 differs between A's and B's stored results; else the one whose stored outputs differ
// most; else the first image both have a result for. Throws Error naming the database when the
// key is not a usable image, a variant has no row, or no image has results for both.
LocalizeImage choose_localize_image(const Store& store, int64_t model_id, const std::string& env_a,
                                    const std::string& env_b, const std::string& requested_key);

}  // namespace deltann
