// The campaign file (include/deltann/campaign_file.h): a complete file gives the campaign the
// equivalent flags give, and each kind of bad input is refused naming file, line and key.
#include "deltann/campaign_file.h"

#include <gtest/gtest.h>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

// Every field of the campaign, so that a difference names the field.
void expect_same(const CampaignConfig& got, const CampaignConfig& want) {
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.spec, want.spec);
  EXPECT_EQ(got.images, want.images);
  EXPECT_EQ(got.dataset.labels, want.dataset.labels);
  EXPECT_EQ(got.dataset.synsets, want.dataset.synsets);
  EXPECT_EQ(got.environments, want.environments);
  EXPECT_EQ(got.db, want.db);
  EXPECT_EQ(got.cache_dir, want.cache_dir);
  EXPECT_EQ(got.worker_dir, want.worker_dir);
  EXPECT_EQ(got.warmup, want.warmup);
  EXPECT_EQ(got.repeat, want.repeat);
  EXPECT_EQ(got.timing_images, want.timing_images);
  EXPECT_EQ(got.keep_outputs_up_to, want.keep_outputs_up_to);
  EXPECT_EQ(got.timeout_s, want.timeout_s);
  EXPECT_EQ(got.build_timeout_s, want.build_timeout_s);
  EXPECT_EQ(got.retry_failed, want.retry_failed);
  EXPECT_EQ(got.new_model, want.new_model);
  EXPECT_EQ(got.wait_for_lock, want.wait_for_lock);
  EXPECT_EQ(got.shuffle_seed, want.shuffle_seed);
}

const char* const kMinimal = R"(model = "m.onnx"
images = "images"
db = "c.db"
environments = ["ort"]
)";

std::string error_of(const std::string& text, const fs::path& path = "dir/campaign.toml") {
  return message_of<Error>([&] { parse_campaign_file(text, path); });
}

TEST(CampaignFile, EveryKeyGivesTheCampaignOfTheEquivalentFlags) {
  const std::string text = R"(# deltann run --model models/m.onnx --spec models/m.spec.json
#   --images photos --labels photos/labels.txt --synsets synsets.txt --db /abs/c.db
#   --cache cache --env ort:opt=all,threads=2 --env 'tvm:opt=3,device=cuda' --env reference
#   --warmup 1 --repeat 7 --timing-images all --keep-outputs 10 --timeout 30.5
#   --build-timeout 600 --shuffle 42 --retry-failed --new-model --wait
model = "models/m.onnx"
spec = "models/m.spec.json"
images = "photos"
labels = "photos/labels.txt"
synsets = "synsets.txt"
db = "/abs/c.db"
cache = "cache"
environments = ["ort:opt=all,threads=2", "tvm:opt=3,device=cuda", "reference"]
keep_outputs = 10
timeout = 30.5
build_timeout = 600
shuffle = 42
retry_failed = true
new_model = true
wait = true

[timing]
warmup = 1
repeat = 7
timing_images = "all"
)";
  const CampaignFile file = parse_campaign_file(text, "/work/c/campaign.toml");
  CampaignConfig want;
  want.model = "/work/c/models/m.onnx";
  want.spec = fs::path("/work/c/models/m.spec.json");
  want.images = "/work/c/photos";
  want.dataset.labels = fs::path("/work/c/photos/labels.txt");
  want.dataset.synsets = fs::path("/work/c/synsets.txt");
  want.db = "/abs/c.db";  // an absolute path stays as it is
  want.cache_dir = "/work/c/cache";
  want.environments = {"ort:opt=all,threads=2", "tvm:opt=3,device=cuda", "reference"};
  want.warmup = 1;
  want.repeat = 7;
  want.timing_images = std::nullopt;
  want.keep_outputs_up_to = 10;
  want.timeout_s = 30.5;
  want.build_timeout_s = 600;
  want.shuffle_seed = 42;
  want.retry_failed = true;
  want.new_model = true;
  want.wait_for_lock = true;
  expect_same(file.config, want);
  EXPECT_EQ(file.path, "/work/c/campaign.toml");
  EXPECT_TRUE(file.groups.empty());
  EXPECT_EQ(file.shard_images, std::nullopt);
}

TEST(CampaignFile, OmittedKeysKeepTheFlagsDefaults) {
  const CampaignFile file = parse_campaign_file(kMinimal, "campaign.toml");
  CampaignConfig want;    // the flags' defaults are CampaignConfig's
  want.model = "m.onnx";  // a file in the working directory: paths stay relative to it
  want.images = "images";
  want.db = "c.db";
  want.environments = {"ort"};
  expect_same(file.config, want);
  EXPECT_EQ(file.config.timing_images, kDefaultTimingImages);
}

