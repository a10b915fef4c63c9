// The campaign database (store.h).
#include "deltann/store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using test::Contains;
using test::message_of;

StoredImage image(const std::string& key, std::optional<int> label = std::nullopt) {
  StoredImage i;
  i.key = key;
  i.path = "/data/" + key;
  i.sha256 = "sha-" + key;
  i.label = label;
  return i;
}

StoredResult result(int64_t variant, int64_t image_id, std::vector<int> top = {1, 2, 3}) {
  StoredResult r;
  r.variant_id = variant;
  r.image_id = image_id;
  r.top_ids = std::move(top);
  r.top_scores = std::vector<float>(r.top_ids.size(), 0.5f);
  r.samples_ns = {1000};
  return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Fills a database with one model, one variant and `image_count` images, and keeps their ids.
struct Fixture {
  int64_t model = 0, variant = 0;
  std::vector<int64_t> images;

  explicit Fixture(Store& store, int image_count = 4) {
    model = store.ensure_model({0, "/models/m.onnx", "abc", "{}"});
    variant = store.ensure_variant(model, "ort:opt=all", "ort");
    for (int i = 0; i < image_count; ++i)
      images.push_back(store.ensure_image(image("img" + std::to_string(i) + ".jpg")));
  }
};

TEST(Store, CreatesTheFileWithASchemaVersion) {
  test::TempDir dir;
  const fs::path db = dir / "new.db";
  {
    Store store(db);
    EXPECT_EQ(store.path(), db);
    EXPECT_EQ(store.meta("schema_version"), std::to_string(kSchemaVersion));
    EXPECT_EQ(store.meta("no such key"), std::nullopt);
    store.set_meta("campaign", "demo");
    store.set_meta("campaign", "demo2");  // overwrites
  }
  EXPECT_TRUE(fs::exists(db));
  Store again(db);
  EXPECT_EQ(again.meta("campaign"), "demo2");
  EXPECT_EQ(again.meta("schema_version"), std::to_string(kSchemaVersion));
}

TEST(Store, EnsureCallsAreIdempotent) {
  test::TempDir dir;
  Store store(dir / "r.db");
  const int64_t m1 = store.ensure_model({0, "/m.onnx", "sha", "{\"v\":1}", "/m.spec.json"});
  const int64_t m2 = store.ensure_model({0, "/copy/m.onnx", "sha", "{\"v\":1}", "defaults"});
  const int64_t m3 = store.ensure_model({0, "/m.onnx", "other-sha", "{}"});
  // The same file under another spec gives other numbers: another model, the first untouched.
  const int64_t m4 = store.ensure_model({0, "/m.onnx", "sha", "{\"v\":2}"});
  EXPECT_EQ(m1, m2);
  EXPECT_NE(m1, m3);
  EXPECT_NE(m1, m4);
  ASSERT_EQ(store.models().size(), 3u);
  EXPECT_EQ(store.models()[0].spec_json, "{\"v\":1}");
  EXPECT_EQ(store.models()[0].path, "/copy/m.onnx");  // where it last ran
  EXPECT_EQ(store.models()[0].spec_source, "defaults");

  const int64_t i1 = store.ensure_image(image("a.jpg", 3));
  StoredImage failed = image("a.jpg", 4);
  failed.status = ImageStatus::error;
  failed.message = "truncated";
  const int64_t i2 = store.ensure_image(failed);
  const int64_t i3 = store.ensure_image(image("b.jpg"));
  EXPECT_EQ(i1, i2);
  EXPECT_NE(i1, i3);
  const auto images = store.images();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].key, "a.jpg");
  EXPECT_EQ(images[0].label, 4);
  EXPECT_EQ(images[0].status, ImageStatus::error);
  EXPECT_EQ(images[0].message, "truncated");
  EXPECT_EQ(images[1].label, std::nullopt);

  const int64_t v1 = store.ensure_variant(m1, "ort:opt=all", "ort");
  const int64_t v2 = store.ensure_variant(m1, "ort:opt=all", "ort");
  const int64_t v3 = store.ensure_variant(m1, "ort:opt=off", "ort");
  EXPECT_EQ(v1, v2);
  EXPECT_NE(v1, v3);
  ASSERT_EQ(store.variants().size(), 2u);
  EXPECT_EQ(store.variants()[0].status, VariantStatus::pending);
}

