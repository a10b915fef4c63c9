// The pure logic of `deltann localize` (localize.h) on hand-made tensors whose expected values are
// worked out in the comments: matching (by name and structural), metrics, growth, the first-jump
// rule and the vote.
#include "deltann/localize.h"
#include "deltann/localize_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

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
  EXPECT_EQ(j["layers"][0]["growth"], "Infinity");  // infinite growth, as json_number writes it
  for (const char* key :
       {"position", "name", "op_a", "op_b", "shape_a", "shape_b", "comparable", "max_abs",
        "mean_abs", "rel_l2", "growth", "growth_basis", "above_threshold"})
    EXPECT_TRUE(j["layers"][1].contains(key)) << key;
  const std::string text = localization_text(l, o);
  EXPECT_NE(text.find("first jump: layer 2 'l2'"), std::string::npos) << text;
}

// --- Structural matching: tensors a conversion renamed, transposed or fused away. ---

LayerTensor shaped(const std::string& name, const std::string& op, std::vector<int64_t> shape,
                   std::vector<double> values) {
  return {name, op, std::move(shape), std::move(values), {}};
}

// 0.5, 1.5, ... minus an offset: distinct values, about half negative with offset n/2.
std::vector<double> ramp(size_t n, double offset = 0, double scale = 1) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<double>(i) + 0.5 - offset);
  return v;
}

std::vector<double> relu(std::vector<double> v) {
  for (double& x : v) x = std::max(x, 0.0);
  return v;
}

// The NHWC copy of an NCHW tensor's values (N=1).
std::vector<double> to_nhwc(const std::vector<double>& v, int64_t c, int64_t h, int64_t w) {
  std::vector<double> out(v.size());
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t hi = 0; hi < h; ++hi)
      for (int64_t wi = 0; wi < w; ++wi)
        out[static_cast<size_t>((hi * w + wi) * c + ci)] =
            v[static_cast<size_t>((ci * h + hi) * w + wi)];
  return out;
}

TEST(LocalizeMatching, LayoutsAndOpFamilies) {
  using L = LayoutMatch;
  EXPECT_EQ(compatible_layouts({1, 4}, {1, 4, 1, 1}), std::vector<L>{L::same});
  EXPECT_EQ(compatible_layouts({1, 2, 3, 4}, {1, 3, 4, 2}), std::vector<L>{L::nchw_from_nhwc});
  EXPECT_EQ(compatible_layouts({1, 3, 4, 2}, {1, 2, 3, 4}), std::vector<L>{L::nhwc_from_nchw});
  EXPECT_TRUE(compatible_layouts({1, 2, 3, 4}, {1, 4, 3, 2}).empty());
  EXPECT_TRUE(compatible_layouts({6}, {2, 3}).empty());
  // C = H = W: both readings fit, the plain one first.
  EXPECT_EQ(compatible_layouts({1, 2, 2, 2}, {1, 2, 2, 2}),
            (std::vector<L>{L::same, L::nchw_from_nhwc, L::nhwc_from_nchw}));

  const auto family = [](const std::string& op) { return op_families(op); };
  for (const char* op : {"Conv", "CONV_2D", "DEPTHWISE_CONV_2D", "tvmgen_default_fused_nn_conv2d"})
    EXPECT_EQ(family(op), std::vector<std::string>{"conv"}) << op;
  for (const char* op : {"Relu", "Clip", "HardSigmoid", "RELU", "RELU6"})
    EXPECT_EQ(family(op), std::vector<std::string>{"activation"}) << op;
  for (const char* op : {"Gemm", "MatMul", "FULLY_CONNECTED", "fused_nn_dense"})
    EXPECT_EQ(family(op), std::vector<std::string>{"dense"}) << op;
  EXPECT_EQ(family("fused_nn_conv2d_add_nn_relu"),
            (std::vector<std::string>{"conv", "activation"}));
  EXPECT_EQ(family("GlobalAveragePool"), family("MEAN"));
  EXPECT_EQ(family("Flatten"), family("RESHAPE"));
  EXPECT_TRUE(family("Gather").empty());
}

