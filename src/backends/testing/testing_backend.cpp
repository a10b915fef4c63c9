// A backend for tests only: it computes a simple deterministic function of its input and crashes,
// aborts, hangs, exits or throws on demand, so the campaign's failure handling can be checked.
//   testing:fault=segv|abort|hang|exit|error|none,at=load|first|run,after=N[,batch=B]
// `at=run` faults on the N-th input bound (1-based, default 2: an image, or with batch=B a batch
// of up to B images); `at=first` on the first inference.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <numeric>

#include "deltann/backend.h"
#include "deltann/error.h"
#include "run/worker.h"

namespace deltann::testing {
namespace {

void fault(const std::string& kind) {
  if (kind == "segv") std::raise(SIGSEGV);
  if (kind == "abort") std::abort();
  if (kind == "exit") std::_Exit(3);
  if (kind == "hang")
    for (;;) ::pause();
  if (kind == "error") throw Error("injected engine error");
}

class TestingSession final : public Session {
 public:
  explicit TestingSession(const LoadRequest& request)
      : env_(request.env), classes_(request.output.classes + request.output.label_offset) {}

  // Each image of the input (a batch of one or more along the first axis) gets its own mean.
  void set_input(const Tensor& input) override {
    ++images_;
    const size_t count = input.shape.empty() ? 1 : static_cast<size_t>(input.shape.front());
    const size_t each = count ? input.data.size() / count : 0;
    means_.clear();
    for (size_t i = 0; i < count; ++i) {
      const auto begin = input.data.begin() + static_cast<std::ptrdiff_t>(i * each);
      means_.push_back(
          each ? std::accumulate(begin, begin + static_cast<std::ptrdiff_t>(each), 0.0) /
                     static_cast<double>(each)
               : 0.0);
    }
    first_ = images_ == 1;
  }

  void run() override {
    const std::string at = env_.knob("at");
    if ((at == "first" && first_) || (at == "run" && images_ == std::stoi(env_.knob("after"))))
      fault(env_.knob("fault"));
  }

  std::vector<float> output() override {
    std::vector<float> out;
    for (const double mean : means_)
      for (int k = 0; k < classes_; ++k)
        out.push_back(static_cast<float>(std::sin(mean + static_cast<double>(k))));
    return out;
  }

 private:
  Environment env_;
  int classes_;
  int images_ = 0;
  bool first_ = false;
  std::vector<double> means_;  // of each image of the bound input
};

class TestingBackend final : public Backend {
 public:
  BackendInfo describe() const override {
    BackendInfo info;
    info.name = "testing";
    info.version = "1";
    info.description = "test-only engine that fails on demand";
    info.devices = {"cpu"};
    info.formats = {"any"};
    info.knobs = {
        {"opt", {"none"}, "none", "no optimisation"},
        {"device", {"cpu"}, "cpu", ""},
        {"threads", {}, "1", "ignored"},
        {"fault", {"none", "segv", "abort", "hang", "exit", "error"}, "none", "what goes wrong"},
        {"at", {"load", "first", "run"}, "run", "when it goes wrong"},
        {"after", {}, "2", "image (or batch) number for at=run"},
        batch_knob()};
    return info;
  }

  std::unique_ptr<Session> load(const LoadRequest& request) override {
    if (request.env.knob("at") == "load") fault(request.env.knob("fault"));
    return std::make_unique<TestingSession>(request);
  }
};

}  // namespace
}  // namespace deltann::testing

int main(int argc, char** argv) {
  return deltann::worker_main(argc, argv,
                              [] { return std::make_unique<deltann::testing::TestingBackend>(); });
}
