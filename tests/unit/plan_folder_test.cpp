// Plan folders (run/plan_folder.h), the choice of a shard (run/shard.h) and the merge of shard
// databases (deltann/shard_merge.h).
#include "run/plan_folder.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "deltann/shard_merge.h"
#include "deltann/store.h"
#include "run/shard.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

PlanImage image(const std::string& key, const std::string& duplicate_of = "") {
  return {key, "/data/" + key, "sha-" + key, std::nullopt, duplicate_of, 0};
}

std::vector<int> blocks_of(const std::vector<PlanImage>& images) {
  std::vector<int> blocks;
  for (const auto& i : images) blocks.push_back(i.block);
  return blocks;
}

TEST(PlanFolder, HardwareGroupIsTheDeviceKnob) {
  EXPECT_EQ(hardware_group(parse_environment("tvm:opt=3,device=cuda")), "cuda");
  EXPECT_EQ(hardware_group(parse_environment("ort:opt=all,threads=2")), "cpu");
  EXPECT_EQ(hardware_group(parse_environment("opencv:device=cpu")), "cpu");
}

TEST(PlanFolder, BlocksKeepTheOrderAndDuplicatesWithTheirFirstCopy) {
  std::vector<PlanImage> images = {image("a"), image("b"), image("c"), image("d"), image("e")};
  EXPECT_EQ(assign_blocks(images, 2), 3);
  EXPECT_EQ(blocks_of(images), (std::vector<int>{0, 0, 1, 1, 2}));

  // A duplicate goes to its first copy's block and does not count against the block size.
  images = {image("a"), image("b"), image("c"), image("a (line 4)", "a"), image("d")};
  EXPECT_EQ(assign_blocks(images, 2), 2);
  EXPECT_EQ(blocks_of(images), (std::vector<int>{0, 0, 1, 0, 1}));

  EXPECT_TRUE(Contains(message_of<Error>([&] { assign_blocks(images, 0); }), "--shard-images"));
}

TEST(PlanFolder, OneShardPerGroupAndBlockGroupsConsecutive) {
  const std::vector<PlanVariant> variants = {
      {"ort:opt=all", "ort", "1.17", "cpu", "cpu"},
      {"tvm:opt=3,device=cuda", "tvm", "0.16", "cuda", "cuda"},
      {"opencv:opt=on", "opencv", "4.6", "cpu", "cpu"}};
  std::vector<PlanImage> images = {image("a"), image("b"), image("c")};
  const int blocks = assign_blocks(images, 2);
  const auto shards = assign_shards(variants, images, {"b", "c"}, blocks);
  ASSERT_EQ(shards.size(), 4u);
  EXPECT_EQ(shards[0].group, "cpu");
  EXPECT_EQ(shards[1].group, "cpu");
  EXPECT_EQ(shards[2].group, "cuda");
  EXPECT_EQ(shards[3].group, "cuda");
  for (size_t i = 0; i < shards.size(); ++i) EXPECT_EQ(shards[i].index, static_cast<int>(i));
  // Variants compared with each other share their shards; a shard's images are its block's.
  EXPECT_EQ(shards[0].variants, (std::vector<std::string>{"ort:opt=all", "opencv:opt=on"}));
  EXPECT_EQ(shards[2].variants, (std::vector<std::string>{"tvm:opt=3,device=cuda"}));
  EXPECT_EQ(shards[0].image_keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(shards[1].image_keys, (std::vector<std::string>{"c"}));
  EXPECT_EQ(shards[0].timed_keys, (std::vector<std::string>{"b"}));
  EXPECT_EQ(shards[3].timed_keys, (std::vector<std::string>{"c"}));
}

CampaignPlan small_plan() {
  CampaignPlan plan;
  plan.campaign = {{"model", "/m/model.onnx"},
                   {"model_sha256", "abc"},
                   {"spec", nullptr},
                   {"spec_file", nullptr},
                   {"spec_sha256", nullptr},
                   {"images", "/data"},
                   {"labels", nullptr},
                   {"synsets", nullptr},
                   {"environments", {"ort"}},
                   {"warmup", 1},
                   {"repeat", 3},
                   {"timing_images", "all"},
                   {"keep_outputs_up_to", 1000},
                   {"keep_outputs", true},
                   {"timeout_s", 120.0},
                   {"build_timeout_s", 3600.0},
                   {"shuffle", nullptr},
                   {"shard_images", 2}};
  plan.variants = {{"ort:opt=all,threads=1", "ort", "1.17", "cpu", "cpu"}};
  plan.images = {image("a"), image("b"), image("c")};
  const int blocks = assign_blocks(plan.images, 2);
  plan.shards = assign_shards(plan.variants, plan.images, {"a"}, blocks);
  return plan;
}

TEST(PlanFolder, TheSameInputsGiveByteIdenticalFilesAndHash) {
  test::TempDir dir;
  CampaignPlan one = small_plan(), two = small_plan();
  write_plan_folder(dir / "one", one);
  write_plan_folder(dir / "two", two);
  EXPECT_EQ(one.hash, two.hash);
  EXPECT_EQ(one.hash.size(), 64u);
  for (const char* name : {"plan.json", "campaign.json", "variants.json", "images.json",
                           "shards/0000.json", "shards/0001.json"})
    EXPECT_EQ(test::read_file(dir / "one" / name), test::read_file(dir / "two" / name)) << name;

  // Anything that shapes the results changes the hash.
  CampaignPlan other = small_plan();
  other.campaign["repeat"] = 5;
  EXPECT_NE(plan_hash(plan_files(other)), one.hash);
  other = small_plan();
  other.images[1].sha256 = "changed";
  EXPECT_NE(plan_hash(plan_files(other)), one.hash);

  // Read back as written; the same plan again into the folder is a no-op, another is refused.
  const CampaignPlan read = read_plan_folder(dir / "one");
  EXPECT_EQ(read.hash, one.hash);
  ASSERT_EQ(read.shards.size(), 2u);
  EXPECT_EQ(read.shards[1].image_keys, (std::vector<std::string>{"c"}));
  EXPECT_EQ(config_of_plan(read).repeat, 3);
  EXPECT_FALSE(config_of_plan(read).timing_images.has_value());
  EXPECT_TRUE(slice_of_shard(read, read.shards[0]).timed_keys.count("a"));
  write_plan_folder(dir / "one", two);
  other = small_plan();
  other.campaign["warmup"] = 2;
  EXPECT_TRUE(Contains(message_of<Error>([&] { write_plan_folder(dir / "one", other); }),
                       "already holds another plan"));
}

TEST(PlanFolder, AnEditedPlanIsRefusedNamingTheFile) {
  test::TempDir dir;
  CampaignPlan plan = small_plan();
  write_plan_folder(dir.path(), plan);
  const std::string shard = test::read_file(dir / "shards/0001.json");
  test::write_file(dir / "shards/0001.json", shard + " ");
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_plan_folder(dir.path()); }),
                       "shards/0001.json was changed after planning"));
  test::write_file(dir / "shards/0001.json", shard);
  EXPECT_NO_THROW(read_plan_folder(dir.path()));
  test::write_file(dir / "shards/0002.json", shard);
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_plan_folder(dir.path()); }),
                       "shards/0002.json is not part of the plan"));
  fs::remove(dir / "shards/0002.json");
  fs::remove(dir / "images.json");
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { read_plan_folder(dir.path()); }), "images.json is missing"));
}

