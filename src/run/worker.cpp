#include "worker.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/compare_tensors.h"
#include "deltann/error.h"
#include "deltann/tensor.h"
#include "protocol.h"

namespace deltann {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int64_t elapsed_ns(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}

// Where replies go: a private copy of standard output once take_reply_channel() ran.
std::FILE* g_replies = stdout;

// Engines print on standard output too (OpenCV writes OpenCL build logs there with printf), which
// would put their text between the replies: the replies keep a private copy of standard output,
// and standard output itself becomes standard error, the engine's log.
void take_reply_channel() {
  std::cout.flush();
  std::fflush(stdout);
  const int fd = ::dup(STDOUT_FILENO);
  if (fd < 0) return;
  std::FILE* channel = ::fdopen(fd, "w");
  if (!channel) {
    ::close(fd);
    return;
  }
  if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    std::fclose(channel);
    return;
  }
  g_replies = channel;
}

void write_line(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), g_replies);
  std::fputc('\n', g_replies);
  std::fflush(g_replies);
}

void reply(const json& message) {
  // Engine messages may hold bytes that are not UTF-8; replace them rather than fail to reply.
  write_line(message.dump(-1, ' ', false, json::error_handler_t::replace));
}

class Server {
 public:
  explicit Server(std::unique_ptr<Backend> backend) : backend_(std::move(backend)) {}

  // Returns false when the campaign asked the worker to stop.
  bool handle(const json& request) {
    const std::string op = request.value("op", "");
    if (op == "quit") return false;
    if (op == "load") {
      load(request);
    } else if (op == "run") {
      run(request);
    } else if (op == "capture") {
      capture(request);
    } else {
      reply({{"event", "error"}, {"stage", "protocol"}, {"message", "unknown op '" + op + "'"}});
    }
    return true;
  }

 private:
  void load(const json& request) {
    // A failed load must not leave the previous model in place for the next run.
    session_.reset();
    LoadRequest load;
    load.artifact = request.at("artifact").get<std::string>();
    load.env = parse_environment(request.at("env").get<std::string>());
    const ModelSpec spec = parse_model_spec(request.at("spec"), ".");
    load.input = spec.input;
    load.output = spec.output;
    batch_ = batch_size(load.env);
    if (batch_ > 1 && (load.input.shape.empty() || load.input.shape.front() != 1))
      throw Error("batch=" + std::to_string(batch_) + " needs a spec input shape whose first " +
                  "dimension is a batch of 1, not " + shape_text(load.input.shape));
    backend_->check(load);
    const auto start = Clock::now();
    session_ = backend_->load(load);
    const int64_t load_ns = elapsed_ns(start);
    input_shape_ = load.input.shape;
    const BackendInfo info = backend_->describe();
    json loaded = {{"event", "loaded"}, {"load_ns", load_ns}, {"engine_version", info.version}};
    if (auto hardware = session_->hardware(); !hardware.empty()) loaded["hardware"] = hardware;
    reply(loaded);
  }

  // Timing follows docs/PROTOCOL.md ("Messages"): the first inference is timed on its own, then
  // `warmup` untimed runs, then `repeat` timed runs. Only Session::run() is inside the clock.
  // A request with `images` and `tensors` lists is a batch ("Batches"): its tensors stacked into
  // one input, run as one, and its output split into one per image.
  void run(const json& request) {
    if (!session_) throw Error("run requested before a successful load");
    if (request.contains("images")) return run_batch(request);
    const Tensor input = read_bound_tensor(request.at("tensor").get<std::string>());
    session_->set_input(input);
    json result = {{"event", "result"}, {"image", request.at("image")}};
    const Runs runs = run_timed(request, result);
    if (runs.count > 1)
      result["repeat_max_abs_diff"] = max_abs_difference(runs.first_output, runs.last_output);
    result["output"] = protocol::encode_floats(runs.last_output);
    reply(result);
  }

  void run_batch(const json& request) {
    const auto& keys = request.at("images");
    const auto& paths = request.at("tensors");
    if (!keys.is_array() || !paths.is_array() || keys.empty() || keys.size() != paths.size())
      throw Error("a batch needs 'images' and 'tensors' lists of the same, non-zero length");
    if (paths.size() > batch_)
      throw Error("a batch of " + std::to_string(paths.size()) +
                  " images is larger than the loaded batch size " + std::to_string(batch_));
    std::vector<Tensor> images;
    for (const auto& path : paths) images.push_back(read_bound_tensor(path.get<std::string>()));
    // An engine that runs only its full batch size gets a short batch padded with its last image.
    const size_t ran = session_->fixed_batch() ? batch_ : images.size();
    session_->set_input(stack_batch(images, ran));
    json result = {{"event", "result"}, {"images", keys}, {"batch", ran}};
    const Runs runs = run_timed(request, result);
    const auto last = split_batch(runs.last_output, ran);
    const auto first = runs.count > 1 ? split_batch(runs.first_output, ran) : last;
    json outputs = json::array();
    for (size_t i = 0; i < images.size(); ++i) {
      json one = {{"image", keys[i]}, {"output", protocol::encode_floats(last[i])}};
      if (runs.count > 1) one["repeat_max_abs_diff"] = max_abs_difference(first[i], last[i]);
      outputs.push_back(std::move(one));
    }
    result["results"] = std::move(outputs);
    reply(result);
  }

  // What the runs of one request left: the output of the first and of the last, and how many.
  struct Runs {
    std::vector<float> first_output, last_output;
    int count = 0;
  };