TEST(LocalizeMatching, RenamedTensorsAreMatchedStructurally) {
  // tf2onnx-style: every name changes and TFLite spells the ops its own way; one extra tensor in
  // B (the input's transpose, a shape no tensor of A has) stays unmatched.
  const auto conv = ramp(8, 4);  // [1,2,2,2], half negative
  const auto a = capture(
      "A", {shaped("c", "Conv", {1, 2, 2, 2}, conv), shaped("r", "Relu", {1, 2, 2, 2}, relu(conv)),
            shaped("g", "GlobalAveragePool", {1, 2, 1, 1}, {1, 3}),
            shaped("logits", "Gemm", {1, 3}, {4, 5, 6})});
  const auto b = capture("B", {shaped("in_t", "Transpose", {1, 3, 2, 2}, ramp(12)),
                               shaped("conv;Const_31", "CONV_2D", {1, 2, 2, 2}, conv),
                               shaped("Relu__5:0", "RELU", {1, 2, 2, 2}, relu(conv)),
                               shaped("mean", "MEAN", {1, 2}, {1, 3}),
                               shaped("PartitionedCall:0", "FULLY_CONNECTED", {1, 3}, {4, 5, 6})});
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 4u);
  const std::vector<std::string> expected_b = {"conv;Const_31", "Relu__5:0", "mean",
                                               "PartitionedCall:0"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(l.layers[i].position, i);
    EXPECT_EQ(l.layers[i].name_b, expected_b[i]);
    // The last tensors are the model outputs, paired by definition.
    EXPECT_EQ(l.layers[i].match, i == 3 ? "output" : "structure");
    EXPECT_TRUE(l.layers[i].diff.comparable);
    EXPECT_EQ(l.layers[i].diff.max_abs, 0);
  }
  EXPECT_TRUE(l.only_a.empty());
  EXPECT_EQ(l.only_b, std::vector<std::string>{"in_t"});
  EXPECT_FALSE(l.jump);
  EXPECT_EQ(match_counts(l), (std::map<std::string, size_t>{{"output", 1}, {"structure", 3}}));
  // Name matching alone finds nothing.
  LocalizeOptions names_only;
  names_only.structural = false;
  const auto n = localize(a, b, {}, names_only);
  EXPECT_TRUE(n.layers.empty());
  EXPECT_EQ(n.only_a.size(), 4u);
  EXPECT_EQ(n.only_b.size(), 5u);
}

TEST(LocalizeMatching, NhwcTensorIsTransposedIntoNchw) {
  // A [1,2,3,4] NCHW; B holds the same values NHWC [1,3,4,2]: compared after the transpose they
  // are identical, compared in B's raw order they would not be.
  const auto v = ramp(24);
  const auto nhwc = to_nhwc(v, 2, 3, 4);
  ASSERT_NE(nhwc, v);
  const auto a = capture("A", {shaped("x", "Conv", {1, 2, 3, 4}, v)});
  const auto b = capture("B", {shaped("x_nhwc", "CONV_2D", {1, 3, 4, 2}, nhwc)});
  auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 1u);
  EXPECT_EQ(l.layers[0].match, "output+nchw<-nhwc");  // a one-tensor capture: its output
  EXPECT_EQ(l.layers[0].layout, LayoutMatch::nchw_from_nhwc);
  EXPECT_EQ(l.layers[0].shape_b, (std::vector<int64_t>{1, 3, 4, 2}));
  EXPECT_EQ(l.layers[0].diff.max_abs, 0);
  EXPECT_EQ(l.layers[0].diff.rel_l2, 0);
  // The reverse: A is the NHWC side.
  l = localize(b, a, {}, {});
  ASSERT_EQ(l.layers.size(), 1u);
  EXPECT_EQ(l.layers[0].match, "output+nhwc<-nchw");
  EXPECT_EQ(l.layers[0].diff.max_abs, 0);
  // The same name in another layout is transposed too.
  auto renamed = b;
  renamed.tensors[0].name = "x";
  l = localize(a, renamed, {}, {});
  ASSERT_EQ(l.layers.size(), 1u);
  EXPECT_EQ(l.layers[0].match, "name+nchw<-nhwc");
  EXPECT_EQ(l.layers[0].diff.max_abs, 0);
  // One value changed in B is found at its transposed place: A's (c=1,h=2,w=3) is element 23.
  auto changed = b;
  changed.tensors[0].values[(2 * 4 + 3) * 2 + 1] += 1;
  const auto d = difference(a.tensors[0], changed.tensors[0], LayoutMatch::nchw_from_nhwc);
  EXPECT_EQ(d.max_abs, 1);
  EXPECT_DOUBLE_EQ(d.mean_abs, 1.0 / 24);
  EXPECT_FALSE(difference(a.tensors[0], changed.tensors[0]).comparable);
}

