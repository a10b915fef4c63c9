// Hardware groups from a campaign file in a plan (run/plan_folder.h), the Slurm batch scripts made
// from them (run/slurm_submit.h) and the program runner sbatch goes through (run/run_program.h).
#include "run/slurm_submit.h"

#include <gtest/gtest.h>

#include "deltann/error.h"
#include "run/plan_folder.h"
#include "run/run_program.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

PlanImage image(const std::string& key) {
  return {key, "/data/" + key, "sha-" + key, std::nullopt, "", 0};
}

CampaignFile placement() {
  return parse_campaign_file(R"(model = "m.onnx"
images = "i"
db = "c.db"
environments = ["ort:threads=1", "tvm:opt=3,device=cuda"]
shard_images = 3

[[hardware_group]]
name = "gpu"
match = { devices = ["cuda"] }
gres = "gpu:1"
exclusive = true
shard_images = 1
)",
                             "/c/campaign.toml");
}

TEST(SlurmPlan, TheFirstMatchingFileGroupElseTheDevice) {
  const CampaignFile file = placement();
  EXPECT_EQ(hardware_group(parse_environment("tvm:opt=3,device=cuda"), &file), "gpu");
  EXPECT_EQ(hardware_group(parse_environment("ort:threads=1"), &file), "cpu");
  EXPECT_EQ(hardware_group(parse_environment("tvm:opt=3,device=cuda"), nullptr), "cuda");
}

