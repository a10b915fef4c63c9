#include "repair.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "core/onnx_model.h"

namespace deltann {
namespace {

// The ops converters put in front of weights (model_diff's reading of a constant walks them).
bool passes_weights_through(const std::string& op) {
  return op == "Identity" || op == "Cast" || op == "Transpose" || op == "DequantizeLinear" ||
         op == "Constant";
}

onnx::NodeProto* find_node(onnx::GraphProto& graph, const std::string& key) {
  for (auto& node : *graph.mutable_node())
    if (node_key(node) == key) return &node;
  return nullptr;
}

const onnx::NodeProto* find_node(const onnx::GraphProto& graph, const std::string& key) {
  for (const auto& node : graph.node())
    if (node_key(node) == key) return &node;
  return nullptr;
}

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

void remove_attribute(onnx::NodeProto& node, const std::string& name) {
  auto* attributes = node.mutable_attribute();
  for (int i = attributes->size() - 1; i >= 0; --i)
    if (attributes->Get(i).name() == name) attributes->DeleteSubrange(i, 1);
}

void set_float_attribute(onnx::NodeProto& node, const std::string& name, float value) {
  remove_attribute(node, name);
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

onnx::TensorProto float_tensor(const std::string& name, const std::vector<int64_t>& shape,
                               const std::vector<double>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (const auto d : shape) t.add_dims(d);
  std::string raw(values.size() * sizeof(float), '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const auto v = static_cast<float>(values[i]);
    std::memcpy(raw.data() + i * sizeof(float), &v, sizeof(float));
  }
  t.set_raw_data(std::move(raw));
  return t;
}

// Every name the graph uses for a tensor: initialisers, inputs, outputs and node outputs.
std::set<std::string> tensor_names(const onnx::GraphProto& graph) {
  std::set<std::string> names;
  for (const auto& t : graph.initializer()) names.insert(t.name());
  for (const auto& v : graph.input()) names.insert(v.name());
  for (const auto& v : graph.output()) names.insert(v.name());
  for (const auto& n : graph.node())
    for (const auto& o : n.output()) names.insert(o);
  return names;
}

// `base`, or `base` with the first free numeric suffix.
std::string unused_name(const onnx::GraphProto& graph, const std::string& base) {
  const auto names = tensor_names(graph);
  if (!names.count(base)) return base;
  for (int k = 1;; ++k)
    if (const std::string name = base + "_" + std::to_string(k); !names.count(name)) return name;
}

// Adds a float32 initialiser (and, before IR version 4, the graph input every initialiser needs)
// and returns its name: `base` when free.
std::string add_initializer(onnx::ModelProto& model, const std::string& base,
                            const std::vector<int64_t>& shape, const std::vector<double>& values) {
  auto* graph = model.mutable_graph();
  const std::string name = unused_name(*graph, base);
  *graph->add_initializer() = float_tensor(name, shape, values);
  if (model.ir_version() < 4) {
    auto* input = graph->add_input();
    input->set_name(name);
    auto* type = input->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    for (const auto d : shape) type->mutable_shape()->add_dim()->set_dim_value(d);
  }
  return name;
}

size_t readers(const onnx::GraphProto& graph, const std::string& tensor) {
  size_t count = 0;
  for (const auto& n : graph.node())
    count += static_cast<size_t>(std::count(n.input().begin(), n.input().end(), tensor));
  return count;
}

std::string count_text(size_t n, const std::string& what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

EditResult no_fix(const std::string& why, const std::string& node_b = "") {
  return {false, "no fix found: " + why, node_b};
}

// B's node for the difference: diff_matched's main node, else the node of the same key.
std::string b_key(const ParameterDifference& d) { return d.node_b.empty() ? d.node : d.node_b; }

// What the edit undoes, by the kind of the change (cause_kind.h), as the start of its sentence.
std::string undoing(const CauseKind& kind) {
  const auto& k = kind.kind;
  const auto& d = kind.details;
  if (k == "zeroed") return "restored the zeroed values";
  if (k == "rearranged") {
    const std::string how = d.contains("description") ? d["description"].get<std::string>()
                            : d.contains("transform") ? d["transform"].get<std::string>()
                                                      : "a rearrangement";
    return "undid the rearrangement (" + how + ")";
  }
  if (k == "rescaled" && d.contains("k"))
    return "undid the rescale (B = k*A, k = " + number_text(d["k"].get<double>()) + ")";
  if (k == "offset" && d.contains("c"))
    return "undid the offset (B = A + c, c = " + number_text(d["c"].get<double>()) + ")";
  if (k == "affine") return "undid the affine change";
  if (k == "precision-reduced")
    return "restored full precision (B was rounded to " + d.value("format", std::string("?")) + ")";
  if (k == "quantised")
    return "dequantised back to the source's values (B was on a " +
           (d.contains("bits") ? std::to_string(d["bits"].get<int>()) + "-bit " : std::string()) +
           "grid)";
  return "restored the source's values";
}

// Which input of which B node reads B's stored constant `stored`: B's node for the difference
// first, then any other node that is not itself one of the pass-through ops in front of weights.
std::optional<std::pair<onnx::NodeProto*, int>> constant_reader(const onnx::ModelProto& model,
                                                                onnx::ModelProto& b,
                                                                const std::string& key,
                                                                const std::string& stored) {
  const auto reads = [&](const onnx::NodeProto& n) -> int {
    for (int i = 0; i < n.input_size(); ++i) {
      if (n.input(i).empty()) continue;
      const auto view = read_constant(model, n.input(i));
      if (view && view->stored == stored) return i;
    }
    return -1;
  };
  if (onnx::NodeProto* n = find_node(*b.mutable_graph(), key))
    if (const int i = reads(*n); i >= 0) return std::pair{n, i};
  for (auto& n : *b.mutable_graph()->mutable_node()) {
    if (passes_weights_through(n.op_type())) continue;
    if (const int i = reads(n); i >= 0) return std::pair{&n, i};
  }
  return std::nullopt;
}

// Writes A's constant (read at input d.input of A's node) into B, read through d.layout, at the
// input of B's node that reads B's counterpart. Undoes every change of a tensor's values.
EditResult restore_values(const onnx::ModelProto& a, onnx::ModelProto& b,
                          const ParameterDifference& d) {
  const onnx::NodeProto* na = find_node(a.graph(), d.node);
  if (!na || d.input < 0 || d.input >= na->input_size())
    return no_fix("A's node " + d.node + " has no such input");
  const auto view_a = read_constant(a, na->input(d.input));
  if (!view_a) return no_fix("A's input " + na->input(d.input) + " is not a constant");
  // diff_models compares B's node's input at the same position; diff_matched names B's constant.
  const onnx::ModelProto original = b;
  std::optional<std::pair<onnx::NodeProto*, int>> reader;
  if (d.tensor_b.empty()) {
    onnx::NodeProto* nb = find_node(*b.mutable_graph(), d.node);
    if (nb && d.input < nb->input_size()) reader = std::pair{nb, d.input};
  } else {
    reader = constant_reader(original, b, b_key(d), d.tensor_b);
  }
  if (!reader) return no_fix("no node of B reads the constant to restore", b_key(d));
  auto [nb, input] = *reader;
  const std::string tensor_b = nb->input(input);
  const auto view_b = read_constant(original, tensor_b);
  if (!view_b) return no_fix("B computes " + tensor_b + " instead of reading a constant");
  const auto perm = layout_permutation(d.layout);
  std::vector<double> values =
      perm.empty() ? view_a->values : permute_values(view_a->values, view_a->shape, perm);
  if (values.size() != view_b->values.size())
    return no_fix("B's " + tensor_b + " holds " + count_text(view_b->values.size(), "value") +
                      ", A's " + na->input(d.input) + " " +
                      count_text(view_a->values.size(), "value"),
                  node_key(*nb));

  const std::string layout =
      d.layout.empty() || d.layout == "same" ? "" : " in B's layout " + d.layout;
  std::string action = undoing(d.kind) + ": A's " + view_a->stored + " (" +
                       count_text(values.size(), "value") + ") written" + layout;
  // B reads a float32 initialiser directly and alone: overwritten under its own name. Otherwise
  // (a chain in front of it, int8 weights, a shared tensor) B's node reads a new initialiser.
  const onnx::TensorProto* direct = nullptr;
  for (const auto& t : b.graph().initializer())
    if (t.name() == tensor_b) direct = &t;
  if (direct && direct->data_type() == onnx::TensorProto::FLOAT &&
      readers(b.graph(), tensor_b) == 1) {
    for (auto& t : *b.mutable_graph()->mutable_initializer())
      if (t.name() == tensor_b)
        t = float_tensor(tensor_b, std::vector<int64_t>(t.dims().begin(), t.dims().end()), values);
    return {true, action + " into B's " + tensor_b, node_key(*nb)};
  }
  const std::string key = node_key(*nb);
  const std::string name = add_initializer(b, view_b->stored + "_restored", view_b->shape, values);
  find_node(*b.mutable_graph(), key)->set_input(input, name);
  remove_unread_constants(*b.mutable_graph());
  return {true,
          action + " as " + name + ", read by B's " + key + " instead of " + tensor_b +
              (tensor_b != view_b->stored ? " (through " + view_b->stored + ")" : ""),
          key};
}

// Moves the last node of the graph to just after position `after`, keeping the order
// topological for a node that reads `after`'s output.
void move_last_after(onnx::GraphProto& graph, int after) {
  auto* nodes = graph.mutable_node();
  for (int j = nodes->size() - 1; j > after + 1; --j) nodes->SwapElements(j, j - 1);
}

// A constant input B's node lacks (a bias dropped by the conversion): A's values as a new
// initialiser at that input, or, for a MatMul (the classifier's Gemm split by tf2onnx), as an Add
// after it.
EditResult restore_missing(const onnx::ModelProto& a, onnx::ModelProto& b,
                           const ParameterDifference& d) {
  const onnx::NodeProto* na = find_node(a.graph(), d.node);
  if (!na || d.input < 0 || d.input >= na->input_size())
    return no_fix("A's node " + d.node + " has no such input");
  const auto view_a = read_constant(a, na->input(d.input));
  if (!view_a) return no_fix("A's input " + na->input(d.input) + " is not a constant");
  auto* graph = b.mutable_graph();
  int position = -1;
  for (int i = 0; i < graph->node_size(); ++i)
    if (node_key(graph->node(i)) == b_key(d)) position = i;
  if (position < 0) return no_fix("B has no node " + b_key(d));
  const std::string op = graph->node(position).op_type();
  const std::string what = count_text(view_a->values.size(), "value");
  const bool same_op = op == na->op_type();
  if (same_op && (graph->node(position).input_size() <= d.input ||
                  graph->node(position).input(d.input).empty())) {
    // B may still hold A's tensor, no longer read (the input was cut, the initialiser left).
    const auto left = read_constant(b, na->input(d.input));
    const std::string name =
        left && left->values == view_a->values && left->shape == view_a->shape
            ? na->input(d.input)
            : add_initializer(b, na->input(d.input), view_a->shape, view_a->values);
    auto& nb = *graph->mutable_node(position);
    while (nb.input_size() <= d.input) nb.add_input("");
    nb.set_input(d.input, name);
    return {true,
            "restored the missing input " + std::to_string(d.input) + " of B's " + op + ": A's " +
                view_a->stored + " (" + what + ") as " + name,
            b_key(d)};
  }
  if (op == "MatMul" && d.input == 2 && (na->op_type() == "Gemm")) {
    // MatMul's output [.., N] plus the bias [N]: the Add takes the output's name, so every reader
    // of the layer (and a graph output) now gets the biased values.
    const std::string out = graph->node(position).output(0);
    const std::string bias = add_initializer(b, na->input(d.input), view_a->shape, view_a->values);
    const std::string pre = unused_name(*graph, out + "_without_bias");
    graph->mutable_node(position)->set_output(0, pre);
    auto* add = graph->add_node();
    add->set_op_type("Add");
    add->set_name(unused_name(*graph, out + "_restored_bias"));
    add->add_input(pre);
    add->add_input(bias);
    add->add_output(out);
    move_last_after(*graph, position);
    return {true,
            "restored the missing bias: A's " + view_a->stored + " (" + what + ") added by " +
                add->name() + " after B's MatMul " + b_key(d),
            b_key(d)};
  }
  return no_fix("B's " + op + " " + b_key(d) + " has no input for A's " + view_a->stored +
                    " and no rule adds one there",
                b_key(d));
}

std::vector<int64_t> ints_of_text(const std::string& text) {
  std::vector<int64_t> v;
  std::string s = text;
  std::replace(s.begin(), s.end(), '[', ' ');
  std::replace(s.begin(), s.end(), ']', ' ');
  std::replace(s.begin(), s.end(), ',', ' ');
  std::istringstream in(s);
  for (int64_t x; in >> x;) v.push_back(x);
  return v;
}

// A Conv's padding through the matching, where a Pad node before either Conv counts: B's own pads
// move by the difference of the two effective paddings.
EditResult restore_pads(onnx::NodeProto& nb, const ParameterDifference& d) {
  const auto want = ints_of_text(d.a), have = ints_of_text(d.b);
  if (want.size() != have.size() || want.empty())
    return no_fix("the paddings " + d.a + " and " + d.b + " cannot be compared", node_key(nb));
  std::vector<int64_t> own(want.size(), 0);
  if (const auto* p = find_attribute(nb, "pads"); p && p->ints_size() == (int)own.size())
    own.assign(p->ints().begin(), p->ints().end());
  for (size_t i = 0; i < own.size(); ++i) {
    own[i] += want[i] - have[i];
    if (own[i] < 0)
      return no_fix("B's padding " + d.b + " comes from a Pad node before the Conv; A's " + d.a +
                        " would need negative Conv padding",
                    node_key(nb));
  }
  remove_attribute(nb, "pads");
  auto* p = nb.add_attribute();
  p->set_name("pads");
  p->set_type(onnx::AttributeProto::INTS);
  for (const auto v : own) p->add_ints(v);
  return {true, "restored the effective padding " + d.a + " (B: " + d.b + ")", node_key(nb)};
}

// The model's version of ONNX's default operator set (0 when it imports none).
int64_t default_opset(const onnx::ModelProto& model) {
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
  return 0;
}

// Clip's bound `name` set to A's value `text`: as B's attribute when B has one (opset < 11),
// else as B's input (a new initialiser).
EditResult restore_bound(onnx::ModelProto& b, onnx::NodeProto& nb, const std::string& name,
                         const ParameterDifference& d) {
  const double value = std::strtod(d.a.c_str(), nullptr);
  const int input = name == "min" ? 1 : 2;
  const bool as_input =
      !find_attribute(nb, name) &&
      ((nb.input_size() > input && !nb.input(input).empty()) || default_opset(b) >= 11);
  if (!as_input) {
    set_float_attribute(nb, name, static_cast<float>(value));
    return {true, "restored Clip's " + name + " = " + d.a + " (B: " + d.b + ")", node_key(nb)};
  }
  const std::string key = node_key(nb);
  const std::string tensor = add_initializer(b, key + "_" + name, {}, {value});
  onnx::NodeProto& node = *find_node(*b.mutable_graph(), key);
  while (node.input_size() <= input) node.add_input("");
  node.set_input(input, tensor);
  remove_unread_constants(*b.mutable_graph());
  return {true, "restored Clip's " + name + " input = " + d.a + " (B: " + d.b + ")", key};
}

EditResult restore_attribute(const onnx::ModelProto& a, onnx::ModelProto& b,
                             const ParameterDifference& d, const std::string& name) {
  const onnx::NodeProto* na = find_node(a.graph(), d.node);
  onnx::NodeProto* nb = find_node(*b.mutable_graph(), b_key(d));
  if (!na || !nb) return no_fix("the node is missing in one of the models", b_key(d));
  if (na->op_type() != nb->op_type())
    return no_fix("B's node is a " + nb->op_type() + ", A's a " + na->op_type() +
                      ": the operator differs, not only the attribute",
                  b_key(d));
  const auto* attribute = find_attribute(*na, name);
  const auto* current = find_attribute(*nb, name);
  const bool same = attribute && current
                        ? attribute->SerializeAsString() == current->SerializeAsString()
                        : !attribute && !current && d.node_b.empty();
  if (same)
    return no_fix("nothing to undo: B's " + name + " is already A's (an earlier edit restored it)",
                  b_key(d));
  const bool matched = !d.node_b.empty();
  if (matched && name == "pads" && na->op_type() == "Conv") return restore_pads(*nb, d);
  if (na->op_type() == "Clip" && (name == "min" || name == "max"))
    return restore_bound(b, *nb, name, d);
  if (matched && name == "transB")
    return no_fix("B's Gemm reads its weights in another order (transB " + d.b +
                      "); flipping transB would need the weights transposed too",
                  b_key(d));
  remove_attribute(*nb, name);
  if (attribute) *nb->add_attribute() = *attribute;
  return {true,
          "restored attribute " + name + " = " + d.a + " (B: " + d.b + ")" +
              (attribute ? "" : ": B's removed, A leaves it unset"),
          b_key(d)};
}

// B's node replaced by A's (same key, same names: an edited copy), with any constant it reads that
// B lacks; through a renaming conversion, only an operator that reads one computed input and
// nothing else can be replaced (its attributes copied, B's input kept).
EditResult restore_operator(const onnx::ModelProto& a, onnx::ModelProto& b,
                            const ParameterDifference& d) {
  const onnx::NodeProto* na = find_node(a.graph(), d.node);
  onnx::NodeProto* nb = find_node(*b.mutable_graph(), b_key(d));
  if (!na || !nb) return no_fix("the node is missing in one of the models", b_key(d));
  if (nb->op_type() == na->op_type())
    return no_fix("nothing to undo: B's operator is already A's " + na->op_type(), b_key(d));
  const std::string was = nb->op_type();
  if (d.node_b.empty()) {
    const auto names = tensor_names(b.graph());
    std::vector<onnx::TensorProto> needed;
    for (const auto& input : na->input()) {
      if (input.empty() || names.count(input)) continue;
      for (const auto& t : a.graph().initializer())
        if (t.name() == input) needed.push_back(t);
      if (needed.empty() || needed.back().name() != input)
        return no_fix("A's " + na->op_type() + " reads " + input + ", which B lacks", b_key(d));
    }
    *nb = *na;
    for (auto& t : needed) *b.mutable_graph()->add_initializer() = std::move(t);
    return {true,
            "restored A's operator " + na->op_type() + " (B: " + was + ") with its attributes",
            b_key(d)};
  }
  if (na->input_size() != 1 || nb->input_size() < 1)
    return no_fix("B's " + was + " stands where A has a " + na->op_type() + " with " +
                      count_text(na->input_size(), "input") +
                      "; across a renaming conversion only a one-input operator is replaced",
                  b_key(d));
  nb->set_op_type(na->op_type());
  nb->clear_attribute();
  for (const auto& attribute : na->attribute()) *nb->add_attribute() = attribute;
  while (nb->input_size() > 1) nb->mutable_input()->RemoveLast();
  remove_unread_constants(*b.mutable_graph());
  return {true, "restored A's operator " + na->op_type() + " (B: " + was + ") with its attributes",
          b_key(d)};
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

EditResult apply_inverse_edit(const onnx::ModelProto& a, onnx::ModelProto& b,
                              const ParameterDifference& d) {
  const std::string& kind = d.kind.kind;
  const onnx::ModelProto before = b;
  EditResult result;
  if (kind == "node-missing")
    result = no_fix("B has no node for A's " + d.a + " " + d.node +
                    " (removed, or fused into another node): one edit cannot restore a node");
  else if (kind == "node-added")
    result = no_fix("B has an extra " + d.b + " node " + d.node +
                        "; removing it would need its readers rewired",
                    d.node);
  else if (kind == "added")
    result = no_fix("B's " + d.node_b + " holds a constant A's node lacks (" + d.b +
                        "): a folded or fused parameter with no counterpart to restore",
                    d.node_b);
  else if (kind == "resized")
    result = no_fix("B's tensor has another number of values (" + d.b + " against " + d.a + ")",
                    b_key(d));
  else if (d.what == "op")
    result = restore_operator(a, b, d);
  else if (starts_with(d.what, "attribute "))
    result = restore_attribute(a, b, d, d.what.substr(10));
  else if (starts_with(d.what, "input ")) {
    // Clip's bounds as inputs (opset >= 11), compared by name: A's value into B's input.
    onnx::NodeProto* nb = find_node(*b.mutable_graph(), b_key(d));
    result = nb ? restore_bound(b, *nb, d.what.substr(6), d) : no_fix("B has no node " + b_key(d));
  } else if (kind == "missing" && (d.node_b.empty() || d.what == "bias missing in B"))
    result = restore_missing(a, b, d);
  else if (kind == "missing")
    result = no_fix("B's " + d.node_b + " holds no constant of " + d.a.substr(d.a.find(':') + 2) +
                        " to put A's values into: the weights were folded or reshaped (a "
                        "BatchNorm fused into the Conv, for instance)",
                    d.node_b);
  else if (d.input >= 0)
    result = restore_values(a, b, d);
  else
    result =
        no_fix("no inverse edit is known for a " + kind + " difference (" + d.what + ")", b_key(d));
  if (!result.applied) b = before;
  return result;
}

namespace {

void try_rejected_together(const onnx::ModelProto& a, RepairSearch& r,
                           const Divergence& divergence) {
  std::vector<size_t> rejected;
  for (size_t i = 0; i < r.steps.size(); ++i)
    if (r.steps[i].tried && !r.steps[i].kept) rejected.push_back(i);
  if (rejected.size() < 2) return;
  onnx::ModelProto candidate = r.repaired;
  TogetherTry together;
  for (const size_t i : rejected)
    if (apply_inverse_edit(a, candidate, r.steps[i].difference).applied)
      together.steps.push_back(i);
  if (together.steps.size() < 2) return;
  together.before = r.final;
  together.after = divergence(candidate);
  ++r.evaluations;
  together.kept = together.after < r.final;
  if (together.kept) {
    r.repaired = std::move(candidate);
    r.final = together.after;
    for (const size_t i : together.steps) {
      r.steps[i].kept = true;
      r.steps[i].note = "kept together with the " + std::to_string(together.steps.size() - 1) +
                        " other edits that did not lower the divergence alone";
    }
  }
  r.together = std::move(together);
}

}  // namespace

RepairSearch search_repair(const onnx::ModelProto& a, const onnx::ModelProto& b,
                           const std::vector<ParameterDifference>& differences, double initial,
                           double tolerance, const Divergence& divergence) {
  RepairSearch r;
  r.repaired = b;
  r.initial = r.final = initial;
  for (const auto& d : differences) {
    RepairStep step;
    step.difference = d;
    step.before = r.final;
    if (r.final <= tolerance) {
      step.note = "not tried: B already agrees with A within the tolerance";
      r.steps.push_back(std::move(step));
      continue;
    }
    onnx::ModelProto candidate = r.repaired;
    step.edit = apply_inverse_edit(a, candidate, d);
    if (step.edit.applied) {
      step.tried = true;
      step.after = divergence(candidate);
      ++r.evaluations;
      step.kept = step.after < r.final;
      if (step.kept) {
        r.repaired = std::move(candidate);
        r.final = step.after;
      } else {
        step.note = "not kept: the divergence did not drop";
      }
    }
    r.steps.push_back(std::move(step));
  }
  if (r.final > tolerance) try_rejected_together(a, r, divergence);
  r.within = r.final <= tolerance;
  return r;
}

ImageSplit split_images(size_t n, size_t search, uint64_t seed) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  search = std::min(search, n);
  ImageSplit split;
  split.search.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(search));
  split.held_out.assign(order.begin() + static_cast<std::ptrdiff_t>(search), order.end());
  std::sort(split.search.begin(), split.search.end());
  std::sort(split.held_out.begin(), split.held_out.end());
  return split;
}

void remove_unread_constants(onnx::GraphProto& graph) {
  for (bool removed = true; removed;) {
    removed = false;
    std::set<std::string> read;
    for (const auto& n : graph.node())
      for (const auto& input : n.input()) read.insert(input);
    for (const auto& o : graph.output()) read.insert(o.name());
    auto* nodes = graph.mutable_node();
    for (int i = nodes->size() - 1; i >= 0; --i) {
      const auto& n = nodes->Get(i);
      if (!passes_weights_through(n.op_type())) continue;
      if (std::none_of(n.output().begin(), n.output().end(),
                       [&](const std::string& o) { return read.count(o) > 0; })) {
        nodes->DeleteSubrange(i, 1);
        removed = true;
      }
    }
    if (removed) continue;
    std::set<std::string> gone;
    auto* inits = graph.mutable_initializer();
    for (int i = inits->size() - 1; i >= 0; --i)
      if (!read.count(inits->Get(i).name())) {
        gone.insert(inits->Get(i).name());
        inits->DeleteSubrange(i, 1);
      }
    auto* inputs = graph.mutable_input();
    for (int i = inputs->size() - 1; i >= 0; --i)
      if (gone.count(inputs->Get(i).name())) inputs->DeleteSubrange(i, 1);
  }
}

}  // namespace deltann
