#include "reproduce.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/onnx_model.h"
#include "deltann/error.h"
#include "deltann/json_number.h"
#include "deltann/tensor.h"
#include "deltann/text.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void save_onnx(const onnx::ModelProto& model, const fs::path& path) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw Error("cannot serialise " + path.string());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.flush();
  if (!out) throw Error("cannot write " + path.string());
}

void save_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw Error("cannot write " + path.string());
}

// A Constant node (no inputs) holds a value the same way an initialiser does: a window takes it
// along rather than asking for its output as an input.
bool constant_node(const OnnxGraphIndex& graph, size_t i) {
  return graph.node(i).op_type() == "Constant" && graph.node(i).input_size() == 0;
}

// Adds the Constant nodes the window reads.
void close_constants(const OnnxGraphIndex& graph, std::set<size_t>& window) {
  std::vector<size_t> added;
  for (const size_t i : window)
    for (const auto& in : graph.node(i).input())
      if (const auto p = graph.producer(in); p && !window.count(*p) && constant_node(graph, *p))
        added.push_back(*p);
  window.insert(added.begin(), added.end());
}

// The non-constant tensors the window reads from outside itself, in first-read order.
std::vector<std::string> external_inputs(const OnnxGraphIndex& graph,
                                         const std::set<size_t>& window) {
  std::vector<std::string> out;
  for (const size_t i : window)
    for (const auto& in : graph.node(i).input()) {
      if (in.empty() || graph.initializer(in)) continue;  // "" is an omitted optional input
      if (const auto p = graph.producer(in); p && window.count(*p)) continue;
      if (std::find(out.begin(), out.end(), in) == out.end()) out.push_back(in);
    }
  return out;
}

onnx::ValueInfoProto float_value(const std::string& name, const std::vector<int64_t>& shape) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = t->mutable_shape();
  for (const int64_t d : shape) s->add_dim()->set_dim_value(d);
  return v;
}

// The model with only the nodes named by `keys` (kept in the source's order, so the result stays
// topologically sorted), the initialisers they read, `input` as its one graph input and `output`
// as its one graph output. Opsets, IR version and model-local functions are carried over, since
// the kept nodes may need them.
onnx::ModelProto cut(const onnx::ModelProto& source, const fs::path& source_path,
                     const std::set<std::string>& keys, const std::string& input,
                     const std::vector<int64_t>& input_shape, const std::string& output,
                     const std::vector<int64_t>& output_shape) {
  const onnx::GraphProto& g = source.graph();
  onnx::ModelProto out;
  out.set_ir_version(source.ir_version());
  *out.mutable_opset_import() = source.opset_import();
  *out.mutable_functions() = source.functions();
  out.set_producer_name("deltann localize --reproduce");
  onnx::GraphProto* cut = out.mutable_graph();
  cut->set_name(g.name() + "_repro");
  std::set<std::string> found, read;
  for (const auto& n : g.node()) {
    if (!keys.count(node_key(n))) continue;
    found.insert(node_key(n));
    *cut->add_node() = n;
    read.insert(n.input().begin(), n.input().end());
  }
  for (const auto& key : keys)
    if (!found.count(key))
      throw Error(source_path.string() + " has no node '" + key +
                  "' (nodes are matched by name, or by their first output when unnamed)");
  *cut->add_input() = float_value(input, input_shape);
  for (const auto& init : g.initializer()) {
    if (!read.count(init.name())) continue;
    *cut->add_initializer() = init;
    // Before IR version 4 every initialiser also had to be a graph input.
    if (source.ir_version() < 4) {
      for (const auto& in : g.input())
        if (in.name() == init.name()) *cut->add_input() = in;
    }
  }
  *cut->add_output() = float_value(output, output_shape);
  return out;
}

std::string shape_json(const std::vector<int64_t>& shape) { return json(shape).dump(); }

}  // namespace

namespace {

// What every candidate of one reproduction shares: the request, both models, A's graph and where
// each feedable tensor's values come from (A's capture, or the model's own input).
struct ReproSource {
  const ReproduceRequest& request;
  onnx::ModelProto model_a, model_b;
  bool two = false;  // B runs its own model (--b-model)
  OnnxGraphIndex graph;
  std::map<std::string, const LayerTensor*> captured;
  std::string model_input;
  std::vector<int64_t> output_shape;

