// The provenance records of an expanded set, as a campaign stores them (run/provenance.h).
#include "run/provenance.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using nlohmann::json;

std::vector<StoredImage> images(const std::vector<std::string>& keys) {
  std::vector<StoredImage> all;
  for (size_t i = 0; i < keys.size(); ++i) {
    StoredImage image;
    image.id = static_cast<int64_t>(i) + 10;
    image.key = keys[i];
    all.push_back(image);
  }
  return all;
}

const json kRecords = json::parse(R"({
  "apple-e8__fog-3.png": {"source": "apple.jpg", "source_path": "/d/apple.jpg",
    "source_sha256": "e8", "transform": "fog", "family": "weather", "severity": 3, "seed": 7,
    "call_seed": 3875929654, "library": "corrupt-tta 0.1.7"},
  "apple-e8.jpg": {"source": "apple.jpg", "source_path": "/d/apple.jpg", "source_sha256": "e8",
    "transform": "original"}
})");

TEST(Provenance, RowsForTheStoredImagesItNames) {
  const auto rows =
      provenance_rows(kRecords, images({"apple-e8.jpg", "other.png", "apple-e8__fog-3.png"}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].image_id, 10);
  EXPECT_EQ(rows[0].transform, "original");
  EXPECT_EQ(rows[0].family, "");
  EXPECT_FALSE(rows[0].severity.has_value());
  EXPECT_EQ(rows[1].image_id, 12);
  EXPECT_EQ(rows[1].source, "apple.jpg");
  EXPECT_EQ(rows[1].source_sha256, "e8");
  EXPECT_EQ(rows[1].transform, "fog");
  EXPECT_EQ(rows[1].family, "weather");
  EXPECT_EQ(rows[1].severity, 3);
  EXPECT_EQ(rows[1].seed, 7);
  EXPECT_EQ(rows[1].call_seed, 3875929654);
  // The whole record is kept, the library's version and source path included.
  EXPECT_EQ(json::parse(rows[1].record), kRecords["apple-e8__fog-3.png"]);
}

TEST(Provenance, MalformedRecordsAreErrorsNamingTheImageAndField) {
  const auto error_of = [](const std::string& text) {
    return test::message_of<Error>([&] { provenance_rows(json::parse(text), images({"a.png"})); });
  };
  EXPECT_TRUE(test::Contains(error_of("[]"), "not a JSON object"));
  EXPECT_TRUE(test::Contains(error_of(R"({"a.png": 3})"), "a.png is not an object"));
  EXPECT_TRUE(test::Contains(error_of(R"({"a.png": {"source_sha256": "x", "transform": "fog"}})"),
                             "provenance of a.png: no 'source'"));
  EXPECT_TRUE(test::Contains(
      error_of(R"({"a.png": {"source": 1, "source_sha256": "x", "transform": "fog"}})"),
      "'source' is not text"));
  EXPECT_TRUE(
      test::Contains(error_of(R"({"a.png": {"source": "s", "source_sha256": "x", "transform": "fog",
                  "severity": 9}})"),
                     "severity 9 is not 1 to 5"));
  EXPECT_TRUE(
      test::Contains(error_of(R"({"a.png": {"source": "s", "source_sha256": "x", "transform": "fog",
                  "seed": "7"}})"),
                     "'seed' is not an integer"));
}

}  // namespace
}  // namespace deltann