TEST(CampaignFile, ReadsTheFileFromDiskWithPathsRelativeToItsFolder) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "sub" / "campaign.toml", kMinimal);
  const CampaignFile file = read_campaign_file(path);
  EXPECT_EQ(file.config.model, dir / "sub" / "m.onnx");
  EXPECT_EQ(file.config.db, dir / "sub" / "c.db");
  EXPECT_EQ(file.config.images, dir / "sub" / "images");
}

TEST(CampaignFile, TimingImagesIsACount) {
  const CampaignFile file =
      parse_campaign_file(std::string(kMinimal) + "[timing]\ntiming_images = 0\n", "c.toml");
  EXPECT_EQ(file.config.timing_images, 0);
}

TEST(CampaignFile, UnknownKeyIsRefusedWithItsLineAndTheLikelyKey) {
  const std::string message = error_of(std::string(kMinimal) + "\nnew_modle = true\n");
  EXPECT_TRUE(Contains(message, "dir/campaign.toml:6: unknown key 'new_modle'"));
  EXPECT_TRUE(Contains(message, "did you mean 'new_model'?"));
}

TEST(CampaignFile, FlagSpellingOfAKeyIsRefusedNamingTheKey) {
  const std::string message = error_of(std::string(kMinimal) + "build-timeout = 10\n");
  EXPECT_TRUE(Contains(message, ":5: unknown key 'build-timeout'"));
  EXPECT_TRUE(Contains(message, "did you mean 'build_timeout'?"));
}

TEST(CampaignFile, UnknownKeyInATableIsRefused) {
  const std::string message =
      error_of(std::string(kMinimal) + "[timing]\nwarmup = 1\nrepaet = 3\n");
  EXPECT_TRUE(Contains(message, "dir/campaign.toml:7: unknown key 'repaet' in [timing]"));
  EXPECT_TRUE(Contains(message, "did you mean 'repeat'?"));
  EXPECT_TRUE(Contains(message, "known keys: warmup, repeat, timing_images"));
}

TEST(CampaignFile, WrongTypeNamesLineKeyAndExpectedType) {
  std::string message = error_of(std::string(kMinimal) + "[timing]\nwarmup = \"3\"\n");
  EXPECT_TRUE(Contains(message, "dir/campaign.toml:6: 'warmup' must be an integer, not a string"));
  message = error_of(std::string(kMinimal) + "retry_failed = 1\n");
  EXPECT_TRUE(Contains(message, ":5: 'retry_failed' must be true or false, not an integer"));
  message = error_of("model = 3\nimages = \"i\"\ndb = \"c.db\"\nenvironments = [\"ort\"]\n");
  EXPECT_TRUE(Contains(message, ":1: 'model' must be a string, not an integer"));
  message = error_of("model = \"m\"\nimages = \"i\"\ndb = \"c.db\"\nenvironments = \"ort\"\n");
  EXPECT_TRUE(Contains(message, ":4: 'environments' must be an array of strings, not a string"));
  message = error_of(std::string(kMinimal) + "timing = 3\n");
  EXPECT_TRUE(Contains(message, ":5: 'timing' must be a table, not an integer"));
  message = error_of(std::string(kMinimal) + "timeout = \"1m\"\n");
  EXPECT_TRUE(Contains(message, ":5: 'timeout' must be a number of seconds, not a string"));
}

TEST(CampaignFile, OutOfRangeValuesAreRefused) {
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[timing]\nrepeat = 0\n"),
                       ":6: 'repeat' must be at least 1, not 0"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[timing]\nwarmup = -1\n"),
                       "'warmup' must be at least 0, not -1"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "timeout = 0\n"),
                       ":5: 'timeout' must be positive"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "build_timeout = nan\n"),
                       "'build_timeout' must be positive"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[timing]\nwarmup = 3000000000\n"),
                       "'warmup' must be at least 0"));
  EXPECT_TRUE(
      Contains(error_of("model = \"\"\nimages = \"i\"\ndb = \"c.db\"\nenvironments = [\"ort\"]\n"),
               ":1: 'model' must not be empty"));
}

TEST(CampaignFile, MissingRequiredKeyIsNamed) {
  EXPECT_TRUE(Contains(error_of("images = \"i\"\ndb = \"c.db\"\nenvironments = [\"ort\"]\n"),
                       "dir/campaign.toml: missing required key 'model'"));
  EXPECT_TRUE(Contains(error_of("model = \"m\"\nimages = \"i\"\nenvironments = [\"ort\"]\n"),
                       "missing required key 'db'"));
  EXPECT_TRUE(Contains(error_of("model = \"m\"\nimages = \"i\"\ndb = \"c.db\"\n"),
                       "missing required key 'environments'"));
  EXPECT_TRUE(
      Contains(error_of("model = \"m\"\nimages = \"i\"\ndb = \"c.db\"\nenvironments = []\n"),
               ":4: 'environments' must name at least one environment"));
}

