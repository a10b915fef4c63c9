#include "deltann/store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>

#include "deltann/error.h"

namespace deltann {
namespace {

// Version 8. Earlier versions: 1 lacked results.nonfinite and results.repeat_max_abs_diff, 2
// variants.compile_ns and variants.build_json, 3 the localizations table, 4 models.spec_source and
// models.recorded_at (and had one model per (sha256, path), so that a changed spec overwrote the
// spec of the results already stored), 5 images.duplicate_of and images.timed (every image was
// timed), 6 models.flops, 7 the image_provenance table. Vectors of numbers are stored as
// little-endian blobs (float32 scores and outputs, int64 nanosecond samples), so NaN and Inf
// survive; top-K ids as JSON text, readable in the sqlite3 shell. docs/STORAGE.md describes every
// column.
//
// A model's identity (sha256 + spec_json) is enforced by Store::ensure_model, not by a UNIQUE
// constraint: files migrated from version 4 may hold one model under two paths.
const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models(
  id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, spec_json TEXT NOT NULL,
  spec_source TEXT NOT NULL DEFAULT '', recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  flops INTEGER);
CREATE TABLE IF NOT EXISTS images(
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, path TEXT NOT NULL, sha256 TEXT NOT NULL,
  label INTEGER, status TEXT NOT NULL, message TEXT NOT NULL,
  duplicate_of INTEGER REFERENCES images(id), timed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS variants(
  id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES models(id), env TEXT NOT NULL,
  framework TEXT NOT NULL, status TEXT NOT NULL, engine_version TEXT NOT NULL DEFAULT '',
  artifact_sha256 TEXT NOT NULL DEFAULT '', load_ns INTEGER, first_ns INTEGER,
  info_json TEXT NOT NULL DEFAULT '', compile_ns INTEGER, build_json TEXT NOT NULL DEFAULT '',
  UNIQUE(model_id, env));
CREATE TABLE IF NOT EXISTS results(
  variant_id INTEGER NOT NULL REFERENCES variants(id), image_id INTEGER NOT NULL REFERENCES images(id),
  top_ids TEXT NOT NULL, top_scores BLOB NOT NULL, output BLOB, samples_ns BLOB NOT NULL,
  nonfinite INTEGER NOT NULL DEFAULT 0, repeat_max_abs_diff REAL,
  PRIMARY KEY(variant_id, image_id));
CREATE TABLE IF NOT EXISTS failures(
  id INTEGER PRIMARY KEY, variant_id INTEGER NOT NULL REFERENCES variants(id),
  image_id INTEGER REFERENCES images(id), stage TEXT NOT NULL, symptom TEXT NOT NULL,
  message TEXT NOT NULL, recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS localizations(
  id INTEGER PRIMARY KEY, env_a TEXT NOT NULL, env_b TEXT NOT NULL, image_key TEXT NOT NULL,
  json TEXT NOT NULL, recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS image_provenance(
  image_id INTEGER PRIMARY KEY REFERENCES images(id), source TEXT NOT NULL,
  source_sha256 TEXT NOT NULL, transform TEXT NOT NULL, family TEXT NOT NULL DEFAULT '',
  severity INTEGER, seed INTEGER, call_seed INTEGER, record TEXT NOT NULL);
)sql";

// A blob column into a vector, reusing the vector's buffer when it is large enough.
template <typename T>
void assign_blob(std::vector<T>& values, const SQLite::Column& column) {
  values.resize(static_cast<size_t>(column.getBytes()) / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), column.getBlob(), values.size() * sizeof(T));
}

// An empty vector becomes NULL where the column allows "not stored" (`nullable`), otherwise a
// zero-length blob.
template <typename T>
void bind_blob(SQLite::Statement& s, int index, const std::vector<T>& values, bool nullable) {
  static const char kNothing = 0;
  if (values.empty() && nullable)
    s.bind(index);
  else if (values.empty())
    s.bind(index, &kNothing, 0);
  else
    s.bind(index, values.data(), static_cast<int>(values.size() * sizeof(T)));
}

// The top_ids column, a JSON list of integers as write_results stores it ("[1,2,3]"). Read by
// hand because it runs once per stored result (a million times for a large campaign, where the
// JSON library cost a third of Store::results); text of any other shape goes to the JSON library,
// which reads every valid list and throws on malformed text.
std::vector<int> parse_top_ids(const SQLite::Column& column) {
  const char* p = column.getText();
  const char* const end = p + column.getBytes();
  const auto fallback = [&] {
    return nlohmann::json::parse(column.getText(), end).get<std::vector<int>>();
  };
  const auto skip_space = [&] {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  };
  std::vector<int> ids;
  // Allocated once at its final size: kept for every result of a campaign, a list grown by
  // push_back would hold up to twice the memory it needs.
  ids.reserve(static_cast<size_t>(std::count(p, end, ',')) + 1);
  skip_space();
  if (p == end || *p != '[') return fallback();
  ++p;
  skip_space();
  if (p < end && *p == ']') {
    ++p;
  } else {
    while (true) {
      int id = 0;
      const auto [next, ec] = std::from_chars(p, end, id);
      if (ec != std::errc()) return fallback();
      ids.push_back(id);
      p = next;
      skip_space();
      if (p < end && *p == ',') {
        ++p;
        skip_space();
      } else if (p < end && *p == ']') {
        ++p;
        break;
      } else {
        return fallback();
      }
    }
  }
  skip_space();
  return p == end ? ids : fallback();
}

std::optional<int64_t> optional_int(const SQLite::Column& c) {
  return c.isNull() ? std::nullopt : std::optional<int64_t>(c.getInt64());
}

void bind_optional(SQLite::Statement& q, int index, const std::optional<int64_t>& value) {
  if (value)
    q.bind(index, *value);
  else
    q.bind(index);  // NULL
}

// The names of a file's tables, for telling a deltann database from another program's.
std::vector<std::string> table_names(SQLite::Database& db) {
  std::vector<std::string> names;
  SQLite::Statement q(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  while (q.executeStep()) names.push_back(q.getColumn(0).getString());
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < 8; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > 8) text += ", ... (" + std::to_string(names.size()) + " tables)";
  return text;
}

// The value a kind-holding column holds, read by `parse`. A name this build does not know (a
// database edited by hand, or written by a newer deltann) is an Error naming the file and the
// column.
template <class Kind>
Kind read_kind(const SQLite::Column& column, Kind (*parse)(std::string_view),
               const std::filesystem::path& db, const char* name) {
  try {
    return parse(column.getString());
  } catch (const Error& e) {
    throw Error(db.string() + ": " + name + ": " + e.what());
  }
}

}  // namespace

Store::Store(const std::filesystem::path& path, StoreMode mode, int batch_size)
    : path_(path), mode_(mode), batch_size_(batch_size) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status)) {
    if (!std::filesystem::is_regular_file(status))
      throw Error(path.string() + " is not a regular file, so it cannot be a campaign database");
    open_existing();
  } else if (mode == StoreMode::ReadOnly) {
    throw Error("database " + path.string() + " does not exist");
  } else {
    create();
  }
}

