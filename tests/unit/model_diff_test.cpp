// The weight-layout matching of the cross-conversion parameter comparison (model_diff.h): B's
// constant read in A's order by the identity, the 2-D transpose or an OIHW permutation.
#include "analysis/model_diff.h"
#include "analysis/parameter_report.h"

#include <gtest/gtest.h>

#include <numeric>

namespace deltann {
namespace {

std::vector<double> iota(size_t n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(PermuteValues, TransposesLikeOnnx) {
  // [[1,2,3],[4,5,6]] transposed is [[1,4],[2,5],[3,6]].
  EXPECT_EQ(permute_values(iota(6), {2, 3}, {1, 0}), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(permute_values(iota(6), {2, 3}, {0, 1}), iota(6));
  EXPECT_TRUE(permute_values(iota(6), {2, 3}, {0, 0}).empty());
  EXPECT_TRUE(permute_values(iota(5), {2, 3}, {1, 0}).empty());
}

TEST(BestWeightLayout, IdentityAndReshape) {
  const auto same = best_weight_layout(iota(6), {2, 3}, iota(6), {2, 3});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->layout, "same");
  EXPECT_EQ(same->max_abs, 0);
  const auto bias = best_weight_layout(iota(5), {5}, iota(5), {1, 5});
  ASSERT_TRUE(bias);
  EXPECT_EQ(bias->layout, "same");
  EXPECT_EQ(best_weight_layout(iota(6), {6}, iota(6), {2, 3})->layout, "reshaped");
  EXPECT_FALSE(best_weight_layout(iota(6), {6}, iota(5), {5}));
}

TEST(BestWeightLayout, GemmWeightTransposed) {
  // Gemm's transB=1 weight [5,4] becomes MatMul's [4,5].
  const auto a = iota(20);
  const auto b = permute_values(a, {5, 4}, {1, 0});
  const auto fit = best_weight_layout(a, {5, 4}, b, {4, 5});
  ASSERT_TRUE(fit);
  EXPECT_EQ(fit->layout, "transposed");
  EXPECT_EQ(fit->max_abs, 0);
}

TEST(BestWeightLayout, ConvKernelPermutations) {
  const std::vector<int64_t> oihw = {4, 3, 2, 5};
  const auto a = iota(120);
  const struct {
    const char* name;
    std::vector<int64_t> perm;
  } cases[] = {{"OHWI", {0, 2, 3, 1}}, {"HWIO", {2, 3, 1, 0}}, {"IHWO", {1, 2, 3, 0}}};
  for (const auto& c : cases) {
    std::vector<int64_t> shape_b;
    for (const auto k : c.perm) shape_b.push_back(oihw[k]);
    auto b = permute_values(a, oihw, c.perm);
    b[7] += 0.25;  // a small difference still finds the layout and is measured in it
    const auto fit = best_weight_layout(a, oihw, b, shape_b);
    ASSERT_TRUE(fit) << c.name;
    EXPECT_EQ(fit->layout, c.name);
    EXPECT_DOUBLE_EQ(fit->max_abs, 0.25) << c.name;
  }
}

TEST(BestWeightLayout, AmbiguousShapesTakeTheClosestReading) {
  // O = I = H = W: every permutation fits the shape; the values decide, the plain order on a tie.
  const std::vector<int64_t> shape = {2, 2, 2, 2};
  const auto a = iota(16);
  EXPECT_EQ(best_weight_layout(a, shape, a, shape)->layout, "same");
  const auto hwio = permute_values(a, shape, {2, 3, 1, 0});
  const auto fit = best_weight_layout(a, shape, hwio, shape);
  EXPECT_EQ(fit->layout, "HWIO");
  EXPECT_EQ(fit->max_abs, 0);
}

TEST(ParameterReportText, MarksTheCauseAndNamesBsNode) {
  const nlohmann::json conv = {{"node", "conv1"},  {"output", "c1"},   {"what", "attribute pads"},
                               {"a", "[1,1,1,1]"}, {"b", "[0,0,0,0]"}, {"max_abs", 0},
                               {"note", ""}};
  nlohmann::json fc = {
      {"node", "fc"}, {"output", "logits"}, {"what", "bias missing in B"}, {"a", "fc_b"},
      {"b", ""},      {"max_abs", 0.5},     {"note", "all of it"}};
  fc["node_b"] = "MatMul_3";
  fc["output_b"] = "Identity:0";
  const nlohmann::json report = {{"parameter_differences", {conv, fc}}, {"cause", {conv}}};
  EXPECT_EQ(parameter_report_text(report, " (B's: b.onnx)"),
            "parameter differences between the two model files (B's: b.onnx): 2\n"
            " > conv1 (c1): attribute pads: [1,1,1,1] -> [0,0,0,0]\n"
            "   fc (logits) ~ B's MatMul_3 (Identity:0): bias missing in B: fc_b ->   [all of it]\n"
            "the first diverging layer's own parameters differ (>)\n");
}

TEST(ParameterReportText, ShowsTheKindOfChangeBeforeTheNote) {
  const nlohmann::json conv = {
      {"node", "conv1"},           {"output", "c1"},
      {"what", "weights w ~ w_b"}, {"a", "w: 8 values"},
      {"b", "w_b: 8 values"},      {"max_abs", 0.5},
      {"note", "layout OHWI"},     {"kind", "rescaled"},
      {"details", {{"k", 2}}},     {"kind_text", "rescaled: B = k*A with k = 2"}};
  const nlohmann::json report = {{"parameter_differences", {conv}}, {"cause", {conv}}};
  EXPECT_EQ(parameter_report_text(report, ""),
            "parameter differences between the two model files: 1\n"
            " > conv1 (c1): weights w ~ w_b: w: 8 values -> w_b: 8 values  "
            "[rescaled: B = k*A with k = 2; layout OHWI]\n"
            "the first diverging layer's own parameters differ (>)\n");
}

}  // namespace
}  // namespace deltann
