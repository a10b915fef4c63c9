// The inverse edits of `deltann repair` (analysis/repair.h) on small in-memory graphs: a change is
// injected into a copy B of a model A, found by the model comparison (model_diff.h) as localize
// finds it, undone by apply_inverse_edit, and the comparison must then find nothing.
#include "analysis/repair.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/onnx_model.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;

onnx::TensorProto tensor(const std::string& name, const std::vector<int64_t>& shape,
                         const std::vector<float>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (const auto d : shape) t.add_dims(d);
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  return t;
}

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<float>(i % 7) - 3.0f + 0.1f * i);
  return v;
}

onnx::NodeProto* node(onnx::ModelProto& m, const std::string& name) {
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.name() == name) return &n;
  return nullptr;
}

onnx::TensorProto* initializer(onnx::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

std::vector<float> floats(const onnx::TensorProto& t) {
  std::vector<float> v(t.raw_data().size() / 4);
  std::memcpy(v.data(), t.raw_data().data(), v.size() * 4);
  return v;
}

void add_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& values) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (const auto v : values) a->add_ints(v);
}

void add_float(onnx::NodeProto& n, const std::string& name, float value) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

onnx::NodeProto& add_node(onnx::ModelProto& m, const std::string& op, const std::string& name,
                          const std::vector<std::string>& inputs, const std::string& output) {
  auto& n = *m.mutable_graph()->add_node();
  n.set_op_type(op);
  n.set_name(name);
  for (const auto& i : inputs) n.add_input(i);
  n.add_output(output);
  return n;
}

// x [1,2,4,4] -> Conv (w [3,2,3,3], b [3], pads 1) -> Clip(0, 6) -> GlobalAveragePool -> Flatten
// -> Gemm (fw [5,3], transB=1, fb [5]) -> logits. Opset 10: Clip's bounds are attributes.
onnx::ModelProto small_model() {
  onnx::ModelProto m;
  m.set_ir_version(7);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(10);
  auto* g = m.mutable_graph();
  g->set_name("small");
  auto* x = g->add_input();
  x->set_name("x");
  x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  g->add_output()->set_name("logits");
  *g->add_initializer() = tensor("w", {3, 2, 3, 3}, ramp(54, 0.1f));
  *g->add_initializer() = tensor("b", {3}, {0.5f, -0.25f, 0.125f});
  *g->add_initializer() = tensor("fw", {5, 3}, ramp(15, 0.2f));
  *g->add_initializer() = tensor("fb", {5}, {0.1f, 0.2f, -0.3f, 0.4f, -0.5f});
  add_ints(add_node(m, "Conv", "conv", {"x", "w", "b"}, "c"), "pads", {1, 1, 1, 1});
  auto& clip = add_node(m, "Clip", "clip", {"c"}, "r");
  add_float(clip, "min", 0);
  add_float(clip, "max", 6);
  add_node(m, "GlobalAveragePool", "pool", {"r"}, "p");
  add_node(m, "Flatten", "flatten", {"p"}, "f");
  auto& gemm = add_node(m, "Gemm", "fc", {"f", "fw", "fb"}, "logits");
  auto* trans = gemm.add_attribute();
  trans->set_name("transB");
  trans->set_type(onnx::AttributeProto::INT);
  trans->set_i(1);
  return m;
}

fs::path save(const onnx::ModelProto& m, const std::string& name) {
  const fs::path path = fs::path(testing::TempDir()) / ("repair_test_" + name + ".onnx");
  std::ofstream out(path, std::ios::binary);
  m.SerializeToOstream(&out);
  return path;
}

std::vector<ParameterDifference> differences(const onnx::ModelProto& a, const onnx::ModelProto& b) {
  return diff_models(save(a, "a"), save(b, "b"));
}

// Finds B's one difference from A, undoes it, and checks that nothing differs any more.
EditResult repair_one(const onnx::ModelProto& a, onnx::ModelProto& b, const std::string& kind) {
  const auto found = differences(a, b);
  EXPECT_FALSE(found.empty());
  EditResult last;
  for (const auto& d : found) {
    EXPECT_EQ(d.kind.kind, kind) << d.what;
    last = apply_inverse_edit(a, b, d);
    EXPECT_TRUE(last.applied) << last.action;
  }
  const auto left = differences(a, b);
  EXPECT_TRUE(left.empty()) << left.front().what << ": " << left.front().kind.text;
  return last;
}