void Store::create() {
  try {
    db_ = std::make_unique<SQLite::Database>(path_.string(),
                                             SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db_->setBusyTimeout(10000);
    db_->exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    db_->exec("PRAGMA journal_mode=WAL");
    db_->exec("PRAGMA synchronous=NORMAL");
    db_->exec("PRAGMA foreign_keys=ON");
    SQLite::Transaction tx(*db_);
    db_->exec(kSchema);
    tx.commit();
  } catch (const SQLite::Exception& e) {
    throw Error(path_.string() + ": cannot create a campaign database (" + e.what() + ")");
  }
  set_meta("schema_version", std::to_string(kSchemaVersion));
}

// An existing file is used only when it is one of deltann's: marked with kApplicationId, or (made
// before the mark existed) holding deltann's meta table with a schema version. deltann never adds
// its tables to another program's file, nor claims an empty file someone else created.
void Store::open_existing() {
  const std::string where = path_.string();
  std::error_code size_error;
  if (std::filesystem::file_size(path_, size_error) == 0 && !size_error)
    throw Error(where +
                " is an empty file that deltann did not create; deltann writes only into its own "
                "databases: remove the file or give another --db");
  std::optional<std::string> version;
  try {
    const bool write = mode_ == StoreMode::ReadWrite;
    db_ = std::make_unique<SQLite::Database>(
        where, write ? SQLite::OPEN_READWRITE : SQLite::OPEN_READONLY);
    db_->setBusyTimeout(10000);
    const auto tables = table_names(*db_);
    const int32_t application_id = db_->execAndGet("PRAGMA application_id").getInt();
    const bool has_meta = std::find(tables.begin(), tables.end(), "meta") != tables.end();
    if (has_meta) version = meta("schema_version");
    if (application_id != kApplicationId && !(has_meta && version))
      throw Error(where + " is an SQLite database of another program (" +
                  (tables.empty() ? std::string("no tables") : "tables: " + joined(tables)) +
                  ") without deltann's metadata; deltann writes only into its own databases: give "
                  "another --db");
    if (write) {
      db_->exec("PRAGMA journal_mode=WAL");
      db_->exec("PRAGMA synchronous=NORMAL");
      db_->exec("PRAGMA foreign_keys=ON");
    }
  } catch (const SQLite::Exception& e) {
    throw Error(where + ": not a deltann database (" + e.what() + ")");
  }
  if (!version || version->empty() || version->size() > 6 ||
      version->find_first_not_of("0123456789") != std::string::npos)
    throw Error(where + " has an unreadable schema version '" + version.value_or("") + "'");
  const int found = std::stoi(*version);
  if (found > kSchemaVersion)
    throw Error(where + " has schema version " + *version + "; this deltann reads up to " +
                std::to_string(kSchemaVersion));
  if (found < kSchemaVersion) {
    if (mode_ == StoreMode::ReadOnly) {
      // Read as if migrated, without touching the file: a private copy is brought up to date.
      // SQLite's unnamed temporary database ("") lives in its page cache and spills to a file
      // that is deleted on close, so a large campaign's copy does not stay in memory as a
      // ":memory:" database would (the whole file, on top of the analysis).
      auto copy = std::make_unique<SQLite::Database>("", SQLite::OPEN_READWRITE);
      try {
        copy->backup(where.c_str(), SQLite::Database::Load);
      } catch (const SQLite::Exception& e) {
        throw Error(where + ": cannot read schema version " + *version + " (" + e.what() + ")");
      }
      db_ = std::move(copy);
    }
    migrate(found);
  }
}

void Store::require_writable(const char* what) const {
  if (mode_ == StoreMode::ReadOnly)
    throw Error(path_.string() + " is open read-only; cannot " + what);
}

// Each step brings a file from one version to the next inside one transaction, so a file is never
// left half-migrated. Foreign keys are off while the models table is rebuilt (SQLite's procedure
// for changing a table's constraints) and checked before the commit.
void Store::migrate(int from) {
  try {
    db_->exec("PRAGMA foreign_keys=OFF");
    SQLite::Transaction tx(*db_);
    // Tables the old file lacked get their current form; each column is added only where it is
    // missing.
    db_->exec(kSchema);
    const auto add_column = [&](const char* table, const char* column, const char* declaration) {
      SQLite::Statement columns(*db_, std::string("PRAGMA table_info(") + table + ")");
      while (columns.executeStep())
        if (columns.getColumn(1).getString() == column) return;
      db_->exec(std::string("ALTER TABLE ") + table + " ADD COLUMN " + column + " " + declaration);
    };
    if (from < 2) {
      add_column("results", "nonfinite", "INTEGER NOT NULL DEFAULT 0");
      add_column("results", "repeat_max_abs_diff", "REAL");
    }
    if (from < 3) {
      add_column("variants", "compile_ns", "INTEGER");
      add_column("variants", "build_json", "TEXT NOT NULL DEFAULT ''");
    }
    if (from < 5) {
      // Drops UNIQUE(sha256, path): a model is identified by its content and spec.
      db_->exec(
          "CREATE TABLE models_v5(id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT "
          "NULL, spec_json TEXT NOT NULL, spec_source TEXT NOT NULL DEFAULT '', recorded_at TEXT "
          "NOT NULL DEFAULT CURRENT_TIMESTAMP)");
      db_->exec(
          "INSERT INTO models_v5(id, path, sha256, spec_json) SELECT id, path, sha256, spec_json "
          "FROM models");
      db_->exec("DROP TABLE models");
      db_->exec("ALTER TABLE models_v5 RENAME TO models");
    }
    if (from < 6) {
      add_column("images", "duplicate_of", "INTEGER REFERENCES images(id)");
      add_column("images", "timed", "INTEGER NOT NULL DEFAULT 0");
      // Before version 6 every usable image was timed with the stored warm-up and repeats: the
      // sample was the whole dataset, which the timing setting now says, so that a resumed run
      // must ask for the same (docs/STORAGE.md).
      db_->exec("UPDATE images SET timed = 1 WHERE status = 'ok'");
      db_->exec(
          "UPDATE meta SET value = value || ', timing_images=all' WHERE key = 'timing' AND "
          "value NOT LIKE '%timing_images=%'");
    }
    if (from < 7) add_column("models", "flops", "INTEGER");  // unknown for the stored models
    // Version 8's image_provenance table comes with kSchema above, empty: older campaigns did not
    // record where their images came from.
    if (db_->execAndGet("SELECT count(*) FROM pragma_foreign_key_check").getInt() != 0)
      throw Error("foreign keys broken by the migration");
    if (mode_ == StoreMode::ReadWrite)
      db_->exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    SQLite::Statement q(*db_, "UPDATE meta SET value = ? WHERE key = 'schema_version'");
    q.bind(1, std::to_string(kSchemaVersion));
    q.exec();
    tx.commit();
    db_->exec("PRAGMA foreign_keys=ON");
  } catch (const std::exception& e) {
    throw Error(path_.string() + ": cannot migrate from schema version " + std::to_string(from) +
                " (" + e.what() + ")");
  }
}

Store::~Store() {
  try {
    flush();
  } catch (...) {
    // A destructor must not throw; the batch is lost like any batch in flight at a kill.
  }
}

std::optional<std::string> Store::meta(const std::string& key) const {
  SQLite::Statement q(*db_, "SELECT value FROM meta WHERE key = ?");
  q.bind(1, key);
  if (q.executeStep()) return q.getColumn(0).getString();
  return std::nullopt;
}

std::map<std::string, std::string> Store::all_meta() const {
  std::map<std::string, std::string> all;
  SQLite::Statement q(*db_, "SELECT key, value FROM meta");
  while (q.executeStep()) all[q.getColumn(0).getString()] = q.getColumn(1).getString();
  return all;
}

void Store::set_meta(const std::string& key, const std::string& value) {
  require_writable("change its metadata");
  SQLite::Statement q(*db_,
                      "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET "
                      "value = excluded.value");
  q.bind(1, key);
  q.bind(2, value);
  q.exec();
}

int64_t Store::ensure_model(const StoredModel& model) {
  require_writable("record a model");
  SQLite::Statement find(*db_,
                         "SELECT id FROM models WHERE sha256 = ? AND spec_json = ? ORDER BY id");
  find.bind(1, model.sha256);
  find.bind(2, model.spec_json);
  if (find.executeStep()) {
    const int64_t id = find.getColumn(0).getInt64();
    SQLite::Statement update(
        *db_,
        "UPDATE models SET path = ?, spec_source = ?, flops = coalesce(?, flops) WHERE id = ?");
    update.bind(1, model.path);
    update.bind(2, model.spec_source);
    bind_optional(update, 3, model.flops);
    update.bind(4, id);
    update.exec();
    return id;
  }
  SQLite::Statement insert(
      *db_,
      "INSERT INTO models(path, sha256, spec_json, spec_source, flops) VALUES(?, ?, ?, ?, ?)");
  insert.bind(1, model.path);
  insert.bind(2, model.sha256);
  insert.bind(3, model.spec_json);
  insert.bind(4, model.spec_source);
  bind_optional(insert, 5, model.flops);
  insert.exec();
  return db_->getLastInsertRowid();
}

int64_t Store::ensure_image(const StoredImage& image) {
  require_writable("record an image");
  SQLite::Statement insert(*db_,
                           "INSERT INTO images(key, path, sha256, label, status, message, "
                           "duplicate_of) VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE "
                           "SET path = excluded.path, sha256 = excluded.sha256, label = "
                           "excluded.label, status = excluded.status, message = excluded.message, "
                           "duplicate_of = excluded.duplicate_of");
  insert.bind(1, image.key);
  insert.bind(2, image.path);
  insert.bind(3, image.sha256);
  if (image.label)
    insert.bind(4, *image.label);
  else
    insert.bind(4);
  insert.bind(5, std::string(to_string(image.status)));
  insert.bind(6, image.message);
  if (image.duplicate_of)
    insert.bind(7, *image.duplicate_of);
  else
    insert.bind(7);
  insert.exec();
  SQLite::Statement q(*db_, "SELECT id FROM images WHERE key = ?");
  q.bind(1, image.key);
  q.executeStep();
  return q.getColumn(0).getInt64();
}

void Store::add_to_timing_sample(const std::vector<int64_t>& image_ids) {
  require_writable("record the timing sample");
  SQLite::Transaction tx(*db_);
  SQLite::Statement q(*db_, "UPDATE images SET timed = 1 WHERE id = ?");
  for (const int64_t id : image_ids) {
    q.bind(1, id);
    q.exec();
    q.reset();
  }
  tx.commit();
}

int64_t Store::ensure_variant(int64_t model_id, const std::string& env,
                              const std::string& framework) {
  require_writable("record a variant");
  SQLite::Statement insert(*db_,
                           "INSERT OR IGNORE INTO variants(model_id, env, framework, status) "
                           "VALUES(?, ?, ?, 'pending')");
  insert.bind(1, model_id);
  insert.bind(2, env);
  insert.bind(3, framework);
  insert.exec();
  SQLite::Statement q(*db_, "SELECT id FROM variants WHERE model_id = ? AND env = ?");
  q.bind(1, model_id);
  q.bind(2, env);
  q.executeStep();
  return q.getColumn(0).getInt64();
}

void Store::set_variant_status(int64_t variant_id, VariantStatus status) {
  require_writable("change a variant");
  flush();  // a status must never claim more than what is committed
  SQLite::Statement q(*db_, "UPDATE variants SET status = ? WHERE id = ?");
  q.bind(1, std::string(to_string(status)));
  q.bind(2, variant_id);
  q.exec();
}

void Store::record_load(int64_t variant_id, const std::string& engine_version,
                        const std::string& artifact_sha256, int64_t load_ns,
                        const std::string& info_json) {
  require_writable("record a load");
  SQLite::Statement q(*db_,
                      "UPDATE variants SET engine_version = ?, artifact_sha256 = ?, load_ns = ?, "
                      "info_json = ? WHERE id = ?");
  q.bind(1, engine_version);
  q.bind(2, artifact_sha256);
  q.bind(3, load_ns);
  q.bind(4, info_json);
  q.bind(5, variant_id);
  q.exec();
}

void Store::record_build(int64_t variant_id, int64_t compile_ns, const std::string& build_json) {
  require_writable("record a build");
  SQLite::Statement q(*db_, "UPDATE variants SET compile_ns = ?, build_json = ? WHERE id = ?");
  q.bind(1, compile_ns);
  q.bind(2, build_json);
  q.bind(3, variant_id);
  q.exec();
}

void Store::record_first_inference(int64_t variant_id, int64_t first_ns) {
  require_writable("record a time");
  SQLite::Statement q(*db_, "UPDATE variants SET first_ns = ? WHERE id = ?");
  q.bind(1, first_ns);
  q.bind(2, variant_id);
  q.exec();
}

void Store::record_failure(const StoredFailure& f) {
  require_writable("record a failure");
  flush();
  SQLite::Statement q(
      *db_,
      "INSERT INTO failures(variant_id, image_id, stage, symptom, message) VALUES(?, ?, ?, ?, ?)");
  q.bind(1, f.variant_id);
  if (f.image_id)
    q.bind(2, *f.image_id);
  else
    q.bind(2);
  q.bind(3, std::string(to_string(f.stage)));
  q.bind(4, std::string(to_string(f.symptom)));
  q.bind(5, f.message);
  q.exec();
}

void Store::clear_failures(int64_t variant_id) {
  require_writable("clear failures");
  SQLite::Statement q(*db_, "DELETE FROM failures WHERE variant_id = ?");
  q.bind(1, variant_id);
  q.exec();
}

void Store::add_result(StoredResult result) {
  require_writable("store a result");
  pending_.push_back(std::move(result));
  if (static_cast<int>(pending_.size()) >= batch_size_) flush();
}

void Store::flush() { flush_pending(); }

void Store::flush_pending() const {
  if (pending_.empty()) return;
  // The batch leaves the buffer whatever happens, so one bad row cannot block every later write.
  const std::vector<StoredResult> batch = std::move(pending_);
  pending_.clear();
  try {
    write_results(batch);
  } catch (const SQLite::Exception& e) {
    throw Error(path_.string() + ": cannot store " + std::to_string(batch.size()) + " results (" +
                e.what() + ")");
  }
}

void Store::write_results(const std::vector<StoredResult>& batch) const {
  SQLite::Transaction tx(*db_);
  SQLite::Statement q(*db_,
                      "INSERT OR REPLACE INTO results(variant_id, image_id, top_ids, top_scores, "
                      "output, samples_ns, nonfinite, repeat_max_abs_diff) "
                      "VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  for (const auto& r : batch) {
    q.bind(1, r.variant_id);
    q.bind(2, r.image_id);
    q.bind(3, nlohmann::json(r.top_ids).dump());
    bind_blob(q, 4, r.top_scores, false);
    bind_blob(q, 5, r.output, true);
    bind_blob(q, 6, r.samples_ns, false);
    q.bind(7, r.nonfinite);
    if (r.repeat_max_abs_diff)
      q.bind(8, *r.repeat_max_abs_diff);
    else
      q.bind(8);
    q.exec();
    q.reset();
  }
  tx.commit();
}

std::set<int64_t> Store::completed_images(int64_t variant_id, bool include_failed) const {
  flush_pending();
  std::set<int64_t> done;
  SQLite::Statement q(*db_, "SELECT image_id FROM results WHERE variant_id = ?");
  q.bind(1, variant_id);
  while (q.executeStep()) done.insert(q.getColumn(0).getInt64());
  if (include_failed) {
    SQLite::Statement f(
        *db_, "SELECT image_id FROM failures WHERE variant_id = ? AND image_id IS NOT NULL");
    f.bind(1, variant_id);
    while (f.executeStep()) done.insert(f.getColumn(0).getInt64());
  }
  return done;
}

std::vector<StoredModel> Store::models() const {
  std::vector<StoredModel> out;
  SQLite::Statement q(*db_,
                      "SELECT id, path, sha256, spec_json, spec_source, flops FROM models "
                      "ORDER BY id");
  while (q.executeStep())
    out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                   q.getColumn(2).getString(), q.getColumn(3).getString(),
                   q.getColumn(4).getString(), optional_int(q.getColumn(5))});
  return out;
}