TEST(PlanFolder, IndexRanges) {
  EXPECT_EQ(index_ranges({17, 3, 4, 5}), "3-5,17");
  EXPECT_EQ(index_ranges({2}), "2");
  EXPECT_EQ(index_ranges({}), "");
  EXPECT_EQ(index_ranges({1, 3, 1}), "1,3");
}

TEST(ShardChoice, FlagThenSlurmThenKubernetes) {
  std::map<std::string, std::string> env;
  const auto getenv = [&](const char* name) -> const char* {
    const auto found = env.find(name);
    return found == env.end() ? nullptr : found->second.c_str();
  };
  EXPECT_TRUE(Contains(message_of<Error>([&] { choose_shard(std::nullopt, getenv); }),
                       "SLURM_ARRAY_TASK_ID"));
  env["JOB_COMPLETION_INDEX"] = "4";
  EXPECT_EQ(choose_shard(std::nullopt, getenv).index, 4);
  EXPECT_EQ(choose_shard(std::nullopt, getenv).source, "JOB_COMPLETION_INDEX");
  env["SLURM_ARRAY_TASK_ID"] = "7";
  EXPECT_EQ(choose_shard(std::nullopt, getenv).index, 7);
  EXPECT_EQ(choose_shard(2, getenv).index, 2);
  EXPECT_EQ(choose_shard(2, getenv).source, "--shard");
  env["SLURM_ARRAY_TASK_ID"] = "7x";
  EXPECT_TRUE(Contains(message_of<Error>([&] { choose_shard(std::nullopt, getenv); }),
                       "'7x', not a shard index"));
}

// Which Slurm node ran a shard is its SLURMD_NODENAME, not the host name: several slurmd can share
// a host, and a node's NodeName need not be its host's name.
TEST(ShardNode, RecordsTheSlurmNodeNameAndJob) {
  ::setenv("SLURMD_NODENAME", "gpu1", 1);
  ::setenv("SLURM_ARRAY_TASK_ID", "3", 1);
  const nlohmann::json node = node_record();
  ::unsetenv("SLURMD_NODENAME");
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  EXPECT_EQ(node["job"].value("SLURMD_NODENAME", ""), "gpu1");
  EXPECT_EQ(node["job"].value("SLURM_ARRAY_TASK_ID", ""), "3");
  EXPECT_FALSE(node.value("host", "").empty());
  const nlohmann::json outside = node_record();  // not in a Slurm job: no job record of one
  EXPECT_FALSE(outside.contains("job") && outside["job"].contains("SLURMD_NODENAME"));
}

