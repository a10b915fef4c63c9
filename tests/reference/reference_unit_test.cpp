// Unit tests of the float64 reference executor: hostile or malformed models give clear errors,
// convolution agrees with a naive definition, capture keeps every node output.
#include <onnx/onnx_pb.h>

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "deltann/error.h"
#include "reference/reference.h"

using deltann::Error;
using deltann::Unsupported;
using namespace deltann::reference;

namespace {

// A small model builder over ONNX's protobuf classes.
struct Builder {
  onnx::ModelProto model;
  onnx::GraphProto* graph;

  explicit Builder(int64_t opset = 13) {
    model.set_ir_version(7);
    auto* op = model.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    graph = model.mutable_graph();
    graph->set_name("g");
  }
  void input(const std::string& name, std::vector<int64_t> shape,
             int type = onnx::TensorProto::FLOAT) {
    info(graph->add_input(), name, shape, type);
  }
  void output(const std::string& name) { graph->add_output()->set_name(name); }
  static void info(onnx::ValueInfoProto* v, const std::string& name,
                   const std::vector<int64_t>& shape, int type) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    for (const int64_t d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::TensorProto* floats(const std::string& name, const std::vector<int64_t>& shape,
                            const std::vector<float>& data) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (const int64_t d : shape) t->add_dims(d);
    for (const float x : data) t->add_float_data(x);
    return t;
  }
  onnx::TensorProto* ints(const std::string& name, const std::vector<int64_t>& data) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(data.size()));
    for (const int64_t x : data) t->add_int64_data(x);
    return t;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out) {
    auto* n = graph->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(graph->node_size()));
    for (const auto& i : in) n->add_input(i);
    for (const auto& o : out) n->add_output(o);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (const int64_t x : v) a->add_ints(x);
  }
  Model load() const { return Model::parse(model.SerializeAsString(), "test model"); }
};

Value floats(std::vector<int64_t> shape, std::vector<double> data) {
  Value v;
  v.dtype = DType::Float;
  v.shape = std::move(shape);
  v.f = std::move(data);
  return v;
}

// Expects `f` to throw E whose message contains `part`.
template <typename E, typename F>
void expect_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << part << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(ReferenceLoad, RefusesGarbage) {
  expect_error<Error>([] { Model::parse("this is not a protobuf \xff\xff\xff", "junk.onnx"); },
                      "junk.onnx");
  expect_error<Error>([] { Model::load("/nonexistent/model.onnx"); }, "cannot open");
}

TEST(ReferenceLoad, RefusesUnknownOperatorAsUnsupported) {
  Builder b;
  b.input("x", {1});
  b.node("Einsum", {"x"}, {"y"});
  b.output("y");
  expect_error<Unsupported>([&] { b.load(); }, "Einsum");
}

TEST(ReferenceLoad, RefusesExternalData) {
  Builder b;
  b.input("x", {2});
  auto* t = b.floats("w", {2}, {});
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value("weights.bin");
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y");
  expect_error<Unsupported>([&] { b.load(); }, "external file");
}

TEST(ReferenceLoad, RefusesRawDataOfTheWrongSize) {
  Builder b;
  b.input("x", {4});
  auto* t = b.floats("w", {4}, {});
  t->set_raw_data(std::string(12, '\0'));  // 3 floats for 4 elements
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y");
  expect_error<Error>([&] { b.load(); }, "raw_data holds 12 bytes");
}

TEST(ReferenceLoad, RefusesHugeDeclaredShape) {
  Builder b;
  b.input("x", {1});
  b.floats("w", {1 << 20, 1 << 20, 1 << 20}, {});
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y");
  expect_error<Error>([&] { b.load(); }, "2^31");
}

TEST(ReferenceLoad, RefusesNodesOutOfOrder) {
  Builder b;
  b.input("x", {1});
  b.node("Relu", {"h"}, {"y"});
  b.node("Relu", {"x"}, {"h"});
  b.output("y");
  expect_error<Error>([&] { b.load(); }, "topological");
}

TEST(ReferenceRun, GatherIndexOutOfRangeIsAnError) {
  Builder b;
  b.input("x", {3});
  b.ints("idx", {5});
  b.node("Gather", {"x", "idx"}, {"y"});
  b.output("y");
  const Model m = b.load();
  expect_error<Error>([&] { m.run({{"x", floats({3}, {1, 2, 3})}}); }, "out of range");
}

TEST(ReferenceRun, HostileConstantOfShapeIsAnError) {
  Builder b;
  b.input("x", {1});
  b.ints("shape", {1000000, 1000000, 1000000});
  b.node("ConstantOfShape", {"shape"}, {"y"});
  b.output("y");
  const Model m = b.load();
  expect_error<Error>([&] { m.run({{"x", floats({1}, {0})}}); }, "2^31");
}

TEST(ReferenceRun, WrongInputShapeIsAnError) {
  Builder b;
  b.input("x", {1, 3});
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  const Model m = b.load();
  expect_error<Error>([&] { m.run({{"x", floats({1, 4}, {0, 0, 0, 0})}}); }, "[1,3]");
}

TEST(ReferenceRun, ConvGroupMismatchIsAnError) {
  Builder b;
  b.input("x", {1, 3, 4, 4});
  b.floats("w", {2, 2, 1, 1}, {1, 1, 1, 1});
  auto* n = b.node("Conv", {"x", "w"}, {"y"});
  Builder::attr(n, "group", int64_t{2});
  b.output("y");
  const Model m = b.load();
  expect_error<Error>(
      [&] {
        m.run({{"x", floats({1, 3, 4, 4}, std::vector<double>(48, 1))}});
      },
      "group 2");
}