std::vector<StoredImage> Store::images() const {
  std::vector<StoredImage> out;
  SQLite::Statement q(
      *db_,
      "SELECT id, key, path, sha256, label, status, message, duplicate_of, timed FROM images "
      "ORDER BY id");
  while (q.executeStep()) {
    StoredImage i;
    i.id = q.getColumn(0).getInt64();
    i.key = q.getColumn(1).getString();
    i.path = q.getColumn(2).getString();
    i.sha256 = q.getColumn(3).getString();
    if (!q.getColumn(4).isNull()) i.label = q.getColumn(4).getInt();
    i.status = read_kind(q.getColumn(5), parse_image_status, path_, "images.status");
    i.message = q.getColumn(6).getString();
    i.duplicate_of = optional_int(q.getColumn(7));
    i.timed = q.getColumn(8).getInt() != 0;
    out.push_back(std::move(i));
  }
  return out;
}

std::vector<StoredVariant> Store::variants() const {
  flush_pending();
  std::vector<StoredVariant> out;
  SQLite::Statement q(
      *db_,
      "SELECT id, model_id, env, framework, status, engine_version, artifact_sha256, "
      "load_ns, first_ns, info_json, compile_ns, build_json FROM variants ORDER BY id");
  while (q.executeStep()) {
    StoredVariant v;
    v.id = q.getColumn(0).getInt64();
    v.model_id = q.getColumn(1).getInt64();
    v.env = q.getColumn(2).getString();
    v.framework = q.getColumn(3).getString();
    v.status = read_kind(q.getColumn(4), parse_variant_status, path_, "variants.status");
    v.engine_version = q.getColumn(5).getString();
    v.artifact_sha256 = q.getColumn(6).getString();
    v.load_ns = optional_int(q.getColumn(7));
    v.first_ns = optional_int(q.getColumn(8));
    v.info_json = q.getColumn(9).getString();
    v.compile_ns = optional_int(q.getColumn(10));
    v.build_json = q.getColumn(11).getString();
    out.push_back(std::move(v));
  }
  return out;
}

