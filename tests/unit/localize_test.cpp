// The pure logic of `deltann localize` (localize.h) on hand-made tensors whose expected values are
// worked out in the comments: matching, metrics, growth, the first-jump rule and the vote.
#include "deltann/localize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

LayerTensor tensor(const std::string& name, std::vector<double> values,
                   std::vector<std::string> inputs = {}) {
  return {name, "Op", {static_cast<int64_t>(values.size())}, std::move(values), std::move(inputs)};
}

LayerCapture capture(const std::string& env, std::vector<LayerTensor> tensors) {
  return {env, "test", std::move(tensors)};
}

TEST(LocalizeDifference, Metrics) {
  // a-b = (0, 3, -4): max 4, mean 7/3, ||a-b|| = 5, ||b|| = sqrt(1+4+4) = 3.
  const auto d = difference(tensor("x", {1, 5, -2}), tensor("x", {1, 2, 2}));
  EXPECT_TRUE(d.comparable);
  EXPECT_DOUBLE_EQ(d.max_abs, 4);
  EXPECT_DOUBLE_EQ(d.mean_abs, 7.0 / 3);
  EXPECT_DOUBLE_EQ(d.rel_l2, 5.0 / 3);
}

TEST(LocalizeDifference, ZerosNaNAndShapes) {
  EXPECT_EQ(difference(tensor("x", {0, 0}), tensor("x", {0, 0})).rel_l2, 0);
  EXPECT_TRUE(std::isinf(difference(tensor("x", {1, 0}), tensor("x", {0, 0})).rel_l2));
  // NaN on both sides agrees; on one side it is an infinite difference.
  EXPECT_EQ(difference(tensor("x", {kNaN, 1}), tensor("x", {kNaN, 1})).rel_l2, 0);
  EXPECT_TRUE(std::isinf(difference(tensor("x", {kNaN, 1}), tensor("x", {2, 1})).max_abs));
  // Size-1 dimensions do not matter; a transposed layout does.
  LayerTensor a{"x", "", {1, 4}, {1, 2, 3, 4}, {}}, b{"x", "", {1, 4, 1, 1}, {1, 2, 3, 4}, {}};
  EXPECT_TRUE(difference(a, b).comparable);
  b.shape = {2, 2};
  EXPECT_FALSE(difference(a, b).comparable);
  EXPECT_TRUE(same_layout({1, 3, 1}, {3}));
  EXPECT_FALSE(same_layout({3, 2}, {2, 3}));
}

TEST(Localize, MatchesByExactNameInAOrder) {
  const auto a = capture("A", {tensor("c1", {1}), tensor("only_a", {1}), tensor("c2", {2}),
                               tensor("c1", {9})});  // a repeated name keeps its first tensor
  const auto b = capture("B", {tensor("c2", {2}), tensor("c1", {1}), tensor("only_b", {3})});
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 2u);
  EXPECT_EQ(l.layers[0].name, "c1");
  EXPECT_EQ(l.layers[0].position, 0u);
  EXPECT_EQ(l.layers[1].name, "c2");
  EXPECT_EQ(l.layers[1].position, 2u);
  EXPECT_EQ(l.only_a, std::vector<std::string>{"only_a"});
  EXPECT_EQ(l.only_b, std::vector<std::string>{"only_b"});
  EXPECT_FALSE(l.jump);
  EXPECT_EQ(l.above_count, 0u);
}

// Relative errors along the chain: 1e-7, 2e-7, 1e-4 (a jump of 500x), 2e-4 (growth 2).
std::pair<LayerCapture, LayerCapture> chain(std::vector<std::vector<std::string>> inputs = {}) {
  inputs.resize(4);
  const std::vector<double> rel = {1e-7, 2e-7, 1e-4, 2e-4};
  LayerCapture a{"A", "", {}}, b{"B", "", {}};
  for (size_t i = 0; i < rel.size(); ++i) {
    const std::string name = "l" + std::to_string(i);
    b.tensors.push_back(tensor(name, {1.0}, inputs[i]));
    a.tensors.push_back(tensor(name, {1.0 + rel[i]}, inputs[i]));
  }
  return {a, b};
}

TEST(Localize, GrowthOverPreviousLayerAndFirstJump) {
  const auto [a, b] = chain();
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 4u);
  EXPECT_EQ(l.layers[0].growth_basis, "input");
  EXPECT_TRUE(std::isinf(*l.layers[0].growth));  // the input is identical on both sides
  EXPECT_EQ(l.layers[1].growth_basis, "previous");
  EXPECT_NEAR(*l.layers[1].growth, 2, 1e-6);
  EXPECT_NEAR(*l.layers[2].growth, 500, 1e-3);
  EXPECT_NEAR(*l.layers[3].growth, 2, 1e-6);
  EXPECT_EQ(l.above_count, 2u);
  ASSERT_TRUE(l.jump);
  EXPECT_EQ(*l.jump, 2u);
  EXPECT_EQ(l.jump_rule, "growth");
}