TEST(SlurmPlan, EachGroupCutsItsBlocksAtItsOwnSize) {
  const std::vector<PlanVariant> variants = {{"ort:threads=1", "ort", "", "cpu", "cpu"},
                                             {"tvm:device=cuda", "tvm", "", "cuda", "gpu"}};
  const std::vector<PlanImage> images = {image("a"), image("b"), image("c")};
  const std::vector<PlanGroup> groups = {{"cpu", "", "", "", false, 3},
                                         {"gpu", "", "gpu:1", "", true, 1}};
  const auto shards = assign_shards(variants, images, {"b"}, groups);
  ASSERT_EQ(shards.size(), 4u);  // cpu: one block of 3; gpu: three blocks of 1
  EXPECT_EQ(shards[0].group, "cpu");
  EXPECT_EQ(shards[0].image_keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(shards[3].group, "gpu");
  EXPECT_EQ(shards[3].image_keys, (std::vector<std::string>{"c"}));
  EXPECT_EQ(shards[2].timed_keys, (std::vector<std::string>{"b"}));
  EXPECT_TRUE(Contains(message_of<Error>([&] { assign_shards(variants, images, {}, {groups[0]}); }),
                       "'gpu' has no shard size"));
}

CampaignPlan two_group_plan() {
  CampaignPlan plan;
  plan.campaign = {{"shard_images", 2}};
  plan.variants = {{"ort:threads=1", "ort", "", "cpu", "cpu"},
                   {"tvm:device=cuda", "tvm", "", "cuda", "gpu"}};
  plan.images = {image("a"), image("b"), image("c")};
  plan.groups = {{"cpu", "avx2", "", "", false, 2}, {"gpu", "", "gpu:1", "board:1", true, 1}};
  plan.shards = assign_shards(plan.variants, plan.images, {}, plan.groups);
  plan.hash = std::string(64, 'f');
  return plan;
}

TEST(SlurmPlan, GroupsAreAPlanFileAndReadBack) {
  CampaignPlan plan = two_group_plan();
  const auto files = plan_files(plan);
  ASSERT_TRUE(files.count("groups.json"));
  CampaignPlan other = two_group_plan();
  other.groups[1].gres = "gpu:2";
  EXPECT_NE(plan_hash(plan_files(other)), plan_hash(files));
  // The plan's shards, as ranges per group.
  EXPECT_EQ(index_ranges(shards_of_group(plan, "cpu")), "0-1");
  EXPECT_EQ(index_ranges(shards_of_group(plan, "gpu")), "2-4");
}

SlurmOptions options() {
  SlurmOptions o;
  o.deltann = "/opt/deltann/bin/deltann";
  o.partition = "batch";
  o.sbatch_args = {"--account=proj"};
  return o;
}

TEST(SlurmSubmit, OneArrayPerGroupWithItsPlacementAndAMergeAfterThem) {
  const CampaignPlan plan = two_group_plan();
  const SlurmSubmission jobs = slurm_jobs("/shared/plan", plan, {1, 2, 3, 4}, options());
  ASSERT_EQ(jobs.arrays.size(), 2u);
  const SlurmJob& cpu = jobs.arrays[0];
  EXPECT_EQ(cpu.script, fs::path("/shared/plan/slurm/array-cpu.sh"));
  EXPECT_EQ(cpu.shards, (std::vector<int>{1}));  // shard 0 is done
  for (const char* line :
       {"#SBATCH --array=1\n", "#SBATCH --constraint=avx2\n", "#SBATCH --partition=batch\n",
        "#SBATCH --account=proj\n", "#SBATCH --output=/shared/plan/slurm/logs/%A_%a.out\n",
        "exec '/opt/deltann/bin/deltann' run --plan '/shared/plan'\n"})
    EXPECT_TRUE(Contains(cpu.text, line)) << line << " in\n" << cpu.text;
  EXPECT_FALSE(Contains(cpu.text, "--exclusive"));
  const SlurmJob& gpu = jobs.arrays[1];
  for (const char* line : {"#SBATCH --array=2-4\n", "#SBATCH --gres=gpu:1\n",
                           "#SBATCH --licenses=board:1\n", "#SBATCH --exclusive\n"})
    EXPECT_TRUE(Contains(gpu.text, line)) << line;
  EXPECT_TRUE(Contains(jobs.merge.text, "merge '/shared/plan' -o '/shared/plan/campaign.db'"));
  EXPECT_FALSE(Contains(jobs.merge.text, "--gres"));
  EXPECT_EQ(sbatch_command(jobs.merge, {"11", "12"}),
            (std::vector<std::string>{"sbatch", "--parsable", "--dependency=afterok:11:12",
                                      "/shared/plan/slurm/merge.sh"}));
  EXPECT_EQ(sbatch_command(gpu, {}),
            (std::vector<std::string>{"sbatch", "--parsable", "/shared/plan/slurm/array-gpu.sh"}));
}

TEST(SlurmSubmit, WhatCannotGoIntoAnSbatchLineIsRefused) {
  CampaignPlan plan = two_group_plan();
  plan.groups[1].constraint = "a100\n#SBATCH --wrap=x";
  EXPECT_TRUE(Contains(message_of<Error>([&] { slurm_jobs("/p", plan, {0}, options()); }),
                       "hardware group 'gpu': constraint"));
  plan = two_group_plan();
  SlurmOptions o = options();
  o.time = "1 day";
  EXPECT_TRUE(Contains(message_of<Error>([&] { slurm_jobs("/p", plan, {0}, o); }), "--time"));
  o = options();
  o.sbatch_args = {"--array=0-9"};
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { slurm_jobs("/p", plan, {0}, o); }), "sets --array itself"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { slurm_jobs("/my plan", plan, {0}, options()); }),
                       "cannot go into a batch script"));
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { slurm_jobs("/p%j", plan, {0}, options()); }), "'%'"));
}

TEST(RunProgram, KeepsOutputErrorAndExitCode) {
  const ProgramRun run = run_program({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10);
  EXPECT_TRUE(run.started);
  EXPECT_EQ(run.out, "out\n");
  EXPECT_EQ(run.err, "err\n");
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_EQ(run.failure(), "exit code 3");
  EXPECT_FALSE(run_program({"/nonexistent/sbatch"}, 10).started);
  const ProgramRun slow = run_program({"sleep", "5"}, 0.2);
  EXPECT_TRUE(slow.timed_out);
  EXPECT_FALSE(slow.ok());
}

}  // namespace
}  // namespace deltann