int64_t Store::add_localization(const StoredLocalization& l) {
  require_writable("store a localisation");
  flush();
  SQLite::Statement q(*db_,
                      "INSERT INTO localizations(env_a, env_b, image_key, json) VALUES (?,?,?,?)");
  q.bind(1, l.env_a);
  q.bind(2, l.env_b);
  q.bind(3, l.image_key);
  q.bind(4, l.json);
  q.exec();
  return db_->getLastInsertRowid();
}

std::vector<StoredLocalization> Store::localizations() const {
  flush_pending();
  std::vector<StoredLocalization> out;
  SQLite::Statement q(*db_,
                      "SELECT id, env_a, env_b, image_key, json, recorded_at FROM localizations "
                      "ORDER BY id");
  while (q.executeStep())
    out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                   q.getColumn(2).getString(), q.getColumn(3).getString(),
                   q.getColumn(4).getString(), q.getColumn(5).getString()});
  return out;
}

void Store::set_provenance(const std::vector<StoredProvenance>& rows) {
  require_writable("record provenance");
  SQLite::Transaction tx(*db_);
  SQLite::Statement q(*db_,
                      "INSERT OR REPLACE INTO image_provenance(image_id, source, source_sha256, "
                      "transform, family, severity, seed, call_seed, record) VALUES "
                      "(?,?,?,?,?,?,?,?,?)");
  for (const auto& row : rows) {
    q.bind(1, row.image_id);
    q.bind(2, row.source);
    q.bind(3, row.source_sha256);
    q.bind(4, row.transform);
    q.bind(5, row.family);
    bind_optional(q, 6, row.severity ? std::optional<int64_t>(*row.severity) : std::nullopt);
    bind_optional(q, 7, row.seed);
    bind_optional(q, 8, row.call_seed);
    q.bind(9, row.record);
    q.exec();
    q.reset();
  }
  tx.commit();
}