  explicit ReproSource(const ReproduceRequest& r)
      : request(r),
        model_a(load_onnx_model(r.model_a)),
        model_b(r.model_b.empty() ? onnx::ModelProto() : load_onnx_model(r.model_b)),
        two(!r.model_b.empty()),
        graph(model_a.graph()) {
    for (const auto& t : r.capture_a->tensors) captured.emplace(t.name, &t);
    model_input = r.input_name;
    if (model_input.empty())
      for (const auto& in : model_a.graph().input())
        if (!graph.initializer(in.name())) {
          model_input = in.name();
          break;
        }
  }
  // The graph index points into model_a.
  ReproSource(const ReproSource&) = delete;
  ReproSource& operator=(const ReproSource&) = delete;
};

// Writes the candidate `window`, fed `input`, where the reproducer goes (repro.onnx, repro_b.onnx,
// input.npy unless `input` is `last_input`, repro.spec.json): when it reproduces, it is the result.
void write_candidate(const ReproSource& src, const std::set<size_t>& window,
                     const std::string& input, const std::string& last_input, Reproduction& r) {
  std::set<std::string> keys;
  r.nodes.clear();
  for (const size_t i : window) {
    const onnx::NodeProto& node = src.graph.node(i);
    keys.insert(node_key(node));
    r.nodes.push_back({node_key(node), node.op_type(), node.output_size() ? node.output(0) : ""});
  }
  Tensor fed;
  if (input == src.model_input) {
    fed = read_npy(src.request.input_tensor);
  } else {
    const LayerTensor& t = *src.captured.at(input);
    fed.shape = t.shape;
    fed.data.assign(t.values.begin(), t.values.end());  // A's float32 values, widened exactly
  }
  r.input = input;
  r.input_shape = fed.shape;
  save_onnx(
      cut(src.model_a, src.request.model_a, keys, r.input, fed.shape, r.output, src.output_shape),
      r.dir / "repro.onnx");
  if (src.two)
    save_onnx(
        cut(src.model_b, src.request.model_b, keys, r.input, fed.shape, r.output, src.output_shape),
        r.dir / "repro_b.onnx");
  else
    fs::remove(r.dir / "repro_b.onnx");
  if (r.input != last_input) write_npy(r.dir / "input.npy", fed);
  int64_t classes = 1;
  for (const int64_t d : src.output_shape) classes *= d;
  if (classes > INT_MAX) throw Error("the subgraph's output '" + r.output + "' is too large");
  const json spec = {
      {"name", "repro"},
      {"input", {{"name", r.input}, {"kind", "tensor"}, {"shape", fed.shape}}},
      {"output",
       {{"name", r.output}, {"classes", classes}, {"label_offset", 0}, {"kind", "logits"}}}};
  save_text(r.dir / "repro.spec.json", spec.dump(2) + "\n");
}

// Grows the window backwards from the jump node until a candidate reproduces (r.reproduced) or
// the window cannot grow; every feedable candidate is written and run.
void search_windows(const ReproSource& src, size_t jump_node, const ReproRunner& run,
                    const std::function<void(const std::string&)>& say, Reproduction& r) {
  std::set<size_t> window{jump_node};
  close_constants(src.graph, window);
  std::string last_input;
  for (;;) {
    ++r.windows;
    const std::vector<std::string> inputs = external_inputs(src.graph, window);
    const bool from_model = inputs.size() == 1 && inputs[0] == src.model_input;
    const bool feedable = inputs.size() == 1 && (from_model || src.captured.count(inputs[0]));
    if (feedable) {
      write_candidate(src, window, inputs[0], last_input, r);
      last_input = r.input;
      ++r.trials;
      say("reproduce: trying " + std::to_string(window.size()) + " node(s) fed '" + r.input + "' " +
          shape_json(r.input_shape));
      r.trial = run(r.dir / "repro.onnx", src.two ? r.dir / "repro_b.onnx" : fs::path(),
                    r.dir / "input.npy", r.output);
      if (r.trial.found && r.trial.above) {
        r.reproduced = true;
        return;
      }
      r.note = r.trial.found ? "the subgraph's output agrees between A and B"
                             : "the subgraph's output was not captured on both sides";
    }
    // Grow backwards in topological order: the latest node that produces one of the inputs.
    std::optional<size_t> latest;
    for (const auto& in : inputs)
      if (const auto p = src.graph.producer(in); p && (!latest || *p > *latest)) latest = *p;
    if (!latest) {
      if (!feedable)
        r.note = inputs.empty() ? "the jump tensor depends on no input"
                                : "the whole graph reads " + std::to_string(inputs.size()) +
                                      " non-constant inputs; one is supported";
      return;
    }
    window.insert(*latest);
    close_constants(src.graph, window);
  }
}

// The one-line command, with the options that decide "above" when they are not the defaults,
// written to reproduce.sh, and README.txt. The reproducer's own files are named by absolute path
// in the printed command and relative to the script's folder in reproduce.sh, so that the folder
// still works when copied elsewhere.
void write_command(const ReproduceRequest& request, bool two, Reproduction& r) {
  struct Word {
    std::string text;
    bool own_file = false;  // a file of the reproducer folder: text is its name there
  };
  std::vector<Word> words = {{"localize"},        {"--model"}, {"repro.onnx", true}, {"--tensor"},
                             {"input.npy", true}, {"--a"},     {request.env_a},      {"--b"},
                             {request.env_b}};
  if (two) {
    words.push_back({"--b-model"});
    words.push_back({"repro_b.onnx", true});
  }
  const LocalizeOptions defaults;
  const auto number = [](double v) {
    std::ostringstream s;
    s.precision(17);
    s << v;
    return s.str();
  };
  if (request.options.threshold != defaults.threshold) {
    words.push_back({"--threshold"});
    words.push_back({number(request.options.threshold)});
  }
  if (request.options.atol != defaults.atol) {
    words.push_back({"--atol"});
    words.push_back({number(request.options.atol)});
  }
  std::string script_args;
  r.command = "deltann";
  for (const auto& w : words) {
    r.command += " " + shell_quote(w.own_file ? (r.dir / w.text).string() : w.text);
    script_args += " " + (w.own_file ? "\"$here/" + w.text + "\"" : shell_quote(w.text));
  }
  save_text(
      r.dir / "reproduce.sh",
      "#!/bin/sh\n"
      "# Minimal reproducer written by `deltann localize --reproduce`. It reads its files from\n"
      "# its own folder, so the folder may be moved or copied. $DELTANN names the deltann\n"
      "# program when it is not on PATH; extra arguments (--json) are passed on. Exit status\n"
      "# as `deltann localize`: 3 while A and B still diverge, 0 once they agree.\n"
      "here=$(CDPATH= cd -- \"$(dirname -- \"$0\")\" && pwd) || exit 1\n"
      "exec \"${DELTANN:-deltann}\"" +
          script_args + " \"$@\"\n");
  fs::permissions(r.dir / "reproduce.sh",
                  fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
  std::ostringstream readme;
  readme << r.command << "\n\n"
         << (r.reproduced ? "Reproduces" : "Does NOT reproduce") << " the divergence of '"
         << r.output << "' between A (" << request.env_a << ") and B (" << request.env_b << ")"
         << (two ? " running the edited copy repro_b.onnx" : "") << ".\n"
         << r.nodes.size() << " node(s) of " << fs::absolute(request.model_a).string() << ":";
  for (const auto& n : r.nodes) readme << " " << n.name << " (" << n.op << ")";
  readme << "\ninput.npy: '" << r.input << "' " << shape_json(r.input_shape)
         << ", A's captured values (float32)\n"
         << "relative L2 error at '" << r.output << "': " << r.trial.diff.rel_l2
         << " in the subgraph, " << r.full.rel_l2 << " in the full model\n";
  save_text(r.dir / "README.txt", readme.str());
}

}  // namespace

Reproduction reproduce(const ReproduceRequest& request, const ReproRunner& run,
                       const std::function<void(const std::string&)>& say) {
  if (!request.capture_a) throw Error("reproduce: no capture of A");
  ReproSource src(request);
  Reproduction r;
  r.output = request.jump;
  r.full = request.full;
  r.dir = fs::absolute(request.dir);
  const auto jump_node = src.graph.producer(request.jump);
  if (!jump_node)
    throw Error("no node of " + request.model_a.string() + " produces '" + request.jump + "'");
  const auto out_tensor = src.captured.find(request.jump);
  if (out_tensor == src.captured.end())
    throw Error("A's capture has no tensor '" + request.jump + "'");
  src.output_shape = out_tensor->second->shape;
  fs::create_directories(r.dir);

  search_windows(src, *jump_node, run, say, r);
  if (r.trials == 0) {
    // Nothing was written: there is no candidate to hand over.
    r.command.clear();
    return r;
  }
  if (r.reproduced) r.note.clear();
  write_command(request, src.two, r);
  return r;
}

json to_json(const Reproduction& r) {
  const auto finite = [](double v) { return json_number(v); };
  json nodes = json::array();
  for (const auto& n : r.nodes)
    nodes.push_back({{"name", n.name}, {"op", n.op}, {"output", n.output}});
  json j = {{"reproduced", r.reproduced},
            {"dir", r.dir.string()},
            {"nodes", nodes},
            {"node_count", r.nodes.size()},
            {"input", r.input},
            {"input_shape", r.input_shape},
            {"output", r.output},
            {"windows", r.windows},
            {"trials", r.trials},
            {"rel_l2", r.trial.found ? finite(r.trial.diff.rel_l2) : json(nullptr)},
            {"max_abs", r.trial.found ? finite(r.trial.diff.max_abs) : json(nullptr)},
            {"full_rel_l2", finite(r.full.rel_l2)},
            {"full_max_abs", finite(r.full.max_abs)},
            {"command", r.command},
            {"note", r.note}};
  if (r.trial.found && r.full.rel_l2 > 0 && std::isfinite(r.full.rel_l2))
    j["ratio"] = finite(r.trial.diff.rel_l2 / r.full.rel_l2);
  return j;
}

std::string reproduction_text(const Reproduction& r) {
  std::ostringstream s;
  s.precision(3);
  if (r.trials == 0) {
    s << "reproducer: none: " << r.note << "\n";
    return s.str();
  }
  s << "reproducer (" << r.dir.string() << "): " << r.nodes.size() << " node(s):";
  for (const auto& n : r.nodes) s << " " << n.name << " (" << n.op << ")";
  s << "\n  fed '" << r.input << "' " << shape_json(r.input_shape) << " from A's capture; output '"
    << r.output << "'\n  rel L2 at the output: " << std::scientific << r.trial.diff.rel_l2
    << " in the subgraph vs " << r.full.rel_l2 << " in the full model ("
    << (r.reproduced ? "reproduced" : "NOT reproduced: " + r.note) << ", " << std::defaultfloat
    << r.trials << " candidate(s) run)\n  " << r.command << "\n";
  return s.str();
}

}  // namespace deltann
