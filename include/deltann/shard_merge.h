// Shard databases of a plan folder (docs/SCALE_OUT.md) merged into one campaign database.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "deltann/error.h"

namespace deltann {

struct ShardDatabase {
  int index = 0;
  std::filesystem::path path;
};

struct MergeOutcome {
  int shards = 0;
  int64_t results = 0;
  int64_t failures = 0;
};

// A shard database that belongs to another plan than the folder it sits in (its meta plan_hash).
class ForeignShardError : public Error {
 public:
  using Error::Error;
};

// Checks that `shard` is a database of shard `shard.index` of the plan `plan_hash`, written by
// this deltann's schema: throws ForeignShardError when it belongs to another plan, Error naming
// the file and the reason for anything else (no deltann database, another schema, another shard).
void check_shard_database(const ShardDatabase& shard, const std::string& plan_hash);

// Writes a new database `out` holding the results of every shard database, in index order, one
// transaction per shard. Rows are matched by their natural keys (a model by its file's sha256 and
// spec, an image by its key, a variant by its model and environment) and get the new file's ids.
// Refused with an Error naming the shard and the reason, before `out` exists: a file that is no
// deltann database, another schema version than this deltann's, another plan (meta plan_hash) or
// another shard than its place says (meta shard), the same shard twice, an image whose content
// differs between shards, or a result (variant, image) that two shards both hold. `out` must not
// exist; it appears only when every shard is merged.
MergeOutcome merge_shard_databases(const std::vector<ShardDatabase>& shards,
                                   const std::string& plan_hash, const std::filesystem::path& out,
                                   const std::function<void(const std::string&)>& say);

// Brings a finished database into one self-contained file (the write-ahead log folded in and
// rollback journaling from then on), so that it can be copied and read on a network file system.
void seal_database(const std::filesystem::path& db);

}  // namespace deltann