TEST(LocalizeMatching, ModelOutputsArePairedFirst) {
  // LibTorch's optimize_for_inference splits the classifier's Linear into matmul + add: without
  // the output rule, A's Gemm output would pair with the pre-bias matmul (close when the bias is
  // small) and the bias would look like a difference at the last layer.
  const auto a = capture("A", {shaped("c", "Conv", {1, 2, 2, 2}, ramp(8, 4)),
                               shaped("logits", "Gemm", {1, 3}, {4.0, 5.0, 6.0})});
  const auto b = capture("B", {shaped("x.1", "aten::conv2d", {1, 2, 2, 2}, ramp(8, 4)),
                               shaped("mm", "aten::matmul", {1, 3}, {3.99, 4.99, 5.99}),
                               shaped("out", "aten::add", {1, 3}, {4.0, 5.0, 6.0})});
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 2u);
  EXPECT_EQ(l.layers[1].name_b, "out");
  EXPECT_EQ(l.layers[1].match, "output");
  EXPECT_EQ(l.layers[1].diff.max_abs, 0);
  EXPECT_EQ(l.only_b, std::vector<std::string>{"mm"});
  EXPECT_FALSE(l.jump);
}

TEST(LocalizeMatching, FusedTensorsAreLeftUnmatched) {
  // B fused Conv+Relu (TFLite's fused activation) and Pad into the next conv: A's Conv output and
  // its Pad have no counterpart. B's fused op carries the Relu's values, so it pairs with A's Relu.
  const auto conv = ramp(8, 4);
  const auto a = capture("A", {shaped("conv", "Conv", {1, 2, 2, 2}, conv),
                               shaped("relu", "Relu", {1, 2, 2, 2}, relu(conv)),
                               shaped("pad", "Pad", {1, 2, 3, 3}, ramp(18)),
                               shaped("conv2", "Conv", {1, 2, 2, 2}, ramp(8, 2)),
                               shaped("add", "Add", {1, 2, 2, 2}, ramp(8, 1))});
  const auto b = capture("B", {shaped("fused", "CONV_2D", {1, 2, 2, 2}, relu(conv)),
                               shaped("fused2", "CONV_2D", {1, 2, 2, 2}, ramp(8, 2)),
                               shaped("sum", "ADD", {1, 2, 2, 2}, ramp(8, 1))});
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 3u);
  EXPECT_EQ(l.layers[0].name, "relu");
  EXPECT_EQ(l.layers[0].name_b, "fused");
  EXPECT_EQ(l.layers[1].name, "conv2");
  EXPECT_EQ(l.layers[1].name_b, "fused2");
  EXPECT_EQ(l.layers[2].name, "add");
  EXPECT_EQ(l.layers[2].name_b, "sum");
  EXPECT_EQ(l.only_a, (std::vector<std::string>{"conv", "pad"}));
  EXPECT_TRUE(l.only_b.empty());
  EXPECT_FALSE(l.jump);
}

