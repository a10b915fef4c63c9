// The weight-layout matching of the cross-conversion parameter comparison (model_diff.h): B's
// constant read in A's order by the identity, the 2-D transpose or an OIHW permutation.
#include "analysis/model_diff.h"
#include "analysis/parameter_report.h"

#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

#include "core/onnx_model.h"
#include "test_util.h"

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

// Pad -> Conv -> Clip -> Conv -> Add (residual from the Pad) -> Reshape (shape from a Constant),
// as an engine that fuses sees it: the tensors the kernels write are the boundaries.
onnx::GraphProto fusable_graph() {
  onnx::GraphProto g;
  g.add_input()->set_name("x");
  for (const char* w : {"w", "b", "w2"}) {
    auto* t = g.add_initializer();
    t->set_name(w);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(1);
    t->add_float_data(1.0f);
  }
  const auto add = [&](const std::string& name, const std::string& op,
                       const std::vector<std::string>& inputs, const std::string& output) {
    auto* n = g.add_node();
    n->set_name(name);
    n->set_op_type(op);
    for (const auto& in : inputs) n->add_input(in);
    n->add_output(output);
    return n;
  };
  add("shape", "Constant", {}, "shape_c");
  add("pad", "Pad", {"x"}, "p");
  add("conv", "Conv", {"p", "w", "b"}, "c");
  add("clip", "Clip", {"c"}, "r");
  add("proj", "Conv", {"r", "w2"}, "c2");
  add("add", "Add", {"c2", "p"}, "s");
  add("", "Reshape", {"s", "shape_c"}, "y");  // unnamed: its key is its output
  return g;
}

TEST(NodesInsideKernel, WalksBackToTheMaterialisedTensors) {
  const auto g = fusable_graph();
  const std::set<std::string> boundary = {"p", "r", "s", "y"};
  // The kernel that wrote r computed the Conv whose output it never stored, then the Clip.
  EXPECT_EQ(nodes_inside_kernel(g, "r", boundary), (std::vector<std::string>{"conv", "clip"}));
  // A residual Add stops at both of its materialised inputs.
  EXPECT_EQ(nodes_inside_kernel(g, "s", boundary), (std::vector<std::string>{"proj", "add"}));
  // Graph inputs and initialisers end the walk too.
  EXPECT_EQ(nodes_inside_kernel(g, "p", boundary), (std::vector<std::string>{"pad"}));
  // Without its input materialised, a kernel holds everything back to it; constants computed
  // by nodes are inside, in graph order.
  EXPECT_EQ(nodes_inside_kernel(g, "y", {"p", "y"}),
            (std::vector<std::string>{"shape", "conv", "clip", "proj", "add", "y"}));
  EXPECT_TRUE(nodes_inside_kernel(g, "x", boundary).empty());
  EXPECT_TRUE(nodes_inside_kernel(g, "no such tensor", boundary).empty());
}

TEST(KernelOps, SplitsTvmSymbols) {
  EXPECT_EQ(kernel_ops("fused_conv2d17_add13_maximum7_minimum7#2"),
            (std::vector<std::string>{"conv2d", "add", "maximum", "minimum"}));
  EXPECT_EQ(kernel_ops("fused_conv2d3_add2_maximum1_minimum1_pad2"),
            (std::vector<std::string>{"conv2d", "add", "maximum", "minimum", "pad"}));
  EXPECT_EQ(kernel_ops("pad7"), (std::vector<std::string>{"pad"}));
  EXPECT_EQ(kernel_ops("mean"), (std::vector<std::string>{"mean"}));
  EXPECT_EQ(kernel_ops("fused_matmul_add1"), (std::vector<std::string>{"matmul", "add"}));
}

