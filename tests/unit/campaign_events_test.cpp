// A campaign on the test engine tells its subscribers what happens, in order, as typed events.
#include "deltann/campaign_events.h"

#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/campaign.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// Notes each event (notes and progress aside) as one short line.
class Recorder final : public CampaignObserver {
 public:
  void on_plan(const PlanEvent& e) override {
    add("plan " + std::to_string(e.variants) + " variants, " + std::to_string(e.runnable) +
        " runnable, " + std::to_string(e.images) + " images");
  }
  void on_artifact(const ArtifactEvent& e) override { add("artifact " + e.variant); }
  void on_variant_start(const VariantStartEvent& e) override {
    add("start " + e.variant + " on " + std::to_string(e.images));
  }
  void on_images_ready(const ImagesReadyEvent& e) override {
    add("images " + std::to_string(e.usable) + " usable, " + std::to_string(e.unusable) +
        " unusable");
  }
  void on_worker_loaded(const WorkerLoadedEvent& e) override {
    // The process start holds the engine's load: a start shorter than the load was mismeasured.
    add("loaded " + e.variant + (e.start_ns >= e.load_ns && e.load_ns >= 0 ? "" : " (bad times)"));
  }
  void on_result(const ResultEvent& e) override { add("result " + e.variant + " " + e.image); }
  void on_campaign_end(const CampaignEndEvent& e) override {
    add("campaign end, " + std::to_string(e.results) + " results");
  }
  void on_failure(const FailureEvent& e) override {
    add("failure " + e.variant + " " + e.image.value_or("-") + " " +
        std::string(to_string(e.stage)) + " " + std::string(to_string(e.symptom)));
  }
  void on_variant_end(const VariantEndEvent& e) override {
    add("end " + e.variant + " " + e.status + (e.reason.empty() ? "" : ": " + e.reason));
  }
  void on_progress(int64_t done, int64_t total, double) override {
    last_progress = std::to_string(done) + "/" + std::to_string(total);
  }
  std::vector<std::string> events;
  std::string last_progress;

 private:
  void add(const std::string& line) { events.push_back(line); }
};

CampaignConfig testing_campaign(const TempDir& dir) {
  for (const char* name : {"a.png", "b.png", "c.png"}) {
    const cv::Mat image(8, 8, CV_8UC3, cv::Scalar(name[0], 40, 90));
    EXPECT_TRUE(cv::imwrite((dir / "images" / name).string(), image));
  }
  CampaignConfig config;
  config.model = test::write_file(dir / "model.onnx", "the test engine reads no model");
  config.images = dir / "images";
  config.db = dir / "campaign.db";
  config.cache_dir = dir / "cache";
  config.worker_dir = DELTANN_TEST_WORKERS_DIR;
  config.warmup = 0;
  config.repeat = 1;
  config.timeout_s = 30;
  return config;
}

TEST(CampaignEvents, CampaignOnTheTestEngineTellsEachStepInOrder) {
  TempDir dir;
  fs::create_directories(dir / "images");
  CampaignConfig config = testing_campaign(dir);
  const std::string ok = "testing:opt=none,device=cpu,threads=1,after=2,at=run,fault=none";
  const std::string faulty = "testing:opt=none,device=cpu,threads=1,after=2,at=run,fault=error";
  config.environments = {"testing", "testing:fault=error", "absent:opt=1"};
  Recorder recorder;
  const CampaignOutcome outcome = run_campaign(config, recorder);
  EXPECT_EQ(outcome.variants_run, 2);
  EXPECT_EQ(outcome.variants_skipped, 1);
  // Both workers are loaded, one after the other; then the timed images (all three here) run in
  // rounds, one image each, the variant that goes first rotating (docs/ANALYSIS.md,
  // "Interleaved timing").
  const std::vector<std::string> expected = {
      "plan 3 variants, 2 runnable, 3 images",
      "images 3 usable, 0 unusable",
      "end absent:opt=1 skipped: engine 'absent' is not built into this deltann (built: testing)",
      "start " + ok + " on 3",
      "loaded " + ok,
      "start " + faulty + " on 3",
      "loaded " + faulty,
      "result " + ok + " a.png",
      "result " + faulty + " a.png",
      "failure " + faulty + " b.png run error",
      "result " + ok + " b.png",
      "result " + ok + " c.png",
      "result " + faulty + " c.png",
      "end " + ok + " done",
      "end " + faulty + " done",
      "campaign end, 5 results"};
  EXPECT_EQ(recorder.events, expected);
  EXPECT_EQ(recorder.last_progress, "6/6");

  // Run again: nothing is left, and each variant says so, in the order of the plan.
  Recorder again;
  run_campaign(config, again);
  EXPECT_EQ(again.events,
            (std::vector<std::string>{"plan 3 variants, 2 runnable, 3 images", expected[1],
                                      "end " + ok + " complete", "end " + faulty + " complete",
                                      expected[2], "campaign end, 0 results"}));
}