TEST(CampaignFile, BadEnvironmentIsNamedWithItsLine) {
  const std::string message = error_of(
      "model = \"m\"\nimages = \"i\"\ndb = \"c.db\"\nenvironments = [\n  \"ort\",\n  "
      "\"ort:opt\",\n]\n");
  EXPECT_TRUE(Contains(message, "dir/campaign.toml:6: environments: "));
  EXPECT_TRUE(Contains(message, "ort:opt"));
}

TEST(CampaignFile, BadTimingImagesIsRefused) {
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[timing]\ntiming_images = \"most\"\n"),
                       ":6: 'timing_images' must be a number of images or \"all\", not \"most\""));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[timing]\ntiming_images = -2\n"),
                       "'timing_images' must be at least 0, not -2"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[timing]\ntiming_images = 2.5\n"),
                       "'timing_images' must be a number of images or \"all\", not a float"));
}

TEST(CampaignFile, TomlSyntaxErrorNamesLineAndColumn) {
  const std::string message = error_of("model = \"m.onnx\nimages = \"i\"\n");
  EXPECT_TRUE(Contains(message, "dir/campaign.toml:1:"));
  EXPECT_TRUE(Contains(message, "not valid TOML"));
}

TEST(CampaignFile, UnreadableFileIsNamed) {
  test::TempDir dir;
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { read_campaign_file(dir / "none.toml"); }), "none.toml"));
  EXPECT_TRUE(Contains(message_of<Error>([&] { read_campaign_file(dir.path()); }),
                       "is not a regular file"));
}

const char* const kGroups = R"(model = "m.onnx"
images = "images"
db = "c.db"
environments = ["ort:opt=all", "tvm:opt=3,device=cuda", "tvm:opt=3", "openvino"]
shard_images = 100

[[hardware_group]]
name = "gpu"
match = { engines = ["tvm"], devices = ["cuda"] }
constraint = "h100|a100"
gres = "gpu:1"
licenses = "scratch:1"
exclusive = true
shard_images = 25

[[hardware_group]]
name = "cpu"
[hardware_group.match]
devices = ["cpu"]
)";

TEST(CampaignFile, HardwareGroupsAreKeptInFileOrder) {
  const CampaignFile file = parse_campaign_file(kGroups, "c.toml");
  ASSERT_EQ(file.groups.size(), 2u);
  const HardwareGroup& gpu = file.groups[0];
  EXPECT_EQ(gpu.name, "gpu");
  EXPECT_EQ(gpu.engines, std::vector<std::string>{"tvm"});
  EXPECT_EQ(gpu.devices, std::vector<std::string>{"cuda"});
  EXPECT_EQ(gpu.constraint, "h100|a100");
  EXPECT_EQ(gpu.gres, "gpu:1");
  EXPECT_EQ(gpu.licenses, "scratch:1");
  EXPECT_TRUE(gpu.exclusive);
  EXPECT_EQ(gpu.shard_images, 25);
  EXPECT_EQ(gpu.line, 7);
  const HardwareGroup& cpu = file.groups[1];
  EXPECT_EQ(cpu.name, "cpu");
  EXPECT_TRUE(cpu.engines.empty());
  EXPECT_FALSE(cpu.exclusive);
  EXPECT_EQ(cpu.constraint, "");
  EXPECT_EQ(file.shard_images, 100);
  // The campaign itself is the same with or without placement.
  EXPECT_EQ(file.config.environments.size(), 4u);
}

TEST(CampaignFile, FirstMatchingGroupTakesAVariant) {
  const CampaignFile file = parse_campaign_file(kGroups, "c.toml");
  const HardwareGroup* gpu = hardware_group_for(file, parse_environment("tvm:opt=3,device=cuda"));
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(gpu->name, "gpu");
  EXPECT_EQ(shard_images_for(file, gpu), 25);
  // No device knob: the engine's default device, the CPU.
  const HardwareGroup* cpu = hardware_group_for(file, parse_environment("ort:opt=all"));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->name, "cpu");
  EXPECT_EQ(shard_images_for(file, cpu), 100);  // the file's
  EXPECT_EQ(hardware_group_for(file, parse_environment("opencv:device=opencl:0")), nullptr);
  EXPECT_EQ(shard_images_for(file, nullptr), 100);
}

