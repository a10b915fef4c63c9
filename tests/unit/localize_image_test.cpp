// Which stored image `deltann localize --db` localises on (localize_image.h).
#include "deltann/localize_image.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;
using test::message_of;

const std::string kA = "ort:opt=all";
const std::string kB = "ort:opt=off";

StoredImage image(const std::string& key, ImageStatus status = ImageStatus::ok) {
  return {0, key, "/data/" + key, "sha-" + key, std::nullopt, status, ""};
}

StoredResult result(int64_t variant, int64_t image_id, int top1, std::vector<float> output) {
  StoredResult r;
  r.variant_id = variant;
  r.image_id = image_id;
  r.top_ids = {top1};
  r.top_scores = {0.5f};
  r.output = std::move(output);
  r.samples_ns = {1000};
  return r;
}

// Images a, b, c (usable) and broken (not); variants A and B of model 1, and B of model 2, which
// must never be read for model 1.
class LocalizeImageFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(db_);
    model_ = store.ensure_model({0, "/m.onnx", "sha", "{}"});
    other_model_ = store.ensure_model({0, "/m2.onnx", "sha2", "{}"});
    a_ = store.ensure_variant(model_, kA, "ort");
    b_ = store.ensure_variant(model_, kB, "ort");
    other_b_ = store.ensure_variant(other_model_, kB, "ort");
    for (const char* key : {"a.jpg", "b.jpg", "c.jpg"})
      images_.push_back(store.ensure_image(image(key)));
    store.ensure_image(image("broken.jpg", ImageStatus::error));
  }

  // Stores A's and B's results: per image, the top-1 labels and the outputs.
  void add(const std::vector<std::tuple<int, int, std::vector<float>, std::vector<float>>>& rows) {
    Store store(db_);
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& [top_a, top_b, out_a, out_b] = rows[i];
      store.add_result(result(a_, images_[i], top_a, out_a));
      store.add_result(result(b_, images_[i], top_b, out_b));
    }
  }

  LocalizeImage choose(const std::string& key = "") const {
    const Store store(db_, StoreMode::ReadOnly);
    return choose_localize_image(store, model_, kA, kB, key);
  }

  test::TempDir dir_;
  std::filesystem::path db_ = dir_ / "campaign.db";
  int64_t model_ = 0, other_model_ = 0, a_ = 0, b_ = 0, other_b_ = 0;
  std::vector<int64_t> images_;
};

TEST_F(LocalizeImageFixture, TheFirstImageWhoseTop1DiffersWins) {
  // c's outputs differ most, but b is the first whose label differs.
  add({{1, 1, {0, 0}, {0, 0.1f}}, {2, 3, {0, 0}, {0, 0.2f}}, {4, 5, {0, 0}, {9, 9}}});
  const LocalizeImage chosen = choose();
  EXPECT_EQ(chosen.key, "b.jpg");
  EXPECT_EQ(chosen.path, "/data/b.jpg");
  EXPECT_TRUE(Contains(chosen.why, "top-1 differs")) << chosen.why;
}

TEST_F(LocalizeImageFixture, WithoutALabelDifferenceTheLargestOutputDifferenceWins) {
  add({{1, 1, {0, 0}, {0, 0.1f}}, {2, 2, {0, 0}, {0.5f, 0}}, {4, 4, {0, 0}, {0, 0.2f}}});
  const LocalizeImage chosen = choose();
  EXPECT_EQ(chosen.key, "b.jpg");
  EXPECT_TRUE(Contains(chosen.why, "largest output difference")) << chosen.why;
}

TEST_F(LocalizeImageFixture, WithoutStoredOutputsTheFirstCommonImageWins) {
  add({{1, 1, {}, {}}, {2, 2, {}, {}}});
  EXPECT_EQ(choose().key, "a.jpg");
}

TEST_F(LocalizeImageFixture, ANamedImageIsTakenAsItIs) {
  const LocalizeImage chosen = choose("c.jpg");  // no results needed
  EXPECT_EQ(chosen.key, "c.jpg");
  EXPECT_EQ(chosen.path, "/data/c.jpg");
  EXPECT_EQ(chosen.why, "");
}

TEST_F(LocalizeImageFixture, AnUnusableOrUnknownImageIsRefusedByName) {
  for (const std::string key : {"broken.jpg", "nowhere.jpg"}) {
    const std::string message = message_of<Error>([&] { choose(key); });
    EXPECT_TRUE(Contains(message, db_.string())) << message;
    EXPECT_TRUE(Contains(message, "'" + key + "'")) << message;
  }
}

TEST_F(LocalizeImageFixture, NoCommonResultIsAnError) {
  {
    Store store(db_);
    store.add_result(result(a_, images_[0], 1, {}));
    store.add_result(result(b_, images_[1], 1, {}));
    store.add_result(result(other_b_, images_[0], 2, {}));  // another model's B: not a partner
  }
  const std::string message = message_of<Error>([&] { choose(); });
  EXPECT_TRUE(Contains(message, "no image with results for both")) << message;
}

TEST_F(LocalizeImageFixture, AVariantMissingFromTheModelIsNamed) {
  const Store store(db_, StoreMode::ReadOnly);
  const std::string message =
      message_of<Error>([&] { choose_localize_image(store, other_model_, kA, kB, ""); });
  EXPECT_TRUE(Contains(message, "no results for " + kA)) << message;
  EXPECT_TRUE(Contains(message, "--image KEY")) << message;
}

}  // namespace
}  // namespace deltann