std::vector<StoredProvenance> Store::provenance() const {
  std::vector<StoredProvenance> rows;
  SQLite::Statement q(*db_,
                      "SELECT image_id, source, source_sha256, transform, family, severity, seed, "
                      "call_seed, record FROM image_provenance ORDER BY image_id");
  while (q.executeStep()) {
    StoredProvenance row;
    row.image_id = q.getColumn(0).getInt64();
    row.source = q.getColumn(1).getString();
    row.source_sha256 = q.getColumn(2).getString();
    row.transform = q.getColumn(3).getString();
    row.family = q.getColumn(4).getString();
    if (const auto severity = optional_int(q.getColumn(5)))
      row.severity = static_cast<int>(*severity);
    row.seed = optional_int(q.getColumn(6));
    row.call_seed = optional_int(q.getColumn(7));
    row.record = q.getColumn(8).getString();
    rows.push_back(std::move(row));
  }
  return rows;
}

bool Store::has_results() const {
  if (!pending_.empty()) return true;
  return db_->execAndGet("SELECT EXISTS(SELECT 1 FROM results)").getInt() != 0;
}

std::set<int64_t> Store::images_with_results() const {
  flush_pending();
  std::set<int64_t> ids;
  SQLite::Statement q(*db_, "SELECT DISTINCT image_id FROM results");
  while (q.executeStep()) ids.insert(q.getColumn(0).getInt64());
  return ids;
}

