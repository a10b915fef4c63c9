// A campaign on the test engine tells its subscribers what happens, in order, as typed events.
#include "deltann/campaign_events.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
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
  void on_result(const ResultEvent& e) override { add("result " + e.variant + " " + e.image); }
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
  const std::vector<std::string> expected = {
      "plan 3 variants, 2 runnable, 3 images",
      "end absent:opt=1 skipped: engine 'absent' is not built into this deltann (built: testing)",
      "start " + ok + " on 3",
      "result " + ok + " a.png",
      "result " + ok + " b.png",
      "result " + ok + " c.png",
      "end " + ok + " done",
      "start " + faulty + " on 3",
      "result " + faulty + " a.png",
      "failure " + faulty + " b.png run error",
      "result " + faulty + " c.png",
      "end " + faulty + " done"};
  EXPECT_EQ(recorder.events, expected);
  EXPECT_EQ(recorder.last_progress, "6/6");

  // Run again: nothing is left, and each variant says so, in the order of the plan.
  Recorder again;
  run_campaign(config, again);
  EXPECT_EQ(again.events, (std::vector<std::string>{"plan 3 variants, 2 runnable, 3 images",
                                                    "end " + ok + " complete",
                                                    "end " + faulty + " complete", expected[1]}));
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
  EXPECT_EQ(nlohmann::json::parse(first),
            (nlohmann::json{{"event", "variant_start"}, {"variant", "ort"}, {"images", 2}}));
  const auto failure = nlohmann::json::parse(second);
  EXPECT_EQ(failure["event"], "failure");
  EXPECT_FALSE(failure.contains("image"));
  EXPECT_EQ(failure["message"], "bad \xef\xbf\xbd byte");
  EXPECT_EQ(recorder.events,
            (std::vector<std::string>{"start ort on 2", "failure ort - load crash"}));
}

}  // namespace
}  // namespace deltann
