// The engine registry (describes each worker once, checks the protocol version) and the planner
// that reads it (variants planned without any worker).
#include "run/engine_registry.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "deltann/error.h"
#include "run/planner.h"
#include "run/protocol.h"
#include "run/worker_process.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;
using test::TempDir;

// A worker that notes each start in `<dir>/starts`, describes itself, and announces protocol
// version `protocol` when serving.
fs::path write_fake_worker(const fs::path& dir, int protocol) {
  const fs::path worker = dir / "deltann-worker-fake";
  test::write_file(
      worker,
      "#!/bin/sh\n"
      "echo \"$1\" >> '" +
          (dir / "starts").string() +
          "'\n"
          "if [ \"$1\" = --describe ]; then\n"
          "  echo '{\"name\": \"fake\", \"version\": \"1\", \"devices\": [\"cpu\"], "
          "\"formats\": [\"any\"], \"knobs\": [{\"name\": \"opt\", \"values\": [\"a\", \"b\"], "
          "\"default\": \"a\"}, {\"name\": \"device\", \"values\": [\"cpu\"], \"default\": "
          "\"cpu\"}]}'\n"
          "  exit 0\n"
          "fi\n"
          "echo '{\"event\": \"ready\", \"protocol\": " +
          std::to_string(protocol) +
          "}'\n"
          "read request\n"
          "echo '{\"event\": \"loaded\", \"load_ns\": 1, \"engine_version\": \"1\"}'\n"
          "read request\n");
  ::chmod(worker.c_str(), 0755);
  return worker;
}

int starts(const fs::path& dir) {
  const std::string text = test::read_file(dir / "starts");
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(EngineRegistry, DescribesEachWorkerOnceHoweverOftenAsked) {
  TempDir dir;
  write_fake_worker(dir.path(), protocol::kVersion);
  EngineRegistry registry(dir.path());
  EXPECT_EQ(registry.frameworks(), std::vector<std::string>{"fake"});
  EXPECT_EQ(starts(dir.path()), 0) << "discovery describes nothing";
  const EngineEntry& first = registry.engine("fake");
  const EngineEntry& again = registry.engine("fake");
  EXPECT_EQ(registry.worker_description("fake").at("name"), "fake");
  EXPECT_EQ(&first, &again);
  ASSERT_TRUE(first.info) << first.unavailable;
  EXPECT_EQ(first.info->version, "1");
  EXPECT_EQ(first.worker, dir / "deltann-worker-fake");
  EXPECT_EQ(starts(dir.path()), 1);
}

TEST(EngineRegistry, SharedRegistryIsOnePerFolder) {
  TempDir dir;
  write_fake_worker(dir.path(), protocol::kVersion);
  EngineRegistry& a = EngineRegistry::shared(dir.path(), dir / "cache");
  EngineRegistry& b = EngineRegistry::shared(dir.path(), dir / "cache");
  EXPECT_EQ(&a, &b);
  a.engine("fake");
  b.engine("fake");
  EXPECT_EQ(starts(dir.path()), 1);
  EXPECT_TRUE(fs::is_directory(dir / "cache" / "describe")) << "the cache folder's describe cache";
}

TEST(EngineRegistry, DescribeCacheSparesTheNextProcessTheWorkerStart) {
  TempDir dir;
  write_fake_worker(dir.path(), protocol::kVersion);
  {
    EngineRegistry first(dir.path(), dir / "describe");
    ASSERT_TRUE(first.engine("fake").info);
  }
  EngineRegistry next(dir.path(), dir / "describe");  // as a later deltann would
  const EngineEntry& entry = next.engine("fake");
  ASSERT_TRUE(entry.info) << entry.unavailable;
  EXPECT_EQ(entry.info->version, "1");
  EXPECT_EQ(starts(dir.path()), 1);
}

TEST(EngineRegistry, ChangedWorkerOrVariableIsDescribedAgain) {
  TempDir dir;
  const fs::path worker = write_fake_worker(dir.path(), protocol::kVersion);
  EngineRegistry(dir.path(), dir / "describe").engine("fake");
  {
    const test::ScopedEnv gpus("CUDA_VISIBLE_DEVICES", "none-for-this-test");
    EngineRegistry(dir.path(), dir / "describe").engine("fake");
  }
  EXPECT_EQ(starts(dir.path()), 2);
  std::ofstream(worker, std::ios::app) << "# a rebuilt worker\n";
  EngineRegistry(dir.path(), dir / "describe").engine("fake");
  EXPECT_EQ(starts(dir.path()), 3);
}

TEST(EngineRegistry, WithoutDescribeCacheEachProcessDescribes) {
  TempDir dir;
  write_fake_worker(dir.path(), protocol::kVersion);
  EngineRegistry(dir.path()).engine("fake");
  EngineRegistry(dir.path()).engine("fake");
  EXPECT_EQ(starts(dir.path()), 2);
}

TEST(EngineRegistry, EngineNotBuiltSaysWhichAre) {
  TempDir dir;
  write_fake_worker(dir.path(), protocol::kVersion);
  EngineRegistry registry(dir.path());
  const EngineEntry& missing = registry.engine("tvm");
  EXPECT_FALSE(missing.info);
  EXPECT_EQ(missing.unavailable, "engine 'tvm' is not built into this deltann (built: fake)");
}

TEST(EngineRegistry, WorkerThatCannotDescribeItselfIsUnavailableOnce) {
  TempDir dir;
  const fs::path worker = test::write_file(
      dir / "deltann-worker-broken",
      "#!/bin/sh\necho x >> '" + (dir / "starts").string() + "'\necho 'no engine' >&2\nexit 4\n");
  ::chmod(worker.c_str(), 0755);
  EngineRegistry registry(dir.path());
  const EngineEntry& broken = registry.engine("broken");
  EXPECT_FALSE(broken.info);
  EXPECT_TRUE(Contains(broken.unavailable, "engine 'broken' cannot start: "));
  EXPECT_TRUE(Contains(broken.unavailable, "no engine"));
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { registry.worker_description("broken"); }), "exit code 4"));
  EXPECT_EQ(starts(dir.path()), 1);
}

