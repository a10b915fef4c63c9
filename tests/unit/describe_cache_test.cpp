// The describe cache: what its key is made of (a changed program, interpreter package folder or
// environment variable gives another key), and that an entry that cannot be trusted is described
// afresh and rewritten.
#include "run/describe_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::ScopedEnv;
using test::TempDir;

const json kReply = {{"name", "fake"}, {"version", "1"}};

// A describe function that counts its calls.
struct CountingDescribe {
  int calls = 0;
  json reply = kReply;
  json operator()() {
    ++calls;
    return reply;
  }
};

DescribeInputs program_in(const TempDir& dir) {
  if (!fs::exists(dir / "program")) test::write_file(dir / "program", "binary v1");
  return {"worker fake", {dir / "program"}, {}, {}};
}

TEST(DescribeKey, SameInputsSameKey) {
  TempDir dir;
  EXPECT_EQ(describe_key(program_in(dir)), describe_key(program_in(dir)));
}

TEST(DescribeKey, ChangedProgramBytesGiveAnotherKey) {
  TempDir dir;
  const std::string before = describe_key(program_in(dir));
  test::write_file(dir / "program", "binary v2");
  EXPECT_NE(describe_key(program_in(dir)), before);
}

TEST(DescribeKey, ProgramNameAndHashesArePartOfIt) {
  TempDir dir;
  DescribeInputs inputs = program_in(dir);
  const std::string before = describe_key(inputs);
  inputs.program = "worker other";
  EXPECT_NE(describe_key(inputs), before);
  inputs = program_in(dir);
  inputs.hashes = {"tools abc"};
  EXPECT_NE(describe_key(inputs), before);
}

TEST(DescribeKey, EachListedEnvironmentVariableChangesIt) {
  TempDir dir;
  for (const auto& name : describe_environment_variables()) {
    const ScopedEnv unset(name.c_str(), nullptr);
    const std::string without = describe_key(program_in(dir));
    {
      const ScopedEnv set(name.c_str(), "/somewhere");
      EXPECT_NE(describe_key(program_in(dir)), without) << name;
    }
    {
      const ScopedEnv empty(name.c_str(), "");
      EXPECT_NE(describe_key(program_in(dir)), without) << name << " set but empty";
    }
    EXPECT_EQ(describe_key(program_in(dir)), without) << name;
  }
}

TEST(DescribeKey, UnlistedEnvironmentVariableDoesNotChangeIt) {
  TempDir dir;
  const std::string before = describe_key(program_in(dir));
  const ScopedEnv set("DELTANN_DESCRIBE_KEY_TEST_UNRELATED", "1");
  EXPECT_EQ(describe_key(program_in(dir)), before);
}

TEST(DescribeKey, PackageInstalledIntoTheInterpretersVenvChangesIt) {
  TempDir dir;
  const fs::path python = test::write_file(dir / "venv" / "bin" / "python", "interpreter");
  const fs::path packages = dir / "venv" / "lib" / "python3.11" / "site-packages";
  fs::create_directories(packages);
  DescribeInputs inputs = program_in(dir);
  inputs.interpreters = {python};
  // The folder's modification time is the stamp: set it, so that the change does not depend on
  // the file system's clock resolution.
  fs::last_write_time(packages, fs::file_time_type::clock::now() - std::chrono::hours(1));
  const std::string before = describe_key(inputs);
  EXPECT_EQ(describe_key(inputs), before);
  fs::create_directories(packages / "torch-2.0.dist-info");
  EXPECT_NE(describe_key(inputs), before);
}

TEST(DescribeKey, ScriptWorkerCoversItsInterpreterAndThePythonBesideIt) {
  TempDir dir;
  const fs::path worker =
      test::write_file(dir / "deltann-worker-py", "#!/opt/venv/bin/python -I\nimport x\n");
  const fs::path module = test::write_file(dir / "python" / "pkg" / "engine.py", "A = 1\n");
  const DescribeInputs inputs = worker_describe_inputs("py", worker);
  EXPECT_EQ(inputs.program, "worker py");
  EXPECT_EQ(inputs.interpreters, std::vector<fs::path>{"/opt/venv/bin/python"});
  ASSERT_EQ(inputs.files.size(), 2u);
  const std::string before = describe_key(inputs);
  test::write_file(module, "A = 2\n");
  EXPECT_NE(describe_key(worker_describe_inputs("py", worker)), before);
}