TEST(CampaignEvents, MessageLinesSayWhatTheTerminalShows) {
  std::vector<std::string> lines;
  MessageLines say([&](const std::string& line) { lines.push_back(line); });
  say.on_artifact({"tvm:opt=3", "compile", "", false, 1'234'567'890});
  say.on_artifact({"tvm:opt=3", "compile", "", true, 1'234'567'890});
  say.on_artifact({"tflite@onnx>tflite", "onnx>tflite", "onnx2tf", false, 2'500'000});
  say.on_failure(
      {"ort", std::string("a.png"), FailureStage::run, FailureSymptom::crash, "SIGSEGV"});
  say.on_failure({"tvm", std::nullopt, FailureStage::compile, FailureSymptom::error, "no target"});
  say.on_variant_end({"ort", "failed", "3 failures in a row"});
  say.on_variant_end({"ort", "failed", ""});
  say.on_variant_end({"ort", "done", ""});
  say.on_result({"ort", "a.png"});
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "tvm:opt=3: compiled in 1234 ms",
                       "tvm:opt=3: artifact from the cache (1234 ms when built)",
                       "tflite@onnx>tflite: onnx>tflite by onnx2tf in 3 ms",
                       "ort: run failed (crash): SIGSEGV", "tvm: compile failed: no target",
                       "ort: abandoned, 3 failures in a row"}));
}

TEST(CampaignEvents, JsonEventLogWritesOneObjectPerLineAndFanoutReachesEverySubscriber) {
  std::ostringstream out;
  JsonEventLog log(out);
  Recorder recorder;
  CampaignEventFanout fanout;
  fanout.subscribe(log);
  fanout.subscribe(recorder);
  fanout.on_variant_start({"ort", 2});
  fanout.on_failure(
      {"ort", std::nullopt, FailureStage::load, FailureSymptom::crash, "bad \xff byte"});
  std::istringstream in(out.str());
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  auto start = nlohmann::json::parse(first);
  ASSERT_TRUE(start.contains("t"));
  start.erase("t");
  EXPECT_EQ(start, (nlohmann::json{{"event", "variant_start"}, {"variant", "ort"}, {"images", 2}}));
  const auto failure = nlohmann::json::parse(second);
  EXPECT_EQ(failure["event"], "failure");
  EXPECT_FALSE(failure.contains("image"));
  EXPECT_EQ(failure["message"], "bad \xef\xbf\xbd byte");
  EXPECT_EQ(recorder.events,
            (std::vector<std::string>{"start ort on 2", "failure ort - load crash"}));
}

// bench/campaign_overhead reads the phases of a campaign from these: every line carries "t" (wall
// clock, seconds since the Unix epoch), in the order the events happened.
TEST(CampaignEvents, JsonEventLogTimesEveryEventAndTellsThePhaseBoundaries) {
  std::ostringstream out;
  JsonEventLog log(out);
  const double before = static_cast<double>(std::time(nullptr));
  log.on_images_ready({9, 1});
  log.on_worker_loaded({"ort", 40'000'000, 25'000'000});
  log.on_phase({"timing", 1});
  log.on_result({"ort", "a.png", true, 1'500});
  log.on_campaign_end({1});
  std::istringstream in(out.str());
  std::vector<nlohmann::json> events;
  for (std::string line; std::getline(in, line);) events.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(events.size(), 5u);
  double previous = before - 1;
  for (auto& e : events) {
    ASSERT_TRUE(e["t"].is_number()) << e;
    EXPECT_GE(e["t"].get<double>(), previous);
    EXPECT_LT(e["t"].get<double>(), before + 60);
    previous = e["t"].get<double>();
    e.erase("t");
  }
  EXPECT_EQ(events[0], (nlohmann::json{{"event", "images_ready"}, {"usable", 9}, {"unusable", 1}}));
  EXPECT_EQ(events[1], (nlohmann::json{{"event", "worker_loaded"},
                                       {"variant", "ort"},
                                       {"start_ns", 40'000'000},
                                       {"load_ns", 25'000'000}}));
  EXPECT_EQ(events[2], (nlohmann::json{{"event", "phase"}, {"phase", "timing"}, {"jobs", 1}}));
  EXPECT_EQ(events[3], (nlohmann::json{{"event", "result"},
                                       {"variant", "ort"},
                                       {"image", "a.png"},
                                       {"timed", true},
                                       {"store_ns", 1'500}}));
  EXPECT_EQ(events[4], (nlohmann::json{{"event", "campaign_end"}, {"results", 1}}));
}

// Counts events and notices when two handlers overlap: a subscriber written for one thread.
class OverlapDetector : public CampaignObserver {
 public:
  void on_result(const ResultEvent&) override { enter(); }
  void on_progress(int64_t, int64_t, double) override { enter(); }

  int calls = 0;
  bool overlapped = false;

 private:
  void enter() {
    if (inside_.exchange(true)) overlapped = true;
    ++calls;                    // not atomic on purpose: lost updates show unserialised calls too
    std::this_thread::yield();  // widens the window in which another call would overlap
    inside_ = false;
  }
  std::atomic<bool> inside_{false};
};

// The job threads of a campaign tell one observer at once; it must see one event at a time.
TEST(CampaignEvents, SerializedObserverHandsOneEventAtATimeToItsSubscriber) {
  OverlapDetector detector;
  SerializedObserver serialized(detector);
  constexpr int kThreads = 4;
  constexpr int kEach = 5'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&serialized] {
      for (int i = 0; i < kEach; ++i) {
        serialized.on_result({"v", "i", false, 0});
        serialized.on_progress(i, kEach, 0);
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(detector.overlapped);
  EXPECT_EQ(detector.calls, kThreads * kEach * 2);
}

TEST(CampaignEvents, MessageLinesSayEachPhase) {
  std::vector<std::string> lines;
  MessageLines say([&](const std::string& line) { lines.push_back(line); });
  say.on_phase({"outputs", 2});
  say.on_phase({"timing", 1});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("2 variants at a time"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("one inference at a time"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("taking turns"), std::string::npos) << lines[1];
}

}  // namespace
}  // namespace deltann