std::vector<StoredFailure> Store::failures() const {
  flush_pending();
  std::vector<StoredFailure> out;
  SQLite::Statement q(
      *db_, "SELECT variant_id, image_id, stage, symptom, message FROM failures ORDER BY id");
  while (q.executeStep())
    out.push_back({q.getColumn(0).getInt64(), optional_int(q.getColumn(1)),
                   read_kind(q.getColumn(2), parse_failure_stage, path_, "failures.stage"),
                   read_kind(q.getColumn(3), parse_failure_symptom, path_, "failures.symptom"),
                   q.getColumn(4).getString()});
  return out;
}

std::vector<StoredResult> Store::results(int64_t variant_id, bool with_output) const {
  std::vector<StoredResult> out;
  out.reserve(static_cast<size_t>(result_count(variant_id)));
  for_each_result(variant_id, with_output, [&](StoredResult& r) { out.push_back(std::move(r)); });
  return out;
}

int64_t Store::result_count(int64_t variant_id) const {
  flush_pending();
  SQLite::Statement q(*db_, "SELECT COUNT(*) FROM results WHERE variant_id = ?");
  q.bind(1, variant_id);
  return q.executeStep() ? q.getColumn(0).getInt64() : 0;
}

void Store::for_each_result(int64_t variant_id, bool with_output,
                            const std::function<void(StoredResult&)>& visit) const {
  flush_pending();
  SQLite::Statement q(*db_, with_output
                                ? "SELECT image_id, top_ids, top_scores, samples_ns, nonfinite, "
                                  "repeat_max_abs_diff, output FROM results WHERE variant_id = ? "
                                  "ORDER BY image_id"
                                : "SELECT image_id, top_ids, top_scores, samples_ns, nonfinite, "
                                  "repeat_max_abs_diff FROM results WHERE variant_id = ? "
                                  "ORDER BY image_id");
  q.bind(1, variant_id);
  // One row object for the whole walk: a vector the visitor leaves in place (moved-from or not)
  // keeps its buffer for the next row.
  StoredResult r;
  while (q.executeStep()) {
    r.variant_id = variant_id;
    r.image_id = q.getColumn(0).getInt64();
    r.top_ids = parse_top_ids(q.getColumn(1));
    assign_blob(r.top_scores, q.getColumn(2));
    assign_blob(r.samples_ns, q.getColumn(3));
    r.nonfinite = q.getColumn(4).getInt();
    r.repeat_max_abs_diff.reset();
    if (!q.getColumn(5).isNull()) r.repeat_max_abs_diff = q.getColumn(5).getDouble();
    if (with_output)
      assign_blob(r.output, q.getColumn(6));
    else
      r.output.clear();
    visit(r);
  }
}

}  // namespace deltann