TEST(Localize, GrowthOverDeclaredInputs) {
  // l3 reads l0 only: its basis is l0's 1e-7, so its growth is 2000, not 2.
  const auto [a, b] = chain({{}, {"l0"}, {"l1"}, {"l0", "graph_input"}});
  const auto l = localize(a, b, {}, {});
  EXPECT_EQ(l.layers[3].growth_basis, "inputs");
  EXPECT_NEAR(*l.layers[3].growth, 2000, 1e-2);
  // l0 names no inputs: measured against the identical graph input.
  EXPECT_EQ(l.layers[0].growth_basis, "input");
}

TEST(Localize, ThresholdRuleWhenNothingJumps) {
  auto [a, b] = chain();
  LocalizeOptions o;
  o.growth = 1e6;  // nothing grows that much after the first layer, which is below threshold
  const auto l = localize(a, b, {}, o);
  ASSERT_TRUE(l.jump);
  EXPECT_EQ(*l.jump, 2u);
  EXPECT_EQ(l.jump_rule, "threshold");
  // atol lifts a layer out of disagreement: max |a-b| of l2 and l3 is 1e-4 and 2e-4.
  o.atol = 1e-3;
  EXPECT_FALSE(localize(a, b, {}, o).jump);
}

TEST(Localize, VoteNamesTheDeviatingSide) {
  // The reference equals B everywhere: A is farther at the jump and on every layer above it.
  auto [a, b] = chain();
  LayerCapture ref = b;
  ref.env = "R";
  auto l = localize(a, b, {ref}, {});
  ASSERT_EQ(l.votes.size(), 1u);
  EXPECT_EQ(l.votes[0].at_jump, "a");
  EXPECT_EQ(l.votes[0].layers_a, 2);
  EXPECT_EQ(l.votes[0].layers_b, 0);
  EXPECT_EQ(l.votes[0].majority, "a");
  EXPECT_EQ(l.verdict, "a");
  ASSERT_EQ(l.layers[2].references.size(), 1u);
  EXPECT_EQ(*l.layers[2].references[0].rel_b, 0);
  // A reference equal to A blames B; two references that disagree leave it undecided.
  LayerCapture ref_a = a;
  ref_a.env = "RA";
  EXPECT_EQ(localize(a, b, {ref_a}, {}).verdict, "b");
  EXPECT_EQ(localize(a, b, {ref, ref_a}, {}).verdict, "undecided");
  // Without references there is no verdict.
  EXPECT_EQ(localize(a, b, {}, {}).verdict, "");
}

TEST(Localize, JsonAndTextCarryTheDocumentedFields) {
  auto [a, b] = chain();
  const LocalizeOptions o;
  const auto l = localize(a, b, {}, o);
  const auto j = to_json(l, o);
  for (const char* key : {"a", "b", "options", "matched", "only_a", "only_b", "above_threshold",
                          "jump", "layers", "votes", "verdict"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["jump"]["name"], "l2");
  EXPECT_EQ(j["jump"]["rule"], "growth");
  EXPECT_TRUE(j["layers"][0]["growth"].is_null());  // infinite growth
  for (const char* key :
       {"position", "name", "op_a", "op_b", "shape_a", "shape_b", "comparable", "max_abs",
        "mean_abs", "rel_l2", "growth", "growth_basis", "above_threshold"})
    EXPECT_TRUE(j["layers"][1].contains(key)) << key;
  const std::string text = localization_text(l, o);
  EXPECT_NE(text.find("first jump: layer 2 'l2'"), std::string::npos) << text;
}

void write_f64(const std::filesystem::path& path, const std::string& shape,
               const std::vector<double>& values) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {static_cast<char>(header.size() & 0xff),
                       static_cast<char>(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(double)));
}

TEST(LocalizeRead, IndexAndTensors) {
  test::TempDir dir;
  write_f64(dir / "0000.npy", "(1, 2)", {1.5, -2});
  std::ofstream(dir / "index.json")
      << R"({"mode": "m", "tensors": [{"index": 0, "name": "t", "op": "Conv", "shape": [1, 2],
          "file": "0000.npy", "inputs": ["x"]}]})";
  const auto c = read_capture(dir / "index.json", "E");
  EXPECT_EQ(c.mode, "m");
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.tensors[0].values, (std::vector<double>{1.5, -2}));
  EXPECT_EQ(c.tensors[0].inputs, std::vector<std::string>{"x"});
}

TEST(LocalizeRead, RefusesMalformedCaptures) {
  test::TempDir dir;
  write_f64(dir / "short.npy", "(3,)", {1, 2});  // the shape needs 24 bytes, the file has 16
  std::vector<int64_t> shape;
  EXPECT_THROW(read_npy_f64(dir / "short.npy", shape), Error);
  std::ofstream(dir / "escape.json") << R"({"tensors": [{"name": "t", "file": "../x.npy"}]})";
  EXPECT_THROW(read_capture(dir / "escape.json", "E"), Error);
  write_f64(dir / "ok.npy", "(2,)", {1, 2});
  std::ofstream(dir / "lies.json")
      << R"({"tensors": [{"name": "t", "file": "ok.npy", "shape": [3]}]})";
  EXPECT_THROW(read_capture(dir / "lies.json", "E"), Error);
  std::ofstream(dir / "bad.json") << "not json";
  EXPECT_THROW(read_capture(dir / "bad.json", "E"), Error);
}

}  // namespace
}  // namespace deltann
