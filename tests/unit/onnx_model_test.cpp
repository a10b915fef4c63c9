// The shared ONNX loader and graph index (src/core/onnx_model.h): bounded reading, clear errors,
// and the index's lookups on a hand-made graph.
#include "core/onnx_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

onnx::NodeProto* add_node(onnx::GraphProto& g, const std::string& name, const std::string& op,
                          std::vector<std::string> inputs, std::vector<std::string> outputs) {
  onnx::NodeProto* n = g.add_node();
  n->set_name(name);
  n->set_op_type(op);
  for (const auto& in : inputs) n->add_input(in);
  for (const auto& out : outputs) n->add_output(out);
  return n;
}

// x -> Conv(w) -> y -> (unnamed) Relu -> z, with initialiser w.
onnx::ModelProto small_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  onnx::GraphProto& g = *m.mutable_graph();
  g.add_input()->set_name("x");
  onnx::TensorProto& w = *g.add_initializer();
  w.set_name("w");
  w.set_data_type(onnx::TensorProto::FLOAT);
  w.add_dims(1);
  w.add_float_data(2.0f);
  add_node(g, "conv", "Conv", {"x", "w"}, {"y"});
  add_node(g, "", "Relu", {"y"}, {"z"});
  g.add_output()->set_name("z");
  return m;
}

TEST(OnnxModel, LoadsAValidModel) {
  test::TempDir dir;
  std::string bytes;
  ASSERT_TRUE(small_model().SerializeToString(&bytes));
  const fs::path file = test::write_file(dir / "m.onnx", bytes);
  const onnx::ModelProto m = load_onnx_model(file);
  EXPECT_EQ(m.graph().node_size(), 2);
  EXPECT_EQ(read_onnx_bytes(file), bytes);
}

TEST(OnnxModel, RefusesWhatIsNotAModel) {
  test::TempDir dir;
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_onnx_model(dir / "absent.onnx"); }),
                       "absent.onnx: cannot open the model"));
  EXPECT_TRUE(Contains(message_of<Error>([] { parse_onnx_model("\xff\xff\xff", "junk.onnx"); }),
                       "junk.onnx: not a valid ONNX model"));
  // A ModelProto with no graph parses (every field is optional) but holds nothing to run.
  onnx::ModelProto empty;
  empty.set_ir_version(8);
  std::string bytes;
  ASSERT_TRUE(empty.SerializeToString(&bytes));
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_onnx_model(bytes, "empty.onnx"); }),
                       "empty.onnx: the model has no graph"));
}

TEST(OnnxModel, RefusesAFileOver2GiBBeforeReadingIt) {
  test::TempDir dir;
  const fs::path big = dir / "big.onnx";
  test::write_file(big, "");
  // Sparse: no disk space is used, and the loader must not read it to find out.
  fs::resize_file(big, kMaxOnnxBytes + 1);
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_onnx_bytes(big); }), "larger than 2 GiB"));
}

TEST(OnnxGraphIndex, FindsProducersNodesAndInitialisers) {
  const onnx::ModelProto m = small_model();
  const OnnxGraphIndex index(m.graph());
  EXPECT_EQ(index.producer("y"), 0u);
  EXPECT_EQ(index.producer("z"), 1u);
  EXPECT_FALSE(index.producer("x"));  // a graph input
  EXPECT_FALSE(index.producer("w"));  // an initialiser
  EXPECT_EQ(index.producer_node("z")->op_type(), "Relu");
  EXPECT_EQ(index.producer_node("nothing"), nullptr);
  // The unnamed Relu is known by its first output.
  EXPECT_EQ(node_key(index.node(1)), "z");
  EXPECT_EQ(index.by_key("conv"), 0u);
  EXPECT_EQ(index.by_key("z"), 1u);
  ASSERT_NE(index.initializer("w"), nullptr);
  EXPECT_EQ(index.initializer("w")->float_data(0), 2.0f);
  EXPECT_EQ(index.initializer("y"), nullptr);
}

}  // namespace
}  // namespace deltann
