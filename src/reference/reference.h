// A float64 reference executor for ONNX models: an oracle against which every engine's error can
// be measured (docs/REFERENCE.md). It favours clarity over speed: every operator is a plain loop,
// every value is held in double precision (int64 for shapes and indices), and every node output
// can be kept for capture. Model files are untrusted input: every size, index and attribute is
// checked, and a problem is an Error (or Unsupported for a valid model this executor cannot run)
// naming the node and what is wrong, never a crash.
//
// The header is free of protobuf types so that users need not see ONNX's generated classes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace deltann::reference {

// ONNX TensorProto element types this executor holds (the numbers are ONNX's own).
enum class DType : int32_t {
  Float = 1,
  Uint8 = 2,
  Int8 = 3,
  Uint16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  Bool = 9,
  Double = 11,
  Uint32 = 12,
  Uint64 = 13,
};
std::string dtype_name(DType t);
bool is_floating(DType t);

// A dense tensor. Floating types (float, double) live in `f` as double; integer and bool types in
// `i` as int64. `dtype` is the ONNX type the value has in the graph, so that Cast and the outputs
// keep the model's types while the arithmetic is done in float64.
struct Value {
  DType dtype = DType::Double;
  std::vector<int64_t> shape;
  std::vector<double> f;
  std::vector<int64_t> i;

  bool floating() const { return is_floating(dtype); }
  int64_t count() const;  // product of the dimensions (1 for a scalar)
  // The elements as doubles, whatever the type (copies for integer tensors).
  std::vector<double> as_doubles() const;
};

// The most elements one tensor may have (2^31): far above any image model's activations, low
// enough that a hostile shape in a model file is refused instead of exhausting memory.
inline constexpr int64_t kMaxElements = int64_t{1} << 31;
// Product of `shape`; throws Error naming `where` when a dimension is negative or the product
// exceeds kMaxElements.
int64_t checked_count(const std::vector<int64_t>& shape, const std::string& where);
// "[1,3,224,224]", for messages.
std::string shape_text_of(const std::vector<int64_t>& shape);

struct Attribute {
  enum class Kind { Int, Float, String, Tensor, Ints, Floats, Strings, Other };
  Kind kind = Kind::Other;
  int64_t i = 0;
  double f = 0;
  std::string s;
  Value t;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};

struct Node {
  std::string name;  // may be empty in the file; messages then use the first output's name
  std::string op;
  std::vector<std::string> inputs;  // "" for an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attributes;
  std::string label() const;  // "node 'NAME' (Op)", for messages
};

// A graph input or output as the model declares it; dimensions without a fixed size are -1.
struct ValueInfo {
  std::string name;
  DType dtype = DType::Float;
  bool has_shape = false;
  std::vector<int64_t> shape;
};

// One node output kept by Model::run for capture, in execution order.
struct Captured {
  std::string name;
  std::string op;
  Value value;
};

class Model {
 public:
  // Reads and checks a model file: protobuf, opset, initializers, topological order, operators
  // known, attributes of a supported form where that can be decided without running. Throws Error
  // for a malformed model and Unsupported for a valid one that uses something left out here.
  static Model load(const std::filesystem::path& path);
  static Model parse(const std::string& bytes, const std::string& where);

  int64_t opset() const { return opset_; }
  // The inputs a caller must feed (graph inputs that are not initializers), and the outputs.
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  const std::vector<ValueInfo>& outputs() const { return outputs_; }
  size_t node_count() const { return nodes_.size(); }
  // The distinct operator types of the graph's nodes, sorted.
  std::vector<std::string> op_types() const;

  // Executes the graph. `feeds` must name every input; their types and shapes are checked against
  // the declarations. Returns the graph outputs in declaration order. With `captured`, every
  // node output is appended to it in execution order; without it, intermediate values are freed
  // after their last use.
  std::vector<Value> run(const std::map<std::string, Value>& feeds,
                         std::vector<Captured>* captured = nullptr) const;

 private:
  std::string where_;
  int64_t opset_ = 0;
  std::vector<Node> nodes_;
  std::map<std::string, Value> initializers_;
  std::vector<ValueInfo> inputs_, outputs_;
  // For every node, the values whose last use it is (freed after it when not capturing).
  std::vector<std::vector<std::string>> last_uses_;
};

// The operator types the executor implements, sorted.
std::vector<std::string> supported_ops();

// Reads a file holding one serialised ONNX TensorProto (the node tests' input_N.pb and
// output_N.pb) into a Value; throws Error or Unsupported as Model::load does for initializers.
Value read_tensor_file(const std::filesystem::path& path);

}  // namespace deltann::reference
