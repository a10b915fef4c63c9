// The FLOP counter (src/core/onnx_flops.h) on tiny graphs whose counts are worked out by hand in
// each test, shapes inferred by ONNX from the seeded input.
#include "core/onnx_flops.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;
using test::message_of;

class Graph {
 public:
  Graph() {
    model_.set_ir_version(8);
    auto* opset = model_.add_opset_import();
    opset->set_domain("");
    opset->set_version(17);
  }

  // A float input; a negative dimension is left symbolic ("N").
  Graph& input(const std::string& name, const std::vector<int64_t>& shape) {
    auto* info = graph().add_input();
    info->set_name(name);
    auto* type = info->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    auto* dims = type->mutable_shape();
    for (const int64_t d : shape) {
      if (d < 0)
        dims->add_dim()->set_dim_param("N");
      else
        dims->add_dim()->set_dim_value(d);
    }
    return *this;
  }

  // A float initialiser of `shape`, zero-filled.
  Graph& weight(const std::string& name, const std::vector<int64_t>& shape) {
    auto* w = graph().add_initializer();
    w->set_name(name);
    w->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (const int64_t d : shape) {
      w->add_dims(d);
      n *= d;
    }
    for (int64_t i = 0; i < n; ++i) w->add_float_data(0.0f);
    return *this;
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs) {
    auto* n = graph().add_node();
    n->set_name(outputs.at(0) + "_node");
    n->set_op_type(op);
    for (const auto& in : inputs) n->add_input(in);
    for (const auto& out : outputs) n->add_output(out);
    return *n;
  }

  Graph& output(const std::string& name) {
    graph().add_output()->set_name(name);
    return *this;
  }

  // Declares an operator domain beyond ONNX's own, as a model using it must.
  Graph& domain(const std::string& name) {
    auto* opset = model_.add_opset_import();
    opset->set_domain(name);
    opset->set_version(1);
    return *this;
  }

  const onnx::ModelProto& model() const { return model_; }

 private:
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }
  onnx::ModelProto model_;
};

void set_ints(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (const int64_t v : values) a->add_ints(v);
}

void set_int(onnx::NodeProto& node, const std::string& name, int64_t value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

TEST(OnnxFlops, ConvCountsTwiceTheMultiplyAddsAndReluItsOutput) {
  // 1x3x8x8 -> Conv 4x3x3x3, padding 1 -> 1x4x8x8 (256 elements) -> Relu.
  Graph g;
  g.input("x", {1, 3, 8, 8}).weight("w", {4, 3, 3, 3});
  set_ints(g.node("Conv", {"x", "w"}, {"y"}), "pads", {1, 1, 1, 1});
  g.node("Relu", {"y"}, {"z"});
  g.output("z");
  const FlopCount flops = count_flops(g.model());
  EXPECT_EQ(flops.by_op.at("Conv"), 2 * 3 * 3 * 3 * 4 * 8 * 8);  // 2*K*K*Cin*Cout*Hout*Wout
  EXPECT_EQ(flops.by_op.at("Relu"), 256);
  EXPECT_EQ(flops.total, 13824 + 256);
}

TEST(OnnxFlops, DepthwiseConvDividesByTheGroups) {
  // 1x4x8x8 -> depthwise Conv (group 4, weight 4x1x3x3, no padding) -> 1x4x6x6.
  Graph g;
  g.input("x", {1, 4, 8, 8}).weight("w", {4, 1, 3, 3});
  set_int(g.node("Conv", {"x", "w"}, {"y"}), "group", 4);
  g.output("y");
  EXPECT_EQ(count_flops(g.model()).total, 2 * 3 * 3 * (4 / 4) * 4 * 6 * 6);  // 2592
}

TEST(OnnxFlops, GemmAndMatMulCountTwoMNK) {
  // Gemm with transposed A: A is 5x2 (K=5, M=2), B 5x3 -> 2x3.
  Graph gemm;
  gemm.input("a", {5, 2}).weight("b", {5, 3});
  set_int(gemm.node("Gemm", {"a", "b"}, {"y"}), "transA", 1);
  gemm.output("y");
  EXPECT_EQ(count_flops(gemm.model()).total, 2 * 2 * 3 * 5);
  // Batched MatMul: 2x3x4 times 4x5 -> 2x3x5: two 3x5 products with K=4.
  Graph matmul;
  matmul.input("a", {2, 3, 4}).weight("b", {4, 5});
  matmul.node("MatMul", {"a", "b"}, {"y"});
  matmul.output("y");
  EXPECT_EQ(count_flops(matmul.model()).total, 2 * 2 * 3 * 5 * 4);
}

TEST(OnnxFlops, SeededInputShapeFixesASymbolicBatch) {
  Graph g;
  g.input("x", {-1, 3, 8, 8}).weight("w", {4, 3, 1, 1});
  g.node("Conv", {"x", "w"}, {"y"});
  g.output("y");
  const int64_t one = count_flops(g.model(), {{"x", {1, 3, 8, 8}}}).total;
  EXPECT_EQ(one, 2 * 3 * 4 * 8 * 8);
  EXPECT_EQ(count_flops(g.model(), {{"x", {2, 3, 8, 8}}}).total, 2 * one);
  // Left open, the batch cannot be counted: the error names the node and the reason.
  const std::string message = message_of<Error>([&] { count_flops(g.model(), {}, "m.onnx"); });
  EXPECT_TRUE(Contains(message, "m.onnx: cannot count the FLOPs of node 'y_node' (Conv)"))
      << message;
  EXPECT_TRUE(Contains(message, "unknown")) << message;
}

TEST(OnnxFlops, AnOperatorOnnxDoesNotKnowStopsTheCountWhereItsShapeIsNeeded) {
  Graph g;
  g.domain("example.custom").input("x", {1, 3, 8, 8});
  g.node("Mystery", {"x"}, {"y"}).set_domain("example.custom");
  g.node("Relu", {"y"}, {"z"});
  g.output("z");
  const std::string message = message_of<Error>([&] { count_flops(g.model()); });
  EXPECT_TRUE(Contains(message, "'y' is unknown after shape inference")) << message;
}

TEST(OnnxFlops, ModelFileUsesTheFirstInputThatIsNotAnInitialiser) {
  Graph g;
  g.weight("w", {2, 3, 1, 1}).input("w", {2, 3, 1, 1}).input("image", {-1, 3, 4, 4});
  g.node("Conv", {"image", "w"}, {"y"});
  g.output("y");
  test::TempDir dir;
  std::string bytes;
  ASSERT_TRUE(g.model().SerializeToString(&bytes));
  const auto file = test::write_file(dir / "m.onnx", bytes);
  EXPECT_EQ(count_model_flops(file, "", {1, 3, 4, 4}).total, 2 * 3 * 2 * 4 * 4);
  EXPECT_EQ(count_model_flops(file, "image", {1, 3, 4, 4}).total, 2 * 3 * 2 * 4 * 4);
  EXPECT_TRUE(Contains(message_of<Error>([&] { count_model_flops(dir / "absent.onnx", "", {}); }),
                       "absent.onnx: cannot open the model"));
}

}  // namespace
}  // namespace deltann