TEST(Store, VariantBookkeeping) {
  test::TempDir dir;
  Store store(dir / "r.db");
  Fixture f(store, 0);
  store.set_variant_status(f.variant, VariantStatus::running);
  store.record_load(f.variant, "1.17.3", "artifact-sha", 1'500'000, "{\"engine\":\"ort\"}");
  store.record_first_inference(f.variant, 250'000);
  const auto variants = store.variants();
  ASSERT_EQ(variants.size(), 1u);
  const StoredVariant& v = variants[0];
  EXPECT_EQ(v.id, f.variant);
  EXPECT_EQ(v.model_id, f.model);
  EXPECT_EQ(v.env, "ort:opt=all");
  EXPECT_EQ(v.framework, "ort");
  EXPECT_EQ(v.status, VariantStatus::running);
  EXPECT_EQ(v.engine_version, "1.17.3");
  EXPECT_EQ(v.artifact_sha256, "artifact-sha");
  EXPECT_EQ(v.load_ns, 1'500'000);
  EXPECT_EQ(v.first_ns, 250'000);
  EXPECT_EQ(v.info_json, "{\"engine\":\"ort\"}");
}

TEST(Store, ResultsAreCommittedInBatches) {
  test::TempDir dir;
  const fs::path db = dir / "r.db";
  Store writer(db, StoreMode::ReadWrite, 4);
  Fixture f(writer, 6);
  for (int i = 0; i < 3; ++i)
    writer.add_result(result(f.variant, f.images[static_cast<size_t>(i)]));

  // Another connection (e.g. after the writer was killed) sees nothing of the open batch.
  Store reader(db);
  EXPECT_EQ(reader.results(f.variant, false).size(), 0u);
  writer.flush();
  EXPECT_EQ(reader.results(f.variant, false).size(), 3u);

  // The fourth result of a new batch fills it and commits it without a flush.
  for (int i = 3; i < 6; ++i)
    writer.add_result(result(f.variant, f.images[static_cast<size_t>(i)]));
  EXPECT_EQ(reader.results(f.variant, false).size(), 3u);
  writer.add_result(result(f.variant, f.images[0], {9}));  // replaces the first image's result
  const auto seen = reader.results(f.variant, false);
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0].top_ids, std::vector<int>{9});
}

TEST(Store, DestructorFlushesTheLastBatch) {
  test::TempDir dir;
  const fs::path db = dir / "r.db";
  int64_t variant = 0;
  {
    Store writer(db, StoreMode::ReadWrite, 100);
    Fixture f(writer, 2);
    variant = f.variant;
    writer.add_result(result(f.variant, f.images[0]));
    writer.add_result(result(f.variant, f.images[1]));
  }
  EXPECT_EQ(Store(db).results(variant, false).size(), 2u);
}

TEST(Store, CompletedImagesIncludeFailuresOnlyWhenAsked) {
  test::TempDir dir;
  Store store(dir / "r.db", StoreMode::ReadWrite, 64);
  Fixture f(store, 4);
  store.add_result(result(f.variant, f.images[0]));
  store.add_result(result(f.variant, f.images[1]));
  store.record_failure(
      {f.variant, f.images[2], FailureStage::run, FailureSymptom::crash, "segmentation fault"});
  store.record_failure(
      {f.variant, std::nullopt, FailureStage::load, FailureSymptom::error, "bad model"});
  // completed_images sees buffered results: it flushes first.
  EXPECT_EQ(store.completed_images(f.variant),
            (std::set<int64_t>{f.images[0], f.images[1], f.images[2]}));
  EXPECT_EQ(store.completed_images(f.variant, false),
            (std::set<int64_t>{f.images[0], f.images[1]}));

  const auto failures = store.failures();
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].image_id, f.images[2]);
  EXPECT_EQ(failures[0].stage, FailureStage::run);
  EXPECT_EQ(failures[0].symptom, FailureSymptom::crash);
  EXPECT_EQ(failures[0].message, "segmentation fault");
  EXPECT_EQ(failures[1].image_id, std::nullopt);

  store.clear_failures(f.variant);
  EXPECT_TRUE(store.failures().empty());
  EXPECT_EQ(store.completed_images(f.variant), (std::set<int64_t>{f.images[0], f.images[1]}));
}