// The fast convolution loop against the definition written as plainly as possible.
TEST(ReferenceRun, ConvMatchesNaiveDefinition) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  struct Case {
    int64_t c, f, group, h, w, k, stride, pad_lo, pad_hi, dil;
  };
  const Case cases[] = {{3, 4, 1, 7, 6, 3, 1, 1, 1, 1},
                        {4, 4, 4, 9, 9, 3, 2, 0, 1, 1},
                        {6, 4, 2, 8, 7, 2, 2, 1, 0, 2},
                        {2, 3, 1, 5, 5, 5, 3, 2, 2, 1},
                        {8, 8, 8, 6, 6, 5, 1, 2, 2, 1}};
  for (const Case& c : cases) {
    const int64_t cin = c.c / c.group;
    std::vector<float> x(static_cast<size_t>(c.c * c.h * c.w)),
        w(static_cast<size_t>(c.f * cin * c.k * c.k)), bias(static_cast<size_t>(c.f));
    for (auto* v : {&x, &w, &bias})
      for (float& e : *v) e = dist(rng);
    Builder b;
    b.input("x", {1, c.c, c.h, c.w});
    b.floats("w", {c.f, cin, c.k, c.k}, w);
    b.floats("b", {c.f}, bias);
    auto* n = b.node("Conv", {"x", "w", "b"}, {"y"});
    Builder::attr(n, "group", c.group);
    Builder::attr(n, "strides", std::vector<int64_t>{c.stride, c.stride});
    Builder::attr(n, "pads", std::vector<int64_t>{c.pad_lo, c.pad_lo, c.pad_hi, c.pad_hi});
    Builder::attr(n, "dilations", std::vector<int64_t>{c.dil, c.dil});
    b.output("y");
    const Model m = b.load();
    const auto y = m.run({{"x", floats({1, c.c, c.h, c.w}, {x.begin(), x.end()})}}).at(0);
    const int64_t span = (c.k - 1) * c.dil + 1;
    const int64_t oh = (c.h + c.pad_lo + c.pad_hi - span) / c.stride + 1;
    const int64_t ow = (c.w + c.pad_lo + c.pad_hi - span) / c.stride + 1;
    ASSERT_EQ(y.shape, (std::vector<int64_t>{1, c.f, oh, ow}));
    const int64_t cout = c.f / c.group;
    for (int64_t f = 0; f < c.f; ++f)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double want = bias[static_cast<size_t>(f)];
          const int64_t g = f / cout;
          for (int64_t ic = 0; ic < cin; ++ic)
            for (int64_t ki = 0; ki < c.k; ++ki)
              for (int64_t kj = 0; kj < c.k; ++kj) {
                const int64_t yi = i * c.stride - c.pad_lo + ki * c.dil;
                const int64_t xj = j * c.stride - c.pad_lo + kj * c.dil;
                if (yi < 0 || yi >= c.h || xj < 0 || xj >= c.w) continue;
                want += double{x[static_cast<size_t>(((g * cin + ic) * c.h + yi) * c.w + xj)]} *
                        double{w[static_cast<size_t>(((f * cin + ic) * c.k + ki) * c.k + kj)]};
              }
          EXPECT_NEAR(y.f[static_cast<size_t>((f * oh + i) * ow + j)], want, 1e-12)
              << "filter " << f << " at " << i << "," << j << " (group " << c.group << ")";
        }
  }
}

TEST(ReferenceRun, CaptureKeepsEveryFloatNodeOutputInOrder) {
  Builder b;
  b.input("x", {1, 2});
  b.node("Relu", {"x"}, {"r"});
  b.node("Shape", {"r"}, {"s"});  // int64: bookkeeping, not captured
  b.node("Reshape", {"r", "s"}, {"t"});
  b.node("Sigmoid", {"t"}, {"y"});
  b.output("y");
  const Model m = b.load();
  std::vector<Captured> captured;
  const auto out = m.run({{"x", floats({1, 2}, {-1, 2})}}, &captured);
  ASSERT_EQ(captured.size(), 3u);
  EXPECT_EQ(captured[0].name, "r");
  EXPECT_EQ(captured[0].op, "Relu");
  EXPECT_EQ(captured[1].name, "t");
  EXPECT_EQ(captured[2].name, "y");
  EXPECT_EQ(captured[2].value.f, out[0].f);
  EXPECT_DOUBLE_EQ(out[0].f[1], 1.0 / (1.0 + std::exp(-2.0)));
}

TEST(ReferenceRun, ClipUsesAttributesBeforeOpset11) {
  Builder b(10);
  b.input("x", {3});
  auto* n = b.node("Clip", {"x"}, {"y"});
  auto* a = n->add_attribute();
  a->set_name("max");
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(6);
  auto* lo = n->add_attribute();
  lo->set_name("min");
  lo->set_type(onnx::AttributeProto::FLOAT);
  lo->set_f(0);
  b.output("y");
  const auto y = b.load().run({{"x", floats({3}, {-1, 3, 9})}}).at(0);
  EXPECT_EQ(y.f, (std::vector<double>{0, 3, 6}));
}

}  // namespace