TEST(InverseEdit, RestoresRescaledWeightsInPlace) {
  const auto a = small_model();
  auto b = a;
  auto w = floats(*initializer(b, "w"));
  for (auto& v : w) v *= 1.5f;
  *initializer(b, "w") = tensor("w", {3, 2, 3, 3}, w);
  const auto edit = repair_one(a, b, "rescaled");
  EXPECT_NE(edit.action.find("undid the rescale"), std::string::npos) << edit.action;
  EXPECT_EQ(edit.node_b, "conv");
  EXPECT_EQ(floats(*initializer(b, "w")), ramp(54, 0.1f));
}

TEST(InverseEdit, UndoesEveryKindOfValueChange) {
  const auto a = small_model();
  const auto w = ramp(54, 0.1f);
  const struct {
    const char* kind;
    std::vector<float> values;
  } cases[] = {
      {"zeroed", std::vector<float>(54, 0.0f)},
      {"offset",
       [&] {
         auto v = w;
         for (auto& x : v) x += 0.01f;
         return v;
       }()},
      {"rearranged",
       [&] {
         auto v = w;
         std::swap(v[0], v[18]);
         return v;
       }()},
      {"changed",
       [&] {
         auto v = w;
         v[5] += 0.3f;
         v[40] -= 0.7f;
         return v;
       }()},
  };
  for (const auto& c : cases) {
    auto b = a;
    *initializer(b, "w") = tensor("w", {3, 2, 3, 3}, c.values);
    SCOPED_TRACE(c.kind);
    repair_one(a, b, c.kind);
  }
}

TEST(InverseEdit, RestoresAMissingBias) {
  const auto a = small_model();
  auto b = a;
  node(b, "conv")->mutable_input()->RemoveLast();
  // The initialiser went with it, as a converter drops it.
  auto* inits = b.mutable_graph()->mutable_initializer();
  inits->DeleteSubrange(1, 1);
  const auto edit = repair_one(a, b, "missing");
  EXPECT_EQ(node(b, "conv")->input(2), "b");
  EXPECT_NE(edit.action.find("restored the missing input 2"), std::string::npos) << edit.action;
}

TEST(InverseEdit, RestoresAttributesAndBounds) {
  const auto a = small_model();
  auto b = a;
  node(b, "conv")->mutable_attribute(0)->set_ints(0, 2);  // pads [2,1,1,1]
  node(b, "clip")->mutable_attribute(0)->set_f(-1);       // min -1
  const auto found = differences(a, b);
  ASSERT_EQ(found.size(), 2u);
  for (const auto& d : found) EXPECT_TRUE(apply_inverse_edit(a, b, d).applied) << d.what;
  EXPECT_TRUE(differences(a, b).empty());
}

TEST(InverseEdit, RestoresAReplacedOperatorOnce) {
  const auto a = small_model();
  auto b = a;
  auto* clip = node(b, "clip");
  clip->set_op_type("LeakyRelu");
  clip->clear_attribute();
  add_float(*clip, "alpha", 0.1f);
  const auto found = differences(a, b);
  ASSERT_GE(found.size(), 2u);  // the op, and the attributes the two ops take
  EXPECT_EQ(found.front().what, "op");
  EXPECT_TRUE(apply_inverse_edit(a, b, found.front()).applied);
  // The attribute differences are covered by restoring the node: nothing left to undo.
  for (size_t i = 1; i < found.size(); ++i) {
    const auto edit = apply_inverse_edit(a, b, found[i]);
    EXPECT_FALSE(edit.applied) << found[i].what;
    EXPECT_NE(edit.action.find("nothing to undo"), std::string::npos) << edit.action;
  }
  EXPECT_TRUE(differences(a, b).empty());
  EXPECT_EQ(node(b, "clip")->op_type(), "Clip");
}