// A group with one key changed: `replace` is put in place of `line` of kGroups' first group.
std::string groups_with(const std::string& line, const std::string& replace) {
  std::string text = kGroups;
  const size_t at = text.find(line);
  EXPECT_NE(at, std::string::npos) << line;
  return text.replace(at, line.size(), replace);
}

TEST(CampaignFile, BadHardwareGroupsAreRefused) {
  // Unknown key in a group, and in its match.
  EXPECT_TRUE(Contains(error_of(groups_with("gres = \"gpu:1\"", "gpus = \"gpu:1\"")),
                       ":11: unknown key 'gpus' in [[hardware_group]] on line 7; did you mean "
                       "'gres'?"));
  EXPECT_TRUE(Contains(error_of(groups_with("engines = [\"tvm\"]", "engine = [\"tvm\"]")),
                       ":9: unknown key 'engine' in the match of hardware group 'gpu'"));
  // Wrong types.
  EXPECT_TRUE(Contains(error_of(groups_with("exclusive = true", "exclusive = \"yes\"")),
                       ":13: 'exclusive' must be true or false, not a string"));
  EXPECT_TRUE(Contains(error_of(groups_with("gres = \"gpu:1\"", "gres = 1")),
                       ":11: 'gres' must be a string, not an integer"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "[hardware_group]\nname = \"x\"\n"),
                       "'hardware_group' must be an array of tables ([[hardware_group]]), not a "
                       "table"));
  // Missing and empty keys.
  EXPECT_TRUE(Contains(error_of(groups_with("name = \"gpu\"", "")),
                       ":7: [[hardware_group]] on line 7 lacks the required key 'name'"));
  EXPECT_TRUE(
      Contains(error_of(groups_with("match = { engines = [\"tvm\"], devices = [\"cuda\"] }", "")),
               "hardware group 'gpu' lacks the required key 'match'"));
  EXPECT_TRUE(Contains(
      error_of(groups_with("match = { engines = [\"tvm\"], devices = [\"cuda\"] }", "match = {}")),
      ":9: the match of hardware group 'gpu' names no engines and no devices"));
  // Values out of range or unsafe.
  EXPECT_TRUE(Contains(error_of(groups_with("shard_images = 25", "shard_images = 0")),
                       ":14: 'shard_images' must be at least 1, not 0"));
  EXPECT_TRUE(Contains(error_of(groups_with("gres = \"gpu:1\"", "gres = \"gpu:1\\n#SBATCH x\"")),
                       ":11: 'gres' must be printable ASCII without spaces"));
  EXPECT_TRUE(Contains(error_of(groups_with("engines = [\"tvm\"]", "engines = [\"t v m\"]")),
                       "'engines' entry 't v m' is not an engine name"));
  // A name used twice, and a group that no environment of the campaign falls in (a typo).
  EXPECT_TRUE(Contains(error_of(groups_with("name = \"cpu\"", "name = \"gpu\"")),
                       ":17: hardware group name 'gpu' is used twice (first on line 7)"));
  EXPECT_TRUE(Contains(error_of(groups_with("engines = [\"tvm\"]", "engines = [\"onnxruntime\"]")),
                       ":7: hardware group 'gpu' matches none of the campaign's environments "
                       "(engines: onnxruntime; devices: cuda)"));
  EXPECT_TRUE(Contains(error_of(std::string(kMinimal) + "shard_images = \"10\"\n"),
                       ":5: 'shard_images' must be an integer, not a string"));
}

// The documentation's complete example is a valid campaign file with two groups.
TEST(CampaignFile, DocumentedExampleParses) {
  const std::string doc = test::read_file(fs::path(DELTANN_SOURCE_DIR) / "docs/CAMPAIGN_FILE.md");
  const size_t begin = doc.find("```toml\n");
  ASSERT_NE(begin, std::string::npos) << "no ```toml block in docs/CAMPAIGN_FILE.md";
  const size_t end = doc.find("```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const CampaignFile file =
      parse_campaign_file(doc.substr(begin + 8, end - begin - 8), "/c/campaign.toml");
  EXPECT_EQ(file.config.model, "/c/models/efficientnet-lite0.onnx");
  EXPECT_EQ(file.config.environments.size(), 4u);
  EXPECT_EQ(file.config.timing_images, 50);
  EXPECT_EQ(file.config.shuffle_seed, 7u);
  ASSERT_EQ(file.groups.size(), 2u);
  EXPECT_EQ(file.groups[1].devices, std::vector<std::string>{"cpu"});
  EXPECT_EQ(file.shard_images, 500);
}

}  // namespace
}  // namespace deltann
