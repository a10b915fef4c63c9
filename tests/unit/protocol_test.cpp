// Float vectors in the worker protocol (src/run/protocol.h): base64 of little-endian bytes.
#include "run/protocol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "deltann/error.h"

namespace deltann::protocol {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

std::vector<float> special_values(size_t n) {
  const float specials[] = {
      std::numeric_limits<float>::quiet_NaN(),  std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(),  -0.0f,
      std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::lowest()};
  std::vector<float> values;
  for (size_t i = 0; i < n; ++i)
    values.push_back(i < std::size(specials) ? specials[i] : static_cast<float>(i) / 7.0f - 50.0f);
  return values;
}

TEST(ProtocolFloats, RoundTripIsBitExact) {
  for (const size_t n : {0u, 1u, 2u, 3u, 1000u}) {
    const std::vector<float> values = special_values(n);
    const std::string text = encode_floats(values);
    // 4 base64 characters per 3 bytes, padded.
    EXPECT_EQ(text.size(), 4 * ((4 * n + 2) / 3)) << n;
    EXPECT_TRUE(same_bits(decode_floats(text), values)) << n;
  }
}

TEST(ProtocolFloats, NaNPayloadSurvives) {
  std::vector<float> values(2);
  const uint32_t payloads[] = {0x7fc01234u, 0xffbfffffu};  // quiet NaN with payload, signalling NaN
  std::memcpy(values.data(), payloads, sizeof(payloads));
  EXPECT_TRUE(same_bits(decode_floats(encode_floats(values)), values));
}

TEST(ProtocolFloats, KnownEncoding) {
  // 1.0f is the bytes 00 00 80 3f, which base64 writes as "AACAPw==".
  EXPECT_EQ(encode_floats({1.0f}), "AACAPw==");
  EXPECT_EQ(decode_floats("AACAPw=="), std::vector<float>{1.0f});
  // Two floats are 8 bytes: one padding character.
  EXPECT_EQ(encode_floats({1.0f, 1.0f}), "AACAPwAAgD8=");
  EXPECT_EQ(encode_floats({}), "");
  EXPECT_TRUE(decode_floats("").empty());
}

TEST(ProtocolFloats, MalformedInputThrows) {
  for (const std::string bad : {
           "AAC",       // not a multiple of 4 characters
           "AACAPw=",   // likewise
           "!!!!",      // not base64
           "AACA*w==",  // a bad character inside
           "AA==",      // one byte: not a whole float
           "AAA=",      // two bytes
           "AAAA",      // three bytes
           "AACAPwAA",  // six bytes
       }) {
    EXPECT_THROW(decode_floats(bad), Error) << "input: " << bad;
  }
}

// A reply line is a JSON object whose event and message are strings; anything else is an
// engine's own print. A bare JSON value used to reach the campaign, whose value("event", "")
// threw out of run_campaign (found by fuzzing the campaign's reply handling).
TEST(ProtocolReplies, OnlyObjectsWithStringEventAndMessageAreReplies) {
  EXPECT_TRUE(parse_reply_line(R"({"event":"loaded"})"));
  EXPECT_TRUE(parse_reply_line(R"({"name":"ort","version":"1"})"));  // --describe has no event
  for (const std::string stray :
       {"0", "[1,2]", "\"done\"", "null", "true", "not json", "", R"({"event":7})",
        R"({"event":"error","message":[]})", R"({"event":"result"} trailing)"})
    EXPECT_FALSE(parse_reply_line(stray)) << stray;
}

TEST(ProtocolReplies, DeeplyNestedLinesAreNotReplies) {
  // A reader dumps a reply for its records and messages; dump() recursed once per level and
  // overflowed the stack on this 400 KB line.
  const int depth = 200000;
  const std::string deep =
      R"({"event":"loaded","x":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  EXPECT_FALSE(parse_reply_line(deep));
  const std::string nested = R"({"each":{"disable":{"by":"opt","members":{"3":["A"]}}}})";
  EXPECT_TRUE(parse_reply_line(nested));
}

TEST(ProtocolReplies, RunReplyFieldsAreChecked) {
  const auto reply = [](const std::string& fields) {
    return *parse_reply_line(R"({"event":"result","output":"AACAPw==")" + fields + "}");
  };
  const RunReply r = parse_run_reply(
      reply(R"(,"first_ns":2000,"samples_ns":[1000,1100],"repeat_max_abs_diff":0.5)"));
  EXPECT_EQ(r.output, std::vector<float>{1.0f});
  EXPECT_EQ(r.first_ns, 2000);
  EXPECT_EQ(r.samples_ns, (std::vector<int64_t>{1000, 1100}));
  EXPECT_EQ(r.repeat_max_abs_diff, 0.5);
  // A float timing used to be converted to an integer (undefined behaviour for 1e300), a string
  // threw a JSON exception out of the campaign.
  for (const std::string bad :
       {R"(,"samples_ns":[1e300])", R"(,"samples_ns":[-1])", R"(,"samples_ns":7)",
        R"(,"first_ns":"soon")", R"(,"first_ns":1.5)", R"(,"repeat_max_abs_diff":"x")"})
    EXPECT_THROW(parse_run_reply(reply(bad)), Error) << bad;
  EXPECT_THROW(parse_run_reply(*parse_reply_line(R"({"event":"result"})")), Error);
  EXPECT_THROW(parse_run_reply(*parse_reply_line(R"({"event":"result","output":5})")), Error);
}

TEST(ProtocolReplies, LoadReplyFieldsAreChecked) {
  const LoadReply r =
      parse_load_reply(*parse_reply_line(R"({"event":"loaded","load_ns":5,"engine_version":"2"})"));
  EXPECT_EQ(r.load_ns, 5);
  EXPECT_EQ(r.engine_version, "2");
  EXPECT_EQ(parse_load_reply(*parse_reply_line(R"({"event":"loaded"})")).load_ns, 0);
  for (const std::string bad : {R"({"load_ns":"soon"})", R"({"load_ns":-5})",
                                R"({"load_ns":18446744073709551615})", R"({"engine_version":1})"})
    EXPECT_THROW(parse_load_reply(*parse_reply_line(bad)), Error) << bad;
}

}  // namespace
}  // namespace deltann::protocol