TEST(EngineRegistry, ProtocolVersionMismatchNamesTheWorkerAndBothVersions) {
  TempDir dir;
  const fs::path worker = write_fake_worker(dir.path(), protocol::kVersion + 1);
  const std::string message = message_of<Error>([&] {
    LoadedWorker(worker, dir / "model.onnx", "fake:opt=a", nlohmann::json::object(), 10);
  });
  EXPECT_TRUE(Contains(message, worker.string()));
  EXPECT_TRUE(Contains(message, "protocol version " + std::to_string(protocol::kVersion + 1)));
  EXPECT_TRUE(
      Contains(message, "this deltann speaks version " + std::to_string(protocol::kVersion)));
}

TEST(EngineRegistry, MatchingProtocolVersionLoads) {
  TempDir dir;
  const fs::path worker = write_fake_worker(dir.path(), protocol::kVersion);
  LoadedWorker loaded(worker, dir / "model.onnx", "fake:opt=a", nlohmann::json::object(), 10);
  loaded.quit();
}

TEST(EngineRegistry, ReadyLineWithoutVersionIsRefused) {
  EXPECT_NO_THROW(protocol::check_version({{"event", "ready"}, {"protocol", protocol::kVersion}},
                                          "/w/deltann-worker-x"));
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         protocol::check_version({{"event", "ready"}}, "/w/deltann-worker-x");
                       }),
                       "/w/deltann-worker-x speaks worker protocol version none"));
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         protocol::check_version({{"event", "ready"}, {"protocol", "1"}}, "/w/x");
                       }),
                       "version \"1\""));
}

// An engine registered by hand: knobs opt (a|b), a set knob `disable` whose per-level table says
// which members each opt level runs, and the formats it loads.
EngineEntry hand_made_engine(std::vector<std::string> formats = {"onnx"}) {
  BackendInfo info;
  info.name = "hand";
  info.version = "2.0";
  info.devices = {"cpu"};
  info.formats = std::move(formats);
  info.knobs = {{"opt", {"a", "b"}, "b", ""},
                {"device", {"cpu", "gpu"}, "cpu", ""},
                {"disable", {"p", "q", "r"}, "none", "", true, {}, true}};
  info.each["disable"] = {"opt", {{"a", {"p"}}, {"b", {"p", "q"}}}};
  return {"hand", "/nowhere/deltann-worker-hand", info, nullptr, ""};
}

std::vector<PlannedVariant> plan_of(EngineRegistry& registry, std::vector<std::string> envs,
                                    const std::string& model = "model.onnx") {
  CampaignConfig config;
  config.model = model;
  config.environments = std::move(envs);
  return plan(config, ModelSpec{}, registry);
}

std::vector<std::string> texts(const std::vector<PlannedVariant>& planned) {
  std::vector<std::string> out;
  for (const auto& v : planned) out.push_back(v.text + (v.skip_reason.empty() ? "" : " (skip)"));
  return out;
}