TEST(LocalizeMatching, ShapeIncompatibleTensorsAreNeverMatched) {
  // Same element counts, same op, identical values: the shapes still rule the pairs out.
  const auto a = capture(
      "A", {shaped("p", "Conv", {1, 6}, ramp(6)), shaped("q", "Conv", {1, 2, 3, 4}, ramp(24))});
  const auto b = capture(
      "B", {shaped("u", "Conv", {1, 2, 3}, ramp(6)), shaped("v", "Conv", {1, 4, 3, 2}, ramp(24))});
  const auto l = localize(a, b, {}, {});
  EXPECT_TRUE(l.layers.empty());
  EXPECT_EQ(l.only_a, (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(l.only_b, (std::vector<std::string>{"u", "v"}));
  EXPECT_NE(localization_text(l, {}).find("no tensors matched"), std::string::npos);
}

TEST(LocalizeMatching, OpFamilyBreaksTies) {
  // B has a transpose whose values equal the conv's (same shape): both pairs would be exact; the
  // op family picks B's Conv and the Transpose is left over.
  const auto v = ramp(8);
  const auto a = capture("A", {shaped("c", "Conv", {1, 8}, v)});
  const auto b =
      capture("B", {shaped("t", "Transpose", {1, 8}, v), shaped("k", "CONV_2D", {1, 8}, v)});
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 1u);
  EXPECT_EQ(l.layers[0].name_b, "k");
  EXPECT_EQ(l.only_b, std::vector<std::string>{"t"});
}

TEST(LocalizeMatching, NameMatchesAnchorTheAlignment) {
  // a1's values are b2's and a2's are b1's, but `mid` is matched by name in between: structural
  // matches never cross it, so a1 pairs with b1 and a2 with b2 (both off by a lot).
  const auto a = capture("A", {shaped("a1", "Conv", {4}, ramp(4)), shaped("mid", "Relu", {4}, {1}),
                               shaped("a2", "Conv", {4}, ramp(4, 0, 3))});
  const auto b =
      capture("B", {shaped("b1", "Conv", {4}, ramp(4, 0, 3)), shaped("mid", "Relu", {4}, {1}),
                    shaped("b2", "Conv", {4}, ramp(4))});
  const auto l = localize(a, b, {}, {});
  ASSERT_EQ(l.layers.size(), 3u);
  EXPECT_EQ(l.layers[0].name_b, "b1");
  EXPECT_EQ(l.layers[1].match, "name");
  EXPECT_EQ(l.layers[2].name_b, "b2");
  EXPECT_EQ(match_counts(l),
            (std::map<std::string, size_t>{{"name", 1}, {"output", 1}, {"structure", 1}}));
}

// Eight renamed layers of one shape; B differs from A from layer `fault` on, by 1e-7 before it
// and by `error` from it (growing further after it). Ops alternate Conv / Relu on both sides.
std::pair<LayerCapture, LayerCapture> renamed_chain(size_t fault, double error) {
  LayerCapture a{"A", "", {}}, b{"B", "", {}};
  for (size_t i = 0; i < 8; ++i) {
    const bool conv = i % 2 == 0;
    // Layers differ from one another by far more than the fault, so a wrong pair costs more.
    const auto v = ramp(16, 0, static_cast<double>(i + 1) * 10);
    auto w = v;
    const double rel = i < fault ? 1e-7 : error * static_cast<double>(i - fault + 1);
    for (double& x : w) x *= 1 + rel;
    a.tensors.push_back(shaped("a" + std::to_string(i), conv ? "Conv" : "Relu", {1, 16}, v));
    b.tensors.push_back(
        shaped("t" + std::to_string(i) + ":0", conv ? "CONV_2D" : "RELU", {1, 16}, w));
  }
  return {a, b};
}

TEST(LocalizeMatching, FaultInTheMiddleIsTheJump) {
  for (const double error : {1e-3, 0.3}) {
    const auto [a, b] = renamed_chain(5, error);
    const auto l = localize(a, b, {}, {});
    ASSERT_EQ(l.layers.size(), 8u) << error;
    for (size_t i = 0; i < 8; ++i)
      EXPECT_EQ(l.layers[i].name_b, "t" + std::to_string(i) + ":0") << error;
    ASSERT_TRUE(l.jump) << error;
    EXPECT_EQ(*l.jump, 5u) << error;
    EXPECT_EQ(l.jump_rule, "growth");
    EXPECT_EQ(l.layers[5].growth_basis, "previous");
    const std::string text = localization_text(l, {});
    EXPECT_NE(text.find("first jump: layer 5 'a5' (Relu / RELU) = B's 't5:0' (structure)"),
              std::string::npos)
        << text;
  }
}

TEST(LocalizeMatching, GrowthOverDeclaredInputsUsesANames) {
  // Inputs are A's names; the structural match of a4 is found through them.
  auto [a, b] = renamed_chain(5, 1e-3);
  a.tensors[6].inputs = {"a4"};
  const auto l = localize(a, b, {}, {});
  EXPECT_EQ(l.layers[6].growth_basis, "inputs");
  // rel_l2 of B = A * (1 + e) is e / (1 + e): layer 6 has e = 2e-3, layer 4 e = 1e-7.
  EXPECT_NEAR(*l.layers[6].growth, (2e-3 / 1.002) / (1e-7 / (1 + 1e-7)), 1e-3);
}

TEST(LocalizeMatching, ReferencesAreMatchedAndTransposedToo) {
  // A (NCHW) is off by 1e-3 on its second layer; B (NHWC, renamed) and the reference (A's names
  // and layout) hold the exact values. Compared in A's layout, B is at distance 0 from the
  // reference, so A deviates.
  const auto v0 = ramp(24), v1 = ramp(24, 12);
  auto off = v1;
  for (double& x : off) x *= 1 + 1e-3;
  const auto a = capture(
      "A", {shaped("x0", "Conv", {1, 2, 3, 4}, v0), shaped("x1", "Relu", {1, 2, 3, 4}, off)});
  const auto b = capture("B", {shaped("y0", "CONV_2D", {1, 3, 4, 2}, to_nhwc(v0, 2, 3, 4)),
                               shaped("y1", "RELU", {1, 3, 4, 2}, to_nhwc(v1, 2, 3, 4))});
  const auto ref = capture(
      "R", {shaped("x0", "Conv", {1, 2, 3, 4}, v0), shaped("x1", "Relu", {1, 2, 3, 4}, v1)});
  const auto l = localize(a, b, {ref}, {});
  ASSERT_EQ(l.layers.size(), 2u);
  ASSERT_TRUE(l.jump);
  EXPECT_EQ(*l.jump, 1u);
  const auto& distance = l.layers[1].references.at(0);
  ASSERT_TRUE(distance.rel_a && distance.rel_b);
  EXPECT_NEAR(*distance.rel_a, 1e-3, 1e-9);
  EXPECT_EQ(*distance.rel_b, 0);
  EXPECT_EQ(l.verdict, "a");
}

TEST(LocalizeMatching, JsonAndTextShowHowLayersWereMatched) {
  const auto [a, b] = renamed_chain(5, 1e-3);
  const LocalizeOptions o;
  const auto l = localize(a, b, {}, o);
  const auto j = to_json(l, o);
  EXPECT_EQ(j["layers"][0]["name_b"], "t0:0");
  EXPECT_EQ(j["layers"][0]["match"], "structure");
  EXPECT_EQ(j["match_counts"]["structure"], 7);
  EXPECT_EQ(j["match_counts"]["output"], 1);
  EXPECT_EQ(j["unmatched"]["a"], 0);
  EXPECT_EQ(j["unmatched"]["b"], 0);
  EXPECT_EQ(j["jump"]["name_b"], "t5:0");
  const std::string text = localization_text(l, o);
  EXPECT_NE(text.find("matched 8 layers: 1 by output, 7 by structure; only in A: 0, only in B: 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("B layer"), std::string::npos) << text;
  // All by name: the summary and table keep their short form.
  const auto [na, nb] = chain();
  const std::string by_name = localization_text(localize(na, nb, {}, o), o);
  EXPECT_NE(by_name.find("matched 4 layers by name;"), std::string::npos) << by_name;
  EXPECT_EQ(by_name.find("B layer"), std::string::npos) << by_name;
  EXPECT_EQ(to_json(localize(na, nb, {}, o), o)["layers"][0]["match"], "name");
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