TEST(OpInKernel, KnowsWhatOnnxOpsLowerTo) {
  const auto ops = kernel_ops("fused_conv2d17_add13_maximum7_minimum7#2");
  EXPECT_TRUE(op_in_kernel("Conv", ops));
  EXPECT_TRUE(op_in_kernel("Clip", ops));
  EXPECT_TRUE(op_in_kernel("Add", ops));
  EXPECT_FALSE(op_in_kernel("Pad", ops));
  EXPECT_FALSE(op_in_kernel("Gemm", ops));
  EXPECT_TRUE(op_in_kernel("Gemm", kernel_ops("fused_matmul_add1")));
  EXPECT_TRUE(op_in_kernel("GlobalAveragePool", kernel_ops("mean")));
  EXPECT_TRUE(op_in_kernel("Pad", kernel_ops("pad7#2")));
  EXPECT_FALSE(op_in_kernel("Reshape", kernel_ops("mean")));
}

// Two files of one network, the second with the first Conv's bias changed, captured by an engine
// whose tensors are kernels: the bias belongs to the layer whose kernel computed that Conv.
TEST(CompareModelFiles, GivesAFusedNodesDifferenceToItsKernelsLayer) {
  test::TempDir dir;
  onnx::ModelProto a;
  *a.mutable_graph() = fusable_graph();
  a.add_opset_import()->set_version(13);
  onnx::ModelProto b = a;
  b.mutable_graph()->mutable_initializer(1)->set_float_data(0, 3.0f);  // conv's bias
  const auto save = [&](const onnx::ModelProto& m, const char* name) {
    std::ofstream out(dir.path() / name, std::ios::binary);
    m.SerializeToOstream(&out);
    return dir.path() / name;
  };
  const auto path_a = save(a, "a.onnx"), path_b = save(b, "b.onnx");
  Localization result;
  for (const auto& [name, kernel] : std::vector<std::pair<std::string, std::string>>{
           {"p", "pad"}, {"r", "fused_conv2d_add_clip"}, {"s", "fused_conv2d1_add1"}, {"y", "y"}}) {
    LayerReport layer;
    layer.name = name;
    layer.name_b = kernel;
    layer.match = "structure";
    result.layers.push_back(layer);
  }
  const ModelDifferences found = compare_model_files(path_a, path_b, result);
  ASSERT_EQ(found.differences.size(), 1u);
  EXPECT_EQ(found.differences[0].node, "conv");
  EXPECT_EQ(found.differences[0].layer, "r");
  EXPECT_EQ(found.kernels.at("r").size(), 2u);
  result.jump = 1;
  const auto report = parameter_report(path_a, path_b, result);
  ASSERT_EQ(report.at("cause").size(), 1u);
  EXPECT_EQ(report.at("cause")[0].at("layer"), "r");
  EXPECT_EQ(report.at("jump_kernel").at("kernel"), "fused_conv2d_add_clip");
  EXPECT_EQ(report.at("jump_kernel").at("nodes").size(), 2u);
}

TEST(ParameterReportText, NamesTheKernelAndTheLayerOfAFusedNode) {
  nlohmann::json conv = {{"node", "conv"},
                         {"output", "c"},
                         {"what", "weights w (input 1)"},
                         {"a", "8 values"},
                         {"b", "8 values"},
                         {"max_abs", 0.5},
                         {"note", ""},
                         {"kind_text", "rescaled: B = k*A with k = 2"}};
  conv["layer"] = "r";
  const nlohmann::json kernel = {{"kernel", "fused_conv2d_add_clip"},
                                 {"ops", {"conv2d", "add", "clip"}},
                                 {"nodes",
                                  {{{"node", "conv"}, {"op", "Conv"}, {"op_in_name", true}},
                                   {{"node", "flat"}, {"op", "Flatten"}, {"op_in_name", false}}}}};
  const nlohmann::json report = {
      {"parameter_differences", {conv}}, {"cause", {conv}}, {"jump_kernel", kernel}};
  EXPECT_EQ(parameter_report_text(report, ""),
            "parameter differences between the two model files: 1\n"
            " > conv (c) in layer r: weights w (input 1): 8 values -> 8 values  "
            "[rescaled: B = k*A with k = 2]\n"
            "B's kernel at the first jump, fused_conv2d_add_clip, computes conv (Conv), flat "
            "(Flatten, not in the kernel's name)\n"
            "the first diverging layer's own parameters differ (>)\n");
}

}  // namespace
}  // namespace deltann