TEST(Planner, EachTakesTheMembersOfTheLevelInTurn) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  registry.add(hand_made_engine());
  EXPECT_EQ(texts(plan_of(registry, {"hand:disable=each"})),
            (std::vector<std::string>{"hand:opt=b,device=cpu,disable=p",
                                      "hand:opt=b,device=cpu,disable=q"}));
  EXPECT_EQ(texts(plan_of(registry, {"hand:opt=a,disable=each"})),
            (std::vector<std::string>{"hand:opt=a,device=cpu,disable=p"}));
}

TEST(Planner, DuplicatesAreOneVariantInFirstOrder) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  registry.add(hand_made_engine());
  EXPECT_EQ(texts(plan_of(registry, {"hand:opt=a", "hand", "hand:opt=b,device=cpu", "hand:opt=a"})),
            (std::vector<std::string>{"hand:opt=a,device=cpu", "hand:opt=b,device=cpu"}));
}

TEST(Planner, WhatCannotRunHereIsSkippedWithTheReason) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  registry.add(hand_made_engine());
  const auto planned =
      plan_of(registry, {"hand@1.0", "hand:device=gpu", "missing:opt=x", "hand"}, "model.onnx");
  ASSERT_EQ(planned.size(), 4u);
  EXPECT_EQ(planned[0].skip_reason, "version 1.0 of hand is not installed (have 2.0)");
  EXPECT_TRUE(Contains(planned[1].skip_reason, "device=gpu cannot run on this machine"));
  EXPECT_TRUE(Contains(planned[2].skip_reason, "engine 'missing' is not built into this deltann"));
  EXPECT_EQ(planned[3].skip_reason, "");
  EXPECT_EQ(planned[3].worker, "/nowhere/deltann-worker-hand");
}

TEST(Planner, FormatTheEngineDoesNotLoadNamesAChain) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  registry.add(hand_made_engine({"tflite"}));
  const auto planned = plan_of(registry, {"hand"}, "model.onnx");
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].skip_reason,
            "hand loads tflite, not onnx; name a conversion chain, e.g. hand@onnx>tflite");
}

TEST(Planner, InvalidKnobStopsThePlan) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  registry.add(hand_made_engine());
  EXPECT_TRUE(Contains(message_of<Error>([&] { plan_of(registry, {"hand:opt=c"}); }),
                       "knob 'opt' of hand cannot be 'c'; valid values: a, b"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { plan_of(registry, {"hand:speed=1"}); }),
                       "hand has no knob 'speed'"));
}

TEST(Planner, BatchIsRefusedByAnEngineWithoutTheKnob) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  registry.add(hand_made_engine());
  EXPECT_TRUE(Contains(message_of<Error>([&] { plan_of(registry, {"hand:batch=2"}); }),
                       "environment 'hand:batch=2': hand has no knob 'batch'"));
}

TEST(Planner, BatchIsPartOfTheVariantNameExceptAtOne) {
  TempDir dir;
  EngineRegistry registry(dir.path());
  EngineEntry engine = hand_made_engine();
  engine.info->knobs.push_back(batch_knob());
  registry.add(engine);
  const auto planned = plan_of(registry, {"hand:batch=8", "hand:batch=1", "hand"});
  EXPECT_EQ(texts(planned),
            (std::vector<std::string>{"hand:opt=b,device=cpu,batch=8", "hand:opt=b,device=cpu"}));
  EXPECT_EQ(batch_size(planned[0].env), 8u);
  EXPECT_EQ(batch_size(planned[1].env), 1u);
  EXPECT_TRUE(Contains(message_of<Error>([&] { plan_of(registry, {"hand:batch=0"}); }),
                       "knob 'batch' must be a positive integer, not '0'"));
}

TEST(Planner, ResumeFollowsTheStoredStatus) {
  PlannedVariant runnable;
  PlannedVariant unsupported;
  unsupported.skip_reason = "no GPU";
  EXPECT_EQ(decide_resume(unsupported, VariantStatus::pending, false).action, VariantAction::kSkip);
  EXPECT_EQ(decide_resume(runnable, VariantStatus::failed, false).action,
            VariantAction::kSkipFailed);
  const ResumeDecision retry = decide_resume(runnable, VariantStatus::failed, true);
  EXPECT_EQ(retry.action, VariantAction::kRunRemaining);
  EXPECT_TRUE(retry.clear_failures);
  EXPECT_FALSE(retry.failed_images_done);
  const ResumeDecision resume = decide_resume(runnable, VariantStatus::running, false);
  EXPECT_EQ(resume.action, VariantAction::kRunRemaining);
  EXPECT_FALSE(resume.clear_failures);
  EXPECT_TRUE(resume.failed_images_done);
  EXPECT_TRUE(decide_resume(runnable, VariantStatus::skipped, false).clear_failures)
      << "a plan that no longer applies leaves obsolete failures";
}

}  // namespace
}  // namespace deltann