  // Runs the bound input as the request says, recording `first_ns` and `samples_ns` in `result`.
  // The output of the first run is kept (outside the clock) and compared with the last's, so an
  // engine that is not deterministic on one input shows up.
  Runs run_timed(const json& request, json& result) {
    Runs runs;
    const auto after_run = [&] {
      if (++runs.count == 1) runs.first_output = session_->output();
    };
    if (request.value("first", false)) {
      const auto start = Clock::now();
      session_->run();
      result["first_ns"] = elapsed_ns(start);
      after_run();
    }
    for (int i = 0, n = request.value("warmup", 0); i < n; ++i) {
      session_->run();
      after_run();
    }
    std::vector<int64_t> samples;
    for (int i = 0, n = request.value("repeat", 1); i < n; ++i) {
      const auto start = Clock::now();
      session_->run();
      samples.push_back(elapsed_ns(start));
      after_run();
    }
    if (runs.count == 0) {
      session_->run();
      after_run();
    }
    runs.last_output = session_->output();
    result["samples_ns"] = samples;
    return runs;
  }

  // Runs the bound tensor once through Session::capture() and writes every captured tensor as
  // float64 .npy plus an index (docs/PROTOCOL.md, docs/LOCALIZE.md). Untimed: capturing changes
  // what the engine runs, so its time says nothing about the variant.
  void capture(const json& request) {
    if (!session_) throw Error("capture requested before a successful load");
    const Tensor input = read_bound_tensor(request.at("tensor").get<std::string>());
    const std::filesystem::path dir = request.at("out_dir").get<std::string>();
    session_->set_input(input);
    const std::vector<CapturedTensor> tensors = session_->capture();
    std::filesystem::create_directories(dir);
    json entries = json::array();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const CapturedTensor& t = tensors[i];
      char file[32];
      std::snprintf(file, sizeof file, "%04zu.npy", i);
      write_npy_f64(dir / file, t.shape, t.values);
      entries.push_back(
          {{"index", i}, {"name", t.name}, {"op", t.op}, {"shape", t.shape}, {"file", file}});
    }
    const std::string mode = session_->capture_mode();
    // Tensor names come from the model file: bytes that are not UTF-8 become U+FFFD.
    write_text(dir / "index.json", json{{"mode", mode}, {"tensors", entries}}.dump(
                                       1, ' ', false, json::error_handler_t::replace) +
                                       "\n");
    reply({{"event", "captured"},
           {"count", tensors.size()},
           {"index", (dir / "index.json").string()},
           {"mode", mode}});
  }

  // The request's tensor, refused unless it has the spec's shape: the load checked that shape
  // against the model, and an engine that reshapes itself to any input (OpenCV DNN) would
  // otherwise run another one without a word.
  Tensor read_bound_tensor(const std::string& path) const {
    Tensor input = read_npy(path);
    if (input.shape != input_shape_)
      throw Error("input tensor " + path + " has shape " + shape_text(input.shape) +
                  " but the model was loaded for the spec's " + shape_text(input_shape_));
    return input;
  }

  static void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw Error("cannot write " + path.string());
  }

  // The comparator's max |a-b| (compare_tensors.h: NaN on both sides and equal infinities count
  // as equal, other non-finite pairs as an infinite difference), sent as at most 1e308 since JSON
  // has no infinity; a length change counts as infinite too.
  static double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    constexpr double kInfinite = 1e308;
    if (a.size() != b.size()) return kInfinite;
    return std::min(kInfinite, compare_tensors(a, b).max_abs);
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Session> session_;
  std::vector<int64_t> input_shape_;  // the spec's, of the loaded model
  size_t batch_ = 1;                  // the most images one batched run request may carry
};

}  // namespace

int worker_main(int argc, char** argv,
                const std::function<std::unique_ptr<Backend>()>& make_backend) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "--describe" && mode != "--serve") {
    std::cerr
        << "usage: " << argv[0] << " --describe | --serve\n"
        << "A deltann worker: runs one engine and speaks the worker protocol on stdin/stdout.\n";
    return 2;
  }
  // A worker must not outlive the campaign that started it (a killed deltann would otherwise leave
  // a hung engine behind): the kernel kills it when its parent dies.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  take_reply_channel();
  std::unique_ptr<Backend> backend;
  try {
    backend = make_backend();
    if (mode == "--describe") {
      write_line(to_json(backend->describe()).dump());
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "worker: " << e.what() << '\n';
    return 1;
  }
  reply({{"event", "ready"}, {"protocol", protocol::kVersion}});
  Server server(std::move(backend));
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    json request;
    try {
      request = json::parse(line);
    } catch (const json::exception& e) {
      reply({{"event", "error"},
             {"stage", "protocol"},
             {"message", std::string("malformed request: ") + e.what()}});
      continue;
    }
    // Valid JSON that is not a request (an array, a number, an object whose op is not a string)
    // is refused here: the handlers and the error reply below read "op" as a string.
    if (!request.is_object() || (request.contains("op") && !request["op"].is_string())) {
      reply({{"event", "error"},
             {"stage", "protocol"},
             {"message", "malformed request: not a JSON object with a string 'op'"}});
      continue;
    }
    try {
      if (!server.handle(request)) break;
    } catch (const std::exception& e) {
      reply({{"event", "error"}, {"stage", request.value("op", "")}, {"message", e.what()}});
    }
  }
  return 0;
}

}  // namespace deltann
