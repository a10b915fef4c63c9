// Batches (docs/PROTOCOL.md, "Batches"): how the campaign groups a variant's images into run
// requests, how the worker stacks their tensors and splits the output, and how a batched reply is
// read.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "deltann/error.h"
#include "deltann/tensor.h"
#include "run/protocol.h"
#include "run/variant_runner.h"
#include "test_util.h"

namespace deltann {
namespace {

using nlohmann::json;
using test::Contains;
using test::message_of;

// Images whose timed flags are `timed`, in that order.
std::vector<ReadyImage> images(const std::vector<bool>& timed) {
  std::vector<ReadyImage> out;
  for (size_t i = 0; i < timed.size(); ++i)
    out.push_back({static_cast<int64_t>(i + 1), "img" + std::to_string(i), "", "", "", timed[i]});
  return out;
}

using Groups = std::vector<ImageGroup>;

TEST(GroupImages, BatchOneSendsEachImageAlone) {
  EXPECT_EQ(group_images(images({true, false, false}), 1), (Groups{{0, 1}, {1, 2}, {2, 3}}));
}

TEST(GroupImages, FillsBatchesInOrderWithAShortLastOne) {
  EXPECT_EQ(group_images(images({false, false, false, false, false}), 2),
            (Groups{{0, 2}, {2, 4}, {4, 5}}));
  EXPECT_EQ(group_images(images({false, false, false}), 8), (Groups{{0, 3}}));
}

TEST(GroupImages, NeverMixesTimedAndUntimedImages) {
  // Three timed then four untimed at batch 2: the third timed image goes alone.
  EXPECT_EQ(group_images(images({true, true, true, false, false, false, false}), 2),
            (Groups{{0, 2}, {2, 3}, {3, 5}, {5, 7}}));
  EXPECT_EQ(group_images(images({true, false}), 4), (Groups{{0, 1}, {1, 2}}));
}

TEST(GroupImages, NoImagesNoGroups) { EXPECT_TRUE(group_images({}, 4).empty()); }

Tensor image_tensor(float value) { return {{1, 2, 1, 1}, {value, value + 0.5f}}; }

TEST(StackBatch, StacksAlongTheFirstAxis) {
  const Tensor batch = stack_batch({image_tensor(1), image_tensor(2)}, 2);
  EXPECT_EQ(batch.shape, (std::vector<int64_t>{2, 2, 1, 1}));
  EXPECT_EQ(batch.data, (std::vector<float>{1, 1.5f, 2, 2.5f}));
}

TEST(StackBatch, PadsAShortBatchWithItsLastImage) {
  const Tensor batch = stack_batch({image_tensor(1), image_tensor(2)}, 4);
  EXPECT_EQ(batch.shape, (std::vector<int64_t>{4, 2, 1, 1}));
  EXPECT_EQ(batch.data, (std::vector<float>{1, 1.5f, 2, 2.5f, 2, 2.5f, 2, 2.5f}));
}

TEST(StackBatch, RefusesOtherShapesAndBatchesThatAreNotOne) {
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         stack_batch({image_tensor(1), {{1, 3, 1, 1}, {0, 0, 0}}}, 2);
                       }),
                       "[1,3,1,1]"));
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         stack_batch({{{2, 1}, {0, 0}}}, 2);
                       }),
                       "batch of 1"));
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         stack_batch({image_tensor(1), image_tensor(2)}, 1);
                       }),
                       "cannot hold 2"));
}

TEST(SplitBatch, SplitsIntoEqualPartsInOrder) {
  const auto parts = split_batch({1, 2, 3, 4, 5, 6}, 3);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], (std::vector<float>{1, 2}));
  EXPECT_EQ(parts[2], (std::vector<float>{5, 6}));
  EXPECT_TRUE(Contains(message_of<Error>([] { split_batch({1, 2, 3}, 2); }), "3 values"));
}

// A reply as it arrives: parsed from its line, so non-negative integers are unsigned.
json batch_reply() {
  return json::parse(json{{"event", "result"},
                          {"images", {"a", "b"}},
                          {"batch", 4},
                          {"first_ns", 40},
                          {"samples_ns", {400, 800}},
                          {"results",
                           {{{"image", "a"}, {"output", protocol::encode_floats({1, 2})}},
                            {{"image", "b"},
                             {"output", protocol::encode_floats({3, 4})},
                             {"repeat_max_abs_diff", 0.5}}}}}
                         .dump());
}

TEST(ParseBatchReply, ReadsEachImagesOutputAndTheBatchTimings) {
  const protocol::BatchReply r = protocol::parse_batch_reply(batch_reply(), {"a", "b"});
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].output, (std::vector<float>{1, 2}));
  EXPECT_EQ(r.results[1].output, (std::vector<float>{3, 4}));
  EXPECT_FALSE(r.results[0].repeat_max_abs_diff);
  EXPECT_EQ(r.results[1].repeat_max_abs_diff, 0.5);
  EXPECT_EQ(r.batch, 4);
  EXPECT_EQ(r.first_ns, 40);
  EXPECT_EQ(r.samples_ns, (std::vector<int64_t>{400, 800}));
}

TEST(ParseBatchReply, RefusesResultsForOtherImagesOrABatchTooSmall) {
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         protocol::parse_batch_reply(batch_reply(), {"b", "a"});
                       }),
                       "not for image 'b'"));
  EXPECT_TRUE(Contains(message_of<Error>([] { protocol::parse_batch_reply(batch_reply(), {"a"}); }),
                       "has 2 results"));
  json small = batch_reply();
  small["batch"] = 1;
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         protocol::parse_batch_reply(small, {"a", "b"});
                       }),
                       "'batch'"));
  json none = batch_reply();
  none.erase("results");
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         protocol::parse_batch_reply(none, {"a", "b"});
                       }),
                       "'results'"));
}

}  // namespace
}  // namespace deltann