TEST(InverseEdit, NoFixLeavesTheModelAsItWas) {
  const auto a = small_model();
  auto b = a;
  b.mutable_graph()->mutable_node()->DeleteSubrange(2, 1);  // the pool node is gone
  const auto found = differences(a, b);
  const auto missing = std::find_if(found.begin(), found.end(),
                                    [](const auto& d) { return d.kind.kind == "node-missing"; });
  ASSERT_NE(missing, found.end());
  const std::string before = b.SerializeAsString();
  const auto edit = apply_inverse_edit(a, b, *missing);
  EXPECT_FALSE(edit.applied);
  EXPECT_EQ(edit.action.rfind("no fix found: ", 0), 0u) << edit.action;
  EXPECT_EQ(b.SerializeAsString(), before);
}

// B as tf2onnx writes a round trip: other names, the classifier a MatMul on the transposed weights
// without its bias, the Conv's weights int8 behind a DequantizeLinear.
onnx::ModelProto converted_model() {
  auto b = small_model();
  auto* g = b.mutable_graph();
  for (auto& n : *g->mutable_node()) n.set_name("tfl_" + n.name());
  // The classifier: MatMul(f, fw^T).
  auto* fc = node(b, "tfl_fc");
  fc->set_op_type("MatMul");
  fc->clear_attribute();
  fc->mutable_input()->RemoveLast();
  fc->set_input(1, "fw_t");
  const auto fw = ramp(15, 0.2f);
  std::vector<float> fw_t(15);
  for (int o = 0; o < 5; ++o)
    for (int i = 0; i < 3; ++i) fw_t[i * 5 + o] = fw[o * 3 + i];
  *g->add_initializer() = tensor("fw_t", {3, 5}, fw_t);
  // The Conv's weights: int8 codes times a scale of 0.05 (w rounded to that grid).
  onnx::TensorProto codes;
  codes.set_name("w_int8");
  codes.set_data_type(onnx::TensorProto::INT8);
  for (const auto d : {3, 2, 3, 3}) codes.add_dims(d);
  std::string raw;
  for (const float v : ramp(54, 0.1f)) raw.push_back(static_cast<char>(std::lround(v / 0.05f)));
  codes.set_raw_data(raw);
  *g->add_initializer() = codes;
  *g->add_initializer() = tensor("w_scale", {}, {0.05f});
  add_node(b, "DequantizeLinear", "dq", {"w_int8", "w_scale"}, "w_dq");
  // The DequantizeLinear must come before the Conv that reads it.
  auto* nodes = g->mutable_node();
  for (int j = nodes->size() - 1; j > 0; --j) nodes->SwapElements(j, j - 1);
  node(b, "tfl_conv")->set_input(1, "w_dq");
  // fb and fw (A's) and w are gone.
  auto* inits = g->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (std::set<std::string>{"w", "fw", "fb"}.count(inits->Get(i).name()))
      inits->DeleteSubrange(i, 1);
  return b;
}

TEST(InverseEdit, ThroughTheMatchingRestoresTheBiasAndDequantises) {
  const auto a = small_model();
  auto b = converted_model();
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"c", "c"}, {"r", "r"}, {"p", "p"}, {"f", "f"}, {"logits", "logits"}};
  const auto found = diff_matched(save(a, "a"), save(b, "b"), pairs).differences;
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].kind.kind, "quantised");
  EXPECT_EQ(found[0].tensor_b, "w_int8");
  EXPECT_EQ(found[1].what, "bias missing in B");
  for (const auto& d : found) {
    const auto edit = apply_inverse_edit(a, b, d);
    EXPECT_TRUE(edit.applied) << edit.action;
  }
  // The Conv reads float weights equal to A's; the DequantizeLinear and its codes are gone.
  const std::string w = node(b, "tfl_conv")->input(1);
  ASSERT_NE(initializer(b, w), nullptr) << w;
  EXPECT_EQ(floats(*initializer(b, w)), ramp(54, 0.1f));
  EXPECT_EQ(initializer(b, "w_int8"), nullptr);
  for (const auto& n : b.graph().node()) EXPECT_NE(n.op_type(), "DequantizeLinear");
  // An Add after the MatMul gives the layer's output its bias under the same name.
  const auto& last = b.graph().node(b.graph().node_size() - 1);
  EXPECT_EQ(last.op_type(), "Add");
  EXPECT_EQ(last.output(0), "logits");
  EXPECT_EQ(node(b, "tfl_fc")->output(0), last.input(0));
  const auto again = diff_matched(save(a, "a"), save(b, "b2"), pairs).differences;
  EXPECT_TRUE(again.empty()) << again.front().what;
}

