// Opening an ONNX model's batch dimension (src/core/onnx_batch.h) on hand-made graphs.
#include "core/onnx_batch.h"

#include <gtest/gtest.h>

#include <string>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

using test::Contains;
using test::message_of;

void set_shape(onnx::ValueInfoProto& value, std::vector<int64_t> dims) {
  auto* shape = value.mutable_type()->mutable_tensor_type()->mutable_shape();
  value.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  for (const int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

// x [batch,4,1,1] -> Reshape(x, Constant [1,-1]) -> y [batch,4], with y's shape also recorded in
// value_info, as exporters write it.
onnx::ModelProto reshape_model(int64_t batch) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto& g = *m.mutable_graph();
  auto* x = g.add_input();
  x->set_name("x");
  set_shape(*x, {batch, 4, 1, 1});
  auto* constant = g.add_node();
  constant->set_op_type("Constant");
  constant->add_output("shape");
  auto* value = constant->add_attribute();
  value->set_name("value");
  auto* t = value->mutable_t();
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(2);
  t->add_int64_data(1);
  t->add_int64_data(-1);
  auto* reshape = g.add_node();
  reshape->set_name("flatten");
  reshape->set_op_type("Reshape");
  reshape->add_input("x");
  reshape->add_input("shape");
  reshape->add_output("y");
  auto* y = g.add_output();
  y->set_name("y");
  set_shape(*y, {batch, 4});
  set_shape(*g.add_value_info(), {batch, 4});
  return m;
}

TEST(OpenBatchDimension, MakesTheBatchOfInputsAndOutputsSymbolic) {
  onnx::ModelProto m = reshape_model(1);
  open_batch_dimension(m, "m.onnx");
  const auto& g = m.graph();
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(1).dim_value(), 4);
  EXPECT_EQ(g.output(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(g.value_info_size(), 0);
}

TEST(OpenBatchDimension, KeepsTheBatchInReshapeConstants) {
  onnx::ModelProto m = reshape_model(1);
  open_batch_dimension(m, "m.onnx");
  const auto& g = m.graph();
  // The Constant the Reshape read is gone (nothing reads it), the Reshape reads the copy.
  ASSERT_EQ(g.node_size(), 1);
  const auto& reshape = g.node(0);
  ASSERT_EQ(reshape.input(1), "shape/open_batch");
  ASSERT_EQ(g.initializer_size(), 1);
  const auto& shape = g.initializer(0);
  EXPECT_EQ(shape.name(), "shape/open_batch");
  ASSERT_EQ(shape.int64_data_size(), 2);
  EXPECT_EQ(shape.int64_data(0), 0);  // 0: the input's first dimension, the batch
  EXPECT_EQ(shape.int64_data(1), -1);
}

TEST(OpenBatchDimension, RefusesAnInputWithAnotherFixedBatch) {
  onnx::ModelProto m = reshape_model(2);
  EXPECT_TRUE(Contains(message_of<Error>([&] { open_batch_dimension(m, "m.onnx"); }),
                       "m.onnx: input 'x' has a fixed batch of 2"));
}

TEST(OpenBatchDimension, RefusesAReshapeWithAllowzero) {
  onnx::ModelProto m = reshape_model(1);
  auto* allowzero = m.mutable_graph()->mutable_node(1)->add_attribute();
  allowzero->set_name("allowzero");
  allowzero->set_i(1);
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { open_batch_dimension(m, "m.onnx"); }), "Reshape 'flatten'"));
}

}  // namespace
}  // namespace deltann