TEST(DescribeKey, BinaryWorkerIsItsOwnBytes) {
  TempDir dir;
  const fs::path worker = test::write_file(dir / "deltann-worker-bin",
                                           "\x7f"
                                           "ELF...");
  test::write_file(dir / "python" / "unrelated.py", "");
  const DescribeInputs inputs = worker_describe_inputs("bin", worker);
  EXPECT_EQ(inputs.files, std::vector<fs::path>{fs::absolute(worker)});
  EXPECT_TRUE(inputs.interpreters.empty());
}

TEST(DescribeCache, SecondGetReadsTheSavedReply) {
  TempDir dir;
  const DescribeCache cache(dir / "describe");
  CountingDescribe describe;
  EXPECT_EQ(cache.get(program_in(dir), std::ref(describe)), kReply);
  EXPECT_EQ(cache.get(program_in(dir), std::ref(describe)), kReply);
  EXPECT_EQ(describe.calls, 1);
  test::write_file(dir / "program", "binary v2");
  cache.get(program_in(dir), std::ref(describe));
  EXPECT_EQ(describe.calls, 2) << "a changed program is described again";
}

TEST(DescribeCache, CorruptEntryIsDescribedAfreshAndRewritten) {
  TempDir dir;
  const DescribeCache cache(dir / "describe");
  const std::string key = describe_key(program_in(dir));
  const fs::path entry = dir / "describe" / (key + ".json");
  const json other_key = {{"key", "0000"}, {"reply", {{"name", "stale"}}}};
  const json no_reply = {{"key", key}};
  const json reply_not_object = {{"key", key}, {"reply", "text"}};
  for (const std::string& bad :
       {std::string("{\"key\": \"") + key + "\", \"reply\": {\"name\": \"fa",  // truncated
        std::string("\x00\x01garbage", 9), other_key.dump(), no_reply.dump(),
        reply_not_object.dump(), std::string()}) {
    test::write_file(entry, bad);
    EXPECT_FALSE(cache.load(key)) << bad;
    CountingDescribe describe;
    EXPECT_EQ(cache.get(program_in(dir), std::ref(describe)), kReply) << bad;
    EXPECT_EQ(describe.calls, 1) << bad;
    EXPECT_EQ(cache.load(key), kReply) << "rewritten whole after: " << bad;
  }
}

TEST(DescribeCache, UnreadableEntryIsNotTrusted) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  const DescribeCache cache(dir / "describe");
  const std::string key = describe_key(program_in(dir));
  cache.save(key, kReply);
  ::chmod((dir / "describe" / (key + ".json")).c_str(), 0);
  EXPECT_FALSE(cache.load(key));
}

TEST(DescribeCache, FailedDescribeIsNotRemembered) {
  TempDir dir;
  const DescribeCache cache(dir / "describe");
  int calls = 0;
  const auto failing = [&]() -> json {
    ++calls;
    throw std::runtime_error("worker died");
  };
  EXPECT_THROW(cache.get(program_in(dir), failing), std::runtime_error);
  EXPECT_THROW(cache.get(program_in(dir), failing), std::runtime_error);
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(fs::exists(dir / "describe")) << "nothing was saved";
}

TEST(DescribeCache, UnwritableFolderStillDescribes) {
  TempDir dir;
  test::write_file(dir / "file", "");
  const DescribeCache cache(dir / "file" / "describe");  // under a file: cannot be made
  CountingDescribe describe;
  EXPECT_EQ(cache.get(program_in(dir), std::ref(describe)), kReply);
  EXPECT_EQ(cache.get(program_in(dir), std::ref(describe)), kReply);
  EXPECT_EQ(describe.calls, 2);
}

}  // namespace
}  // namespace deltann
