#include "deltann/shard_merge.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <unistd.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "deltann/host_info.h"
#include "deltann/store.h"

namespace deltann {
namespace fs = std::filesystem;

namespace {

// Meta keys that describe one shard, not the campaign: kept per shard as `shard:<I>`.
const std::set<std::string> kShardMetaKeys = {
    "plan_hash",         "shard", "shard_group", "node", "shard_started_at",
    "shard_finished_at", "host",  "created_at"};

// A variant's merged status is the worst of its shards': a variant that failed on one block of
// images failed, one skipped on a node that lacks its hardware did not complete.
std::string status_rank(const std::string& column) {
  return "(CASE " + column +
         " WHEN 'failed' THEN 4 WHEN 'skipped' THEN 3 WHEN 'running' THEN 2 WHEN 'pending' THEN 1 "
         "ELSE 0 END)";
}

// A path as an SQLite URI, so that the shard is attached read-only.
std::string read_only_uri(const fs::path& path) {
  std::string uri = "file:";
  for (const char c : fs::absolute(path).string()) {
    if (c == '%' || c == '?' || c == '#') {
      static const char* hex = "0123456789abcdef";
      uri += '%';
      uri += hex[(c >> 4) & 0xf];
      uri += hex[c & 0xf];
    } else {
      uri += c;
    }
  }
  return uri + "?mode=ro";
}

// The shard's meta, after checking that it is a database of this plan's shard `index` with this
// deltann's schema.
std::map<std::string, std::string> checked_meta(const ShardDatabase& shard,
                                                const std::string& plan_hash) {
  const std::string name = shard.path.string();
  std::map<std::string, std::string> meta;
  try {
    SQLite::Database db(name, SQLite::OPEN_READONLY);
    if (db.execAndGet("PRAGMA application_id").getInt() != kApplicationId)
      throw Error(name + " is not a deltann database");
    SQLite::Statement q(db, "SELECT key, value FROM meta");
    while (q.executeStep()) meta[q.getColumn(0).getString()] = q.getColumn(1).getString();
  } catch (const SQLite::Exception& e) {
    throw Error(name + " is not a readable deltann database (" + e.what() + ")");
  }
  if (meta["schema_version"] != std::to_string(kSchemaVersion))
    throw Error(name + " has schema version " + meta["schema_version"] + "; this deltann writes " +
                std::to_string(kSchemaVersion) +
                ": run every shard and the merge with one deltann");
  if (meta["plan_hash"] != plan_hash)
    throw ForeignShardError(name + " belongs to another plan (plan_hash " +
                            (meta["plan_hash"].empty() ? std::string("none") : meta["plan_hash"]) +
                            ", this plan " + plan_hash + ")");
  if (meta["shard"] != std::to_string(shard.index))
    throw Error(name + " holds shard " + meta["shard"] + ", not shard " +
                std::to_string(shard.index));
  return meta;
}

void exec(SQLite::Database& db, const std::string& sql) { db.exec(sql); }

// The first row of `sql`, as text columns joined by " / ", or "" when there is none.
std::string first_row(SQLite::Database& db, const std::string& sql) {
  SQLite::Statement q(db, sql);
  if (!q.executeStep()) return "";
  std::string row;
  for (int i = 0; i < q.getColumnCount(); ++i) row += (i ? " / " : "") + q.getColumn(i).getString();
  return row;
}

// The machine of each block of a variant (variants.info_json's `host`, recorded by the process
// that ran it): where this shard's block of an already merged variant ran on another machine, the
// merged variant lists it in `other_hosts`, so that results mixing hardware are never taken for
// one machine's. A load reply that cannot be read is left as it is.
void merge_machines(SQLite::Database& db) {
  using nlohmann::json;
  SQLite::Statement q(db,
                      "SELECT v.id, v.info_json, s.info_json FROM main.variants v JOIN model_map "
                      "mm ON mm.new = v.model_id JOIN shard.variants s ON s.model_id = mm.old AND "
                      "s.env = v.env WHERE v.info_json != '' AND s.info_json != ''");
  std::vector<std::pair<int64_t, std::string>> updates;
  while (q.executeStep()) {
    json merged = json::parse(q.getColumn(1).getString(), nullptr, false);
    const json block = json::parse(q.getColumn(2).getString(), nullptr, false);
    if (!merged.is_object() || !block.is_object() || !merged.contains("host") ||
        !block.contains("host"))
      continue;
    try {
      const HostIdentity here = host_identity_from_json(block.at("host"));
      bool known = host_identity_from_json(merged.at("host")).same_machine(here);
      for (const auto& other : merged.value("other_hosts", json::array()))
        known = known || host_identity_from_json(other).same_machine(here);
      if (known) continue;
      merged["other_hosts"].push_back(block.at("host"));
      updates.emplace_back(q.getColumn(0).getInt64(), merged.dump());
    } catch (const Error&) {
      continue;  // not a machine this deltann can read: kept as stored
    }
  }
  for (const auto& [id, info] : updates) {
    SQLite::Statement update(db, "UPDATE main.variants SET info_json = ? WHERE id = ?");
    update.bind(1, info);
    update.bind(2, id);
    update.exec();
  }
}

// Copies the attached shard into the main database, in the caller's transaction.
void merge_attached(SQLite::Database& db, const ShardDatabase& shard, MergeOutcome& outcome) {
  const std::string name = shard.path.filename().string();
  exec(db, "DELETE FROM model_map; DELETE FROM image_map; DELETE FROM variant_map");
  exec(db,
       "INSERT INTO main.models(path, sha256, spec_json, spec_source, recorded_at, flops) "
       "SELECT path, sha256, spec_json, spec_source, recorded_at, flops FROM shard.models s "
       "WHERE NOT EXISTS (SELECT 1 FROM main.models m WHERE m.sha256 = s.sha256 AND "
       "m.spec_json = s.spec_json) ORDER BY id");
  exec(db,
       "INSERT INTO model_map SELECT s.id, (SELECT min(m.id) FROM main.models m WHERE "
       "m.sha256 = s.sha256 AND m.spec_json = s.spec_json) FROM shard.models s");

  if (const std::string clash = first_row(
          db,
          "SELECT s.key, s.status || ' ' || s.sha256, m.status || ' ' || m.sha256 FROM "
          "shard.images s JOIN main.images m ON m.key = s.key WHERE s.sha256 != m.sha256 OR "
          "s.status != m.status OR s.label IS NOT m.label");
      !clash.empty())
    throw Error(name +
                ": an image differs from the one merged from an earlier shard (key / "
                "this shard / earlier): " +
                clash);
  exec(db,
       "INSERT INTO main.images(key, path, sha256, label, status, message, timed) SELECT key, "
       "path, sha256, label, status, message, timed FROM shard.images s WHERE NOT EXISTS "
       "(SELECT 1 FROM main.images m WHERE m.key = s.key) ORDER BY id");
  exec(db,
       "UPDATE main.images SET timed = 1 WHERE timed = 0 AND key IN (SELECT key FROM "
       "shard.images WHERE timed = 1)");
  exec(db,
       "INSERT INTO image_map SELECT s.id, m.id FROM shard.images s JOIN main.images m ON "
       "m.key = s.key");
  exec(db,
       "UPDATE main.images SET duplicate_of = (SELECT im.new FROM shard.images s JOIN image_map "
       "im ON im.old = s.duplicate_of WHERE s.key = main.images.key) WHERE key IN (SELECT key "
       "FROM shard.images WHERE duplicate_of IS NOT NULL)");

  exec(db,
       "INSERT INTO main.variants(model_id, env, framework, status, engine_version, "
       "artifact_sha256, load_ns, first_ns, info_json, compile_ns, build_json) SELECT mm.new, "
       "s.env, s.framework, s.status, s.engine_version, s.artifact_sha256, s.load_ns, "
       "s.first_ns, s.info_json, s.compile_ns, s.build_json FROM shard.variants s JOIN model_map "
       "mm ON mm.old = s.model_id WHERE NOT EXISTS (SELECT 1 FROM main.variants v WHERE "
       "v.model_id = mm.new AND v.env = s.env) ORDER BY s.id");
  merge_machines(db);
  // A variant already merged from another block: the worst status, and what the first shard
  // left blank from this one (a variant skipped there has no engine version).
  exec(db,
       "UPDATE main.variants AS v SET status = CASE WHEN " + status_rank("s.status") + " > " +
           status_rank("v.status") +
           " THEN s.status ELSE v.status END, engine_version = CASE WHEN v.engine_version = '' "
           "THEN s.engine_version ELSE v.engine_version END, artifact_sha256 = CASE WHEN "
           "v.artifact_sha256 = '' THEN s.artifact_sha256 ELSE v.artifact_sha256 END, load_ns = "
           "coalesce(v.load_ns, s.load_ns), first_ns = coalesce(v.first_ns, s.first_ns), "
           "info_json = CASE WHEN v.info_json = '' THEN s.info_json ELSE v.info_json END, "
           "compile_ns = coalesce(v.compile_ns, s.compile_ns), build_json = CASE WHEN "
           "v.build_json = '' THEN s.build_json ELSE v.build_json END FROM (SELECT mm.new AS "
           "model_id, x.* FROM shard.variants x JOIN model_map mm ON mm.old = x.model_id) AS s "
           "WHERE v.model_id = s.model_id AND v.env = s.env");
  exec(db,
       "INSERT INTO variant_map SELECT s.id, v.id FROM shard.variants s JOIN model_map mm ON "
       "mm.old = s.model_id JOIN main.variants v ON v.model_id = mm.new AND v.env = s.env");

  if (const std::string repeated = first_row(
          db,
          "SELECT v.env, i.key FROM shard.results r JOIN variant_map vm ON vm.old = r.variant_id "
          "JOIN image_map im ON im.old = r.image_id JOIN main.results x ON x.variant_id = vm.new "
          "AND x.image_id = im.new JOIN main.variants v ON v.id = vm.new JOIN main.images i ON "
          "i.id = im.new");
      !repeated.empty())
    throw Error(name + " repeats a result already merged from another shard (variant / image: " +
                repeated + "); each (variant, image) belongs to one shard");
  outcome.results += db.exec(
      "INSERT INTO main.results(variant_id, image_id, top_ids, top_scores, output, samples_ns, "
      "nonfinite, repeat_max_abs_diff) SELECT vm.new, im.new, r.top_ids, r.top_scores, r.output, "
      "r.samples_ns, r.nonfinite, r.repeat_max_abs_diff FROM shard.results r JOIN variant_map vm "
      "ON vm.old = r.variant_id JOIN image_map im ON im.old = r.image_id ORDER BY vm.new, im.new");
  // An image's failure belongs to its shard; a variant's own (skipped when planned, its build
  // failed) happens in every shard alike and is kept once.
  outcome.failures += db.exec(
      "INSERT INTO main.failures(variant_id, image_id, stage, symptom, message, recorded_at) "
      "SELECT vm.new, im.new, f.stage, f.symptom, f.message, f.recorded_at FROM shard.failures f "
      "JOIN variant_map vm ON vm.old = f.variant_id LEFT JOIN image_map im ON im.old = "
      "f.image_id WHERE f.image_id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM main.failures x "
      "WHERE x.variant_id = vm.new AND x.image_id IS NULL AND x.stage = f.stage AND x.symptom = "
      "f.symptom AND x.message = f.message) ORDER BY f.id");
  exec(db,
       "INSERT INTO main.localizations(env_a, env_b, image_key, json, recorded_at) SELECT env_a, "
       "env_b, image_key, json, recorded_at FROM shard.localizations ORDER BY id");
  // Every shard of an expanded set records the provenance of its images (all of the set's that
  // it read); an image's provenance is kept once.
  exec(db,
       "INSERT OR IGNORE INTO main.image_provenance(image_id, source, source_sha256, transform, "
       "family, severity, seed, call_seed, record) SELECT im.new, p.source, p.source_sha256, "
       "p.transform, p.family, p.severity, p.seed, p.call_seed, p.record FROM "
       "shard.image_provenance p JOIN image_map im ON im.old = p.image_id ORDER BY p.image_id");
}

}  // namespace

void check_shard_database(const ShardDatabase& shard, const std::string& plan_hash) {
  checked_meta(shard, plan_hash);
}

MergeOutcome merge_shard_databases(const std::vector<ShardDatabase>& shards,
                                   const std::string& plan_hash, const fs::path& out,
                                   const std::function<void(const std::string&)>& say) {
  if (fs::exists(out))
    throw Error(out.string() +
                " exists; merge writes a new database (remove it, or give "
                "another -o)");
  std::set<int> seen;
  std::vector<std::map<std::string, std::string>> metas;
  for (const auto& shard : shards) {
    if (!seen.insert(shard.index).second)
      throw Error("shard " + std::to_string(shard.index) + " is given twice (" +
                  shard.path.string() + ")");
    metas.push_back(checked_meta(shard, plan_hash));
  }
  const fs::path temporary =
      out.parent_path() / ("." + out.filename().string() + ".merging" + std::to_string(::getpid()));
  fs::remove(temporary);
  MergeOutcome outcome;
  try {
    { const Store created(temporary); }  // the schema, the application id, the version
    SQLite::Database db(temporary.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_URI);
    db.exec("PRAGMA foreign_keys=ON");
    db.exec(
        "CREATE TEMP TABLE model_map(old INTEGER PRIMARY KEY, new INTEGER NOT NULL);"
        "CREATE TEMP TABLE image_map(old INTEGER PRIMARY KEY, new INTEGER NOT NULL);"
        "CREATE TEMP TABLE variant_map(old INTEGER PRIMARY KEY, new INTEGER NOT NULL)");
    for (const auto& shard : shards) {
      SQLite::Statement attach(db, "ATTACH DATABASE ? AS shard");
      attach.bind(1, read_only_uri(shard.path));
      attach.exec();
      try {
        SQLite::Transaction tx(db);
        merge_attached(db, shard, outcome);
        tx.commit();
      } catch (...) {
        db.exec("DETACH DATABASE shard");
        throw;
      }
      db.exec("DETACH DATABASE shard");
      ++outcome.shards;
      say("merged " + shard.path.filename().string());
    }
    // The campaign's meta from the first shard that has each key (engine descriptions from every
    // group's shards); what describes one shard's run is kept under shard:<I>.
    SQLite::Transaction tx(db);
    SQLite::Statement set(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    const auto put = [&](const std::string& key, const std::string& value) {
      set.bind(1, key);
      set.bind(2, value);
      set.exec();
      set.reset();
    };
    std::set<std::string> done = {"schema_version"};
    std::string hosts;
    for (size_t i = 0; i < shards.size(); ++i) {
      for (const auto& [key, value] : metas[i]) {
        if (kShardMetaKeys.count(key)) continue;
        if (done.insert(key).second) put(key, value);
      }
      const auto& m = metas[i];
      const auto value = [&](const char* key) {
        const auto found = m.find(key);
        return found == m.end() ? std::string() : found->second;
      };
      const nlohmann::json record{{"group", value("shard_group")},
                                  {"node", nlohmann::json::parse(value("node"), nullptr, false)},
                                  {"host", value("host")},
                                  {"started_at", value("shard_started_at")},
                                  {"finished_at", value("shard_finished_at")}};
      put("shard:" + std::to_string(shards[i].index), record.dump());
      const std::string host = value("host");
      if (hosts.find(host) == std::string::npos) hosts += (hosts.empty() ? "" : "; ") + host;
    }
    put("host", hosts);
    put("plan_hash", plan_hash);
    put("shards_merged", std::to_string(shards.size()));
    tx.commit();
  } catch (const SQLite::Exception& e) {
    fs::remove(temporary);
    throw Error(out.string() + ": cannot merge (" + e.what() + ")");
  } catch (...) {
    fs::remove(temporary);
    throw;
  }
  seal_database(temporary);
  fs::rename(temporary, out);
  return outcome;
}

void seal_database(const fs::path& db) {
  try {
    SQLite::Database d(db.string(), SQLite::OPEN_READWRITE);
    d.exec("PRAGMA journal_mode=DELETE");
  } catch (const SQLite::Exception& e) {
    throw Error(db.string() + ": cannot close its write-ahead log (" + e.what() + ")");
  }
}

}  // namespace deltann