TEST(SearchRepair, KeepsOnlyEditsThatHelpAndStopsWithinTolerance) {
  const auto a = small_model();
  auto b = a;
  auto w = floats(*initializer(b, "w"));
  for (auto& v : w) v *= 2;
  *initializer(b, "w") = tensor("w", {3, 2, 3, 3}, w);
  node(b, "clip")->mutable_attribute(0)->set_f(-1);
  const auto found = differences(a, b);
  ASSERT_EQ(found.size(), 2u);  // conv's weights, then clip's min (graph order)
  // A divergence that sees only the weights: restoring the bound does not lower it.
  const auto weights_error = [](const onnx::ModelProto& m) {
    auto copy = m;
    const auto got = floats(*initializer(copy, "w")), want = ramp(54, 0.1f);
    double e = 0;
    for (size_t i = 0; i < got.size(); ++i) e = std::max(e, double(std::fabs(got[i] - want[i])));
    return e + 1.0;  // never within a tolerance of 0.5
  };
  auto r = search_repair(a, b, found, 100, 0.5, weights_error);
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_TRUE(r.steps[0].kept);
  EXPECT_EQ(r.steps[0].after, 1.0);
  EXPECT_TRUE(r.steps[1].tried);
  EXPECT_FALSE(r.steps[1].kept);  // 1.0 is no improvement on 1.0
  EXPECT_EQ(r.evaluations, 2u);
  EXPECT_FALSE(r.within);
  EXPECT_EQ(node(r.repaired, "clip")->attribute(0).f(), -1);
  // Within the tolerance after the first edit: the second is not tried.
  r = search_repair(a, b, found, 100, 1.0, weights_error);
  EXPECT_TRUE(r.within);
  EXPECT_FALSE(r.steps[1].tried);
  EXPECT_NE(r.steps[1].note.find("already agrees"), std::string::npos);
  EXPECT_EQ(r.evaluations, 1u);
}

TEST(SearchRepair, TriesTheRejectedEditsTogether) {
  const auto a = small_model();
  auto b = a;
  auto w = floats(*initializer(b, "w"));
  for (auto& v : w) v *= 2;
  *initializer(b, "w") = tensor("w", {3, 2, 3, 3}, w);
  auto fw = floats(*initializer(b, "fw"));
  for (auto& v : fw) v += 0.5f;
  *initializer(b, "fw") = tensor("fw", {5, 3}, fw);
  const auto found = differences(a, b);
  ASSERT_EQ(found.size(), 2u);
  // Like two quantised layers whose errors partly cancel: either one restored alone makes it
  // worse, both restored give A.
  const auto restored = [](const onnx::ModelProto& m) {
    auto copy = m;
    return int(floats(*initializer(copy, "w")) == ramp(54, 0.1f)) +
           int(floats(*initializer(copy, "fw")) == ramp(15, 0.2f));
  };
  const auto r = search_repair(a, b, found, 1.0, 0.0, [&](const onnx::ModelProto& m) {
    return std::vector<double>{1.0, 2.0, 0.0}[restored(m)];
  });
  ASSERT_TRUE(r.together);
  EXPECT_EQ(r.together->steps, (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(r.together->kept);
  EXPECT_TRUE(r.within);
  EXPECT_TRUE(r.steps[0].kept && r.steps[1].kept);
  EXPECT_NE(r.steps[0].note.find("kept together"), std::string::npos);
  EXPECT_EQ(restored(r.repaired), 2);
  EXPECT_EQ(r.evaluations, 3u);
}

TEST(SplitImages, SeededDisjointAndComplete) {
  const auto s = split_images(9, 5, 0);
  EXPECT_EQ(s.search.size(), 5u);
  EXPECT_EQ(s.held_out.size(), 4u);
  std::set<size_t> all(s.search.begin(), s.search.end());
  all.insert(s.held_out.begin(), s.held_out.end());
  EXPECT_EQ(all.size(), 9u);
  EXPECT_TRUE(std::is_sorted(s.search.begin(), s.search.end()));
  const auto again = split_images(9, 5, 0);
  EXPECT_EQ(again.search, s.search);
  EXPECT_NE(split_images(9, 5, 1).search, s.search);
  EXPECT_EQ(split_images(3, 10, 0).held_out.size(), 0u);
}

}  // namespace
}  // namespace deltann