// A shard database as `deltann run --plan` leaves it: one model, its block's images, results.
fs::path shard_db(const fs::path& path, int index, const std::string& hash,
                  const std::vector<std::string>& keys) {
  Store store(path);
  store.set_meta("plan_hash", hash);
  store.set_meta("shard", std::to_string(index));
  store.set_meta("shard_group", "cpu");
  store.set_meta("node", R"({"host": "node)" + std::to_string(index) + R"("})");
  store.set_meta("host", "node" + std::to_string(index));
  store.set_meta("timing", "warmup=1, repeat=3, timing_images=all");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}", "defaults"});
  const int64_t v = store.ensure_variant(model, "ort:opt=all", "ort");
  store.record_failure({v, std::nullopt, FailureStage::compile, FailureSymptom::error, "no"});
  for (const auto& key : keys) {
    StoredImage i;
    i.key = key;
    i.path = "/data/" + key;
    i.sha256 = "sha-" + key;
    const int64_t id = store.ensure_image(i);
    StoredResult r;
    r.variant_id = v;
    r.image_id = id;
    r.top_ids = {static_cast<int>(key[0])};
    r.top_scores = {0.5f};
    store.add_result(r);
  }
  store.set_variant_status(v, index == 1 ? VariantStatus::failed : VariantStatus::done);
  store.flush();
  return path;
}

TEST(ShardMerge, RowsAreRemappedByNaturalKeys) {
  test::TempDir dir;
  const std::vector<ShardDatabase> shards = {{0, shard_db(dir / "s0.db", 0, "H", {"a", "b"})},
                                             {1, shard_db(dir / "s1.db", 1, "H", {"c"})}};
  std::vector<std::string> said;
  const MergeOutcome merged = merge_shard_databases(
      shards, "H", dir / "all.db", [&](const std::string& line) { said.push_back(line); });
  EXPECT_EQ(merged.shards, 2);
  EXPECT_EQ(merged.results, 3);
  EXPECT_EQ(said.size(), 2u);
  const Store store(dir / "all.db", StoreMode::ReadOnly);
  ASSERT_EQ(store.models().size(), 1u);
  ASSERT_EQ(store.variants().size(), 1u);
  EXPECT_EQ(store.variants()[0].status, VariantStatus::failed);  // the worst of its shards
  EXPECT_EQ(store.images().size(), 3u);
  EXPECT_EQ(store.results(store.variants()[0].id, false).size(), 3u);
  EXPECT_EQ(store.failures().size(), 1u);  // the same variant failure in both shards, kept once
  EXPECT_EQ(store.meta("plan_hash"), "H");
  EXPECT_EQ(store.meta("timing"), "warmup=1, repeat=3, timing_images=all");
  EXPECT_EQ(store.meta("host"), "node0; node1");
  EXPECT_TRUE(Contains(store.meta("shard:1").value_or(""), "node1"));
}

TEST(ShardMerge, AnotherPlansDatabaseIsForeignAndOtherFaultsAreNot) {
  test::TempDir dir;
  const auto s0 = shard_db(dir / "s0.db", 0, "H", {"a"});
  check_shard_database({0, s0}, "H");  // this plan's: no error
  EXPECT_TRUE(Contains(message_of<ForeignShardError>([&] {
                         check_shard_database({0, s0}, "O");
                       }),
                       s0.string() + " belongs to another plan (plan_hash H, this plan O)"));
  // The wrong shard, or no database at all, is an error but not another plan's.
  const auto refusal = [](const std::function<void()>& check) -> std::string {
    try {
      check();
    } catch (const ForeignShardError&) {
      return "foreign";
    } catch (const Error&) {
      return "error";
    }
    return "none";
  };
  EXPECT_EQ(refusal([&] { check_shard_database({2, s0}, "H"); }), "error");
  test::write_file(dir / "junk.db", "not a database");
  EXPECT_EQ(refusal([&] { check_shard_database({0, dir / "junk.db"}, "H"); }), "error");
  EXPECT_EQ(refusal([&] { check_shard_database({0, s0}, "O"); }), "foreign");
}

TEST(ShardMerge, MismatchesAreRefusedAndNothingIsWritten) {
  test::TempDir dir;
  const auto s0 = shard_db(dir / "s0.db", 0, "H", {"a"});
  const auto say = [](const std::string&) {};
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         merge_shard_databases({{0, s0}}, "OTHER", dir / "x.db", say);
                       }),
                       "belongs to another plan"));
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         merge_shard_databases({{3, s0}}, "H", dir / "x.db", say);
                       }),
                       "holds shard 0, not shard 3"));
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         merge_shard_databases({{0, s0}, {0, s0}}, "H", dir / "x.db", say);
                       }),
                       "given twice"));
  // Two shards that both hold a result of the same variant on the same image.
  const auto s1 = shard_db(dir / "s1.db", 1, "H", {"a"});
  EXPECT_TRUE(Contains(message_of<Error>([&] {
                         merge_shard_databases({{0, s0}, {1, s1}}, "H", dir / "x.db", say);
                       }),
                       "repeats a result already merged"));
  EXPECT_FALSE(fs::exists(dir / "x.db"));
}

}  // namespace
}  // namespace deltann