TEST(Store, ResultsRoundTrip) {
  test::TempDir dir;
  Store store(dir / "r.db", StoreMode::ReadWrite, 2);
  Fixture f(store, 2);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  StoredResult full;
  full.variant_id = f.variant;
  full.image_id = f.images[1];
  full.top_ids = {998, 0, 7, 1000, 3};
  full.top_scores = {nan, inf, -inf, -0.0f, 1e-30f};
  full.output = {0.25f, nan, -3.5f, inf};
  full.samples_ns = {1, 9'000'000'000, std::numeric_limits<int64_t>::max()};
  StoredResult small = result(f.variant, f.images[0], {5});
  store.add_result(full);
  store.add_result(small);

  const auto with_output = store.results(f.variant, true);
  ASSERT_EQ(with_output.size(), 2u);
  // Ordered by image id, whatever the insertion order.
  EXPECT_EQ(with_output[0].image_id, f.images[0]);
  EXPECT_EQ(with_output[0].top_ids, std::vector<int>{5});
  EXPECT_TRUE(with_output[0].output.empty());
  const StoredResult& back = with_output[1];
  EXPECT_EQ(back.variant_id, f.variant);
  EXPECT_EQ(back.image_id, f.images[1]);
  EXPECT_EQ(back.top_ids, full.top_ids);
  EXPECT_TRUE(same_bits(back.top_scores, full.top_scores));
  EXPECT_TRUE(same_bits(back.output, full.output));
  EXPECT_EQ(back.samples_ns, full.samples_ns);

  const auto without_output = store.results(f.variant, false);
  ASSERT_EQ(without_output.size(), 2u);
  EXPECT_TRUE(without_output[1].output.empty());
  EXPECT_TRUE(same_bits(without_output[1].top_scores, full.top_scores));
}

// for_each_result reuses one row object: nothing of a row may leak into the next one, whether the
// visitor moves a vector out or leaves it (a full row followed by a small one, and back).
TEST(Store, ForEachResultGivesEachRowItsOwnValues) {
  test::TempDir dir;
  Store store(dir / "r.db", StoreMode::ReadWrite, 8);
  Fixture f(store, 3);
  StoredResult full = result(f.variant, f.images[0], {4, 5, 6, 7});
  full.output = {1.0f, 2.0f};
  full.samples_ns = {10, 20, 30};
  full.nonfinite = 2;
  full.repeat_max_abs_diff = 0.5;
  StoredResult small = result(f.variant, f.images[1], {9});
  small.samples_ns.clear();
  StoredResult full_again = full;
  full_again.image_id = f.images[2];
  store.add_result(full);
  store.add_result(small);
  store.add_result(full_again);
  EXPECT_EQ(store.result_count(f.variant), 3);
  EXPECT_EQ(store.result_count(f.variant + 1), 0);
  std::vector<StoredResult> seen;
  store.for_each_result(f.variant, true, [&](StoredResult& r) {
    seen.push_back(r);  // a copy: the row object keeps its buffers for the next row
    r.top_ids.clear();
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].top_ids, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(seen[0].output, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(seen[0].samples_ns, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(seen[0].nonfinite, 2);
  EXPECT_EQ(seen[0].repeat_max_abs_diff, 0.5);
  EXPECT_EQ(seen[1].top_ids, std::vector<int>{9});
  EXPECT_EQ(seen[1].top_scores, std::vector<float>{0.5f});
  EXPECT_TRUE(seen[1].output.empty());
  EXPECT_TRUE(seen[1].samples_ns.empty());
  EXPECT_EQ(seen[1].nonfinite, 0);
  EXPECT_FALSE(seen[1].repeat_max_abs_diff.has_value());
  EXPECT_EQ(seen[2].output, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(seen[2].samples_ns, (std::vector<int64_t>{10, 20, 30}));
  seen.clear();
  store.for_each_result(f.variant, false, [&](StoredResult& r) { seen.push_back(r); });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_TRUE(seen[0].output.empty());
}

// samples_ns and top_scores are NOT NULL columns: an empty vector must still be storable (a worker
// may reply with no samples), and must not block later writes.
TEST(Store, ResultWithoutSamplesIsStored) {
  test::TempDir dir;
  Store store(dir / "r.db", StoreMode::ReadWrite, 1);
  Fixture f(store, 2);
  StoredResult no_samples = result(f.variant, f.images[0]);
  no_samples.samples_ns.clear();
  EXPECT_NO_THROW(store.add_result(no_samples));
  EXPECT_NO_THROW(store.add_result(result(f.variant, f.images[1])));
  EXPECT_EQ(store.results(f.variant, false).size(), 2u);
}

TEST(Store, NewerSchemaVersionIsRefused) {
  test::TempDir dir;
  const fs::path db = dir / "future.db";
  Store(db).set_meta("schema_version", "99");
  const std::string message = message_of<Error>([&] { Store reopened(db); });
  EXPECT_TRUE(Contains(message, db.string()));
  EXPECT_TRUE(Contains(message, "99"));
}

// A kind-holding column with a name this build does not know (edited by hand, or written by a
// newer deltann) is refused with the file, the column and the value, not read as some default.
TEST(Store, UnknownStoredKindIsAnError) {
  test::TempDir dir;
  const fs::path db = dir / "edited.db";
  {
    Store store(db);
    Fixture f(store, 1);
    store.record_failure({f.variant, std::nullopt, FailureStage::load, FailureSymptom::error, "x"});
  }
  SQLite::Database(db.string(), SQLite::OPEN_READWRITE)
      .exec("UPDATE failures SET symptom = 'melted'; UPDATE variants SET status = 'paused'");
  Store store(db, StoreMode::ReadOnly);
  const std::string failures = message_of<Error>([&] { store.failures(); });
  EXPECT_TRUE(Contains(failures, db.string())) << failures;
  EXPECT_TRUE(Contains(failures, "failures.symptom")) << failures;
  EXPECT_TRUE(Contains(failures, "'melted'")) << failures;
  const std::string variants = message_of<Error>([&] { store.variants(); });
  EXPECT_TRUE(Contains(variants, "variants.status")) << variants;
  EXPECT_TRUE(Contains(variants, "'paused'")) << variants;
}

TEST(Store, NonDatabaseFileIsRefused) {
  test::TempDir dir;
  const fs::path path = dir / "random.db";
  std::mt19937 rng(7);
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  test::write_file(path, bytes);
  const std::string message = message_of<Error>([&] { Store store(path); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "not a deltann database"));
  EXPECT_EQ(test::read_file(path), bytes);  // left untouched
}

TEST(Store, NewDatabaseCarriesDeltannsApplicationId) {
  test::TempDir dir;
  { Store store(dir / "new.db"); }
  SQLite::Database db((dir / "new.db").string());
  EXPECT_EQ(db.execAndGet("PRAGMA application_id").getInt(), kApplicationId);
}

// deltann writes only into its own databases: another program's SQLite file and an empty file
// someone else created are refused, in both modes, and left exactly as they were.
TEST(Store, ForeignSqliteFileIsRefusedAndUntouched) {
  test::TempDir dir;
  const fs::path path = dir / "app.db";
  {
    SQLite::Database other(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    other.exec("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)");
    other.exec("INSERT INTO customers(name) VALUES('Ada')");
  }
  const std::string before = test::read_file(path);
  for (const StoreMode mode : {StoreMode::ReadWrite, StoreMode::ReadOnly}) {
    const std::string message = message_of<Error>([&] { Store store(path, mode); });
    EXPECT_TRUE(Contains(message, path.string()));
    EXPECT_TRUE(Contains(message, "another program"));
    EXPECT_TRUE(Contains(message, "customers"));
  }
  EXPECT_EQ(test::read_file(path), before);
  SQLite::Database check(path.string());
  EXPECT_FALSE(check.tableExists("meta"));
}

TEST(Store, EmptyFileIsRefusedAndUntouched) {
  test::TempDir dir;
  const fs::path path = test::write_file(dir / "empty.db", "");
  for (const StoreMode mode : {StoreMode::ReadWrite, StoreMode::ReadOnly}) {
    const std::string message = message_of<Error>([&] { Store store(path, mode); });
    EXPECT_TRUE(Contains(message, "empty file"));
  }
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST(Store, FolderIsRefused) {
  test::TempDir dir;
  fs::create_directories(dir / "campaign.db");
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { Store store(dir / "campaign.db"); }), "not a regular file"));
}

TEST(Store, ReadOnlyNeverCreatesNorWrites) {
  test::TempDir dir;
  const fs::path db = dir / "r.db";
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { Store store(db, StoreMode::ReadOnly); }), "does not exist"));
  EXPECT_FALSE(fs::exists(db));
  {
    Store store(db);
    Fixture f(store, 2);
    store.add_result(result(f.variant, f.images[0]));
  }
  Store store(db, StoreMode::ReadOnly);
  EXPECT_TRUE(store.read_only());
  EXPECT_EQ(store.results(1, false).size(), 1u);
  EXPECT_TRUE(Contains(message_of<Error>([&] { store.set_meta("k", "v"); }), "open read-only"));
  EXPECT_THROW(store.add_result(result(1, 2)), Error);
  EXPECT_THROW(store.ensure_model({0, "/x.onnx", "x", "{}"}), Error);
}

// A file of an older schema opened read-only is read through a migrated copy in memory: the file
// keeps its bytes and its version.
TEST(Store, ReadOnlyOpenOfAnOlderSchemaLeavesTheFileAsItWas) {
  test::TempDir dir;
  const fs::path db = dir / "v4.db";
  {
    SQLite::Database old(db.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    old.exec(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', '4');"
        "CREATE TABLE models(id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, "
        "spec_json TEXT NOT NULL, UNIQUE(sha256, path));"
        "INSERT INTO models VALUES(1, '/m.onnx', 'abc', '{}');"
        "CREATE TABLE variants(id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES "
        "models(id), env TEXT NOT NULL, framework TEXT NOT NULL, status TEXT NOT NULL, "
        "engine_version TEXT NOT NULL DEFAULT '', artifact_sha256 TEXT NOT NULL DEFAULT '', "
        "load_ns INTEGER, first_ns INTEGER, info_json TEXT NOT NULL DEFAULT '', compile_ns "
        "INTEGER, build_json TEXT NOT NULL DEFAULT '', UNIQUE(model_id, env));"
        "INSERT INTO variants(model_id, env, framework, status) VALUES(1, 'ort', 'ort', 'done');");
  }
  const std::string before = test::read_file(db);
  {
    Store store(db, StoreMode::ReadOnly);
    EXPECT_EQ(store.meta("schema_version"), std::to_string(kSchemaVersion));
    ASSERT_EQ(store.models().size(), 1u);
    EXPECT_EQ(store.models()[0].spec_source, "");
    EXPECT_EQ(store.variants().size(), 1u);
    EXPECT_TRUE(store.localizations().empty());
  }
  EXPECT_EQ(test::read_file(db), before);
  // Read-write, the same file is migrated in place: the models table loses UNIQUE(sha256, path),
  // so that the same file may now be recorded under a second spec.
  Store store(db);
  EXPECT_EQ(store.meta("schema_version"), std::to_string(kSchemaVersion));
  EXPECT_NE(store.ensure_model({0, "/m.onnx", "abc", "{\"other\":1}"}), 1);
  EXPECT_EQ(store.variants().at(0).model_id, 1);
  SQLite::Database check(db.string());
  EXPECT_EQ(check.execAndGet("PRAGMA application_id").getInt(), kApplicationId);
}

TEST(Store, UnopenablePathIsAnError) {
  test::TempDir dir;
  const fs::path path = dir / "missing-folder" / "r.db";
  EXPECT_TRUE(Contains(message_of<Error>([&] { Store store(path); }), path.string()));
}

// A version-1 file (before results.nonfinite, results.repeat_max_abs_diff and the build columns
// of variants) is migrated in
// place when opened, and its rows survive.
TEST(Store, VersionOneFileIsMigrated) {
  test::TempDir dir;
  const fs::path db = dir / "v1.db";
  {
    SQLite::Database old(db.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    old.exec(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', '1');"
        "CREATE TABLE results(variant_id INTEGER NOT NULL, image_id INTEGER NOT NULL, top_ids TEXT "
        "NOT NULL, top_scores BLOB NOT NULL, output BLOB, samples_ns BLOB NOT NULL, "
        "PRIMARY KEY(variant_id, image_id));"
        "CREATE TABLE variants(id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, env TEXT NOT "
        "NULL, framework TEXT NOT NULL, status TEXT NOT NULL, engine_version TEXT NOT NULL "
        "DEFAULT '', artifact_sha256 TEXT NOT NULL DEFAULT '', load_ns INTEGER, first_ns INTEGER, "
        "info_json TEXT NOT NULL DEFAULT '', UNIQUE(model_id, env));");
  }
  Store store(db);
  EXPECT_EQ(store.meta("schema_version"), std::to_string(kSchemaVersion));
  Fixture f(store, 1);
  StoredResult r = result(f.variant, f.images[0]);
  r.nonfinite = 3;
  r.repeat_max_abs_diff = 0.25;
  store.add_result(r);
  store.flush();
  const auto back = store.results(f.variant, false);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].nonfinite, 3);
  EXPECT_EQ(back[0].repeat_max_abs_diff, 0.25);
  store.record_build(f.variant, 1234, "{\"compile_s\": 1.2}");
  const auto variants = store.variants();
  ASSERT_EQ(variants.size(), 1u);
  EXPECT_EQ(variants[0].compile_ns, 1234);
  EXPECT_EQ(variants[0].build_json, "{\"compile_s\": 1.2}");
  // The localizations table came with the schema script: an old file can keep them too.
  EXPECT_EQ(store.add_localization({0, "ort", "opencv", "img0.jpg", "{}", ""}), 1);
}

TEST(Store, VersionFiveFileIsMigratedWithEveryUsableImageTimed) {
  test::TempDir dir;
  const fs::path db = dir / "v5.db";
  {
    SQLite::Database old(db.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    old.exec(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema_version', '5');"
        "INSERT INTO meta VALUES('timing', 'warmup=1, repeat=3');"
        "CREATE TABLE images(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, path TEXT NOT "
        "NULL, sha256 TEXT NOT NULL, label INTEGER, status TEXT NOT NULL, message TEXT NOT NULL);"
        "INSERT INTO images VALUES(1, 'a.jpg', '/d/a.jpg', 'sa', NULL, 'ok', '');"
        "INSERT INTO images VALUES(2, 'b.jpg', '/d/b.jpg', '', NULL, 'error', 'symlink loop');");
  }
  Store store(db);
  EXPECT_EQ(store.meta("schema_version"), std::to_string(kSchemaVersion));
  // Every usable image used to be timed, and the setting says so: a resumed run must ask for all.
  EXPECT_EQ(store.meta("timing"), "warmup=1, repeat=3, timing_images=all");
  const auto images = store.images();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_TRUE(images[0].timed);
  EXPECT_FALSE(images[1].timed);
  EXPECT_FALSE(images[0].duplicate_of.has_value());
}

TEST(Store, TimingSampleIsKeptAcrossImageUpdates) {
  test::TempDir dir;
  Store store(dir / "c.db");
  Fixture f(store, 3);
  store.add_to_timing_sample({f.images[0], f.images[2]});
  store.ensure_image(image("img0.jpg", 4));  // a later run updates the row
  std::vector<bool> timed;
  for (const auto& i : store.images()) timed.push_back(i.timed);
  EXPECT_EQ(timed, (std::vector<bool>{true, false, true}));
}

TEST(Store, DuplicateNamesItsFirstCopy) {
  test::TempDir dir;
  Store store(dir / "c.db");
  Fixture f(store, 1);
  StoredImage copy = image("copy.jpg");
  copy.status = ImageStatus::duplicate;
  copy.message = "same content as img0.jpg";
  copy.duplicate_of = f.images[0];
  const int64_t id = store.ensure_image(copy);
  const auto images = store.images();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[1].id, id);
  EXPECT_EQ(images[1].status, ImageStatus::duplicate);
  EXPECT_EQ(images[1].duplicate_of, f.images[0]);
}

TEST(Store, ImagesWithResultsAreThoseOfAnyVariant) {
  test::TempDir dir;
  Store store(dir / "c.db");
  Fixture f(store, 3);
  const int64_t other = store.ensure_variant(f.model, "opencv:opt=on", "opencv");
  store.add_result(result(f.variant, f.images[0]));
  store.add_result(result(other, f.images[2]));  // pending: still counted
  EXPECT_EQ(store.images_with_results(), (std::set<int64_t>{f.images[0], f.images[2]}));
}

TEST(Store, LocalizationsRoundTripInOrder) {
  test::TempDir dir;
  const fs::path db = dir / "loc.db";
  {
    Store store(db);
    EXPECT_TRUE(store.localizations().empty());
    store.add_localization({0, "ort:opt=disable", "opencv:opt=on", "images/a.jpg",
                            R"({"layers": [], "name": "it's \"quoted\" <b>"})", ""});
    store.add_localization({0, "ort", "reference", "images/b.jpg", "{}", ""});
  }
  Store store(db);
  const auto all = store.localizations();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, 1);
  EXPECT_EQ(all[0].env_a, "ort:opt=disable");
  EXPECT_EQ(all[0].env_b, "opencv:opt=on");
  EXPECT_EQ(all[0].image_key, "images/a.jpg");
  EXPECT_EQ(all[0].json, R"({"layers": [], "name": "it's \"quoted\" <b>"})");
  EXPECT_FALSE(all[0].recorded_at.empty());
  EXPECT_EQ(all[1].image_key, "images/b.jpg");
}

TEST(Store, ProvenanceRoundTripsAndIsReplaced) {
  test::TempDir dir;
  const fs::path db = dir / "p.db";
  {
    Store store(db);
    Fixture f(store, 2);
    EXPECT_TRUE(store.provenance().empty());
    store.set_provenance({{f.images[1], "a.jpg", "sha-a", "fog", "weather", 3, 7, 123, "{}"},
                          {f.images[0], "a.jpg", "sha-a", "original", "", {}, {}, {}, "{}"}});
    store.set_provenance(
        {{f.images[1], "a.jpg", "sha-a", "fog", "weather", 4, 7, 124, R"({"transform": "fog"})"}});
  }
  const Store store(db, StoreMode::ReadOnly);
  const auto rows = store.provenance();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].transform, "original");
  EXPECT_FALSE(rows[0].severity.has_value());
  EXPECT_FALSE(rows[0].seed.has_value());
  EXPECT_EQ(rows[1].source, "a.jpg");
  EXPECT_EQ(rows[1].family, "weather");
  EXPECT_EQ(rows[1].severity, 4);
  EXPECT_EQ(rows[1].seed, 7);
  EXPECT_EQ(rows[1].call_seed, 124);
  EXPECT_EQ(rows[1].record, R"({"transform": "fog"})");
}

// Version 8 added the image_provenance table; a version 7 file gets it empty, read-only (in the
// migrated copy) and read-write alike.
TEST(Store, VersionSevenFileGetsAnEmptyProvenanceTable) {
  test::TempDir dir;
  const fs::path db = dir / "v7.db";
  {
    Store store(db);
    Fixture f(store, 1);
  }
  {
    SQLite::Database old(db.string(), SQLite::OPEN_READWRITE);
    old.exec(
        "DROP TABLE image_provenance; UPDATE meta SET value = '7' WHERE key = "
        "'schema_version'");
  }
  {
    const Store store(db, StoreMode::ReadOnly);
    EXPECT_TRUE(store.provenance().empty());
  }
  {
    SQLite::Database old(db.string(), SQLite::OPEN_READONLY);
    EXPECT_EQ(old.execAndGet("SELECT value FROM meta WHERE key = 'schema_version'").getString(),
              "7");
  }
  Store store(db);
  EXPECT_EQ(store.meta("schema_version"), "8");
  store.set_provenance(
      {{store.images()[0].id, "s.jpg", "sha", "pixelate", "digital", 2, 0, 9, "{}"}});
  EXPECT_EQ(store.provenance().size(), 1u);
}

}  // namespace
}  // namespace deltann
