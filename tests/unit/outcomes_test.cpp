// The kinds of image, variant and failure outcome (outcomes.h): one name per value, read back.
#include "deltann/outcomes.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;
using test::message_of;

// Every value's name reads back as that value, and no two values share a name.
template <class Kind, size_t N, class Parse>
void expect_round_trip(const std::array<Kind, N>& all, Parse parse) {
  std::set<std::string> names;
  for (const Kind value : all) {
    const std::string name(to_string(value));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name << " names two values";
    EXPECT_EQ(parse(name), value) << name;
  }
}

TEST(Outcomes, EveryValueRoundTrips) {
  expect_round_trip(kImageStatuses, parse_image_status);
  expect_round_trip(kVariantStatuses, parse_variant_status);
  expect_round_trip(kFailureStages, parse_failure_stage);
  expect_round_trip(kFailureSymptoms, parse_failure_symptom);
}

// The names are what the database has always held: changing one would orphan stored rows.
TEST(Outcomes, NamesAreTheStoredText) {
  EXPECT_EQ(to_string(ImageStatus::error), "error");
  EXPECT_EQ(to_string(VariantStatus::skipped), "skipped");
  EXPECT_EQ(to_string(FailureStage::first_inference), "first_inference");
  EXPECT_EQ(to_string(FailureSymptom::killed), "killed");
}

TEST(Outcomes, UnknownTextIsRefusedByName) {
  const std::string stage = message_of<Error>([] { parse_failure_stage("linking"); });
  EXPECT_TRUE(Contains(stage, "'linking'")) << stage;
  EXPECT_TRUE(Contains(stage, "failure stage")) << stage;
  EXPECT_TRUE(Contains(stage, "first_inference")) << stage;  // the names it may be
  EXPECT_THROW(parse_image_status("OK"), Error);             // names are exact: no case folding
  EXPECT_THROW(parse_variant_status(""), Error);
  EXPECT_THROW(parse_failure_symptom("crash "), Error);
}

}  // namespace
}  // namespace deltann
