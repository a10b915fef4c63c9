#include "shard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "deltann/db_lock.h"
#include "deltann/error.h"
#include "deltann/hash.h"
#include "deltann/shard_merge.h"
#include "deltann/store.h"
#include "deltann/unique_fd.h"
#include "host_probe.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

void write_state(const fs::path& path, const json& state) {
  fs::create_directories(path.parent_path());
  const fs::path temporary = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << state.dump(2) << "\n";
    if (!out.flush()) throw Error("cannot write the shard's state " + temporary.string());
  }
  fs::rename(temporary, path);
}

void sync_path(const fs::path& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0)
    throw Error("cannot sync " + path.string() + ": " + std::strerror(errno));
}

// Puts the finished database into the results folder whole or not at all. A rename is atomic
// only within one file system, so the copy is made under a temporary name in the results folder
// itself, synced to disk, renamed, and the folder synced so that the new name is durable too.
void publish(const fs::path& local, const fs::path& result) {
  seal_database(local);  // one self-contained file, no write-ahead log beside it
  const fs::path temporary = result.parent_path() / ("." + result.filename().string() + ".tmp" +
                                                     std::to_string(::getpid()));
  fs::create_directories(result.parent_path());
  fs::copy_file(local, temporary, fs::copy_options::overwrite_existing);
  sync_path(temporary, O_RDONLY);
  fs::rename(temporary, result);
  sync_path(result.parent_path(), O_RDONLY | O_DIRECTORY);
}

// The planned files must be the ones the shard runs: a model, spec or image changed since
// planning would give results that the plan hash does not describe.
void check_inputs(const CampaignPlan& plan, const ShardManifest& shard) {
  const json& c = plan.campaign;
  const auto check = [](const std::string& what, const fs::path& path, const std::string& planned) {
    std::string now;
    try {
      now = sha256_file(path);
    } catch (const Error& e) {
      throw Error(what + " " + path.string() + " cannot be read here: " + e.what());
    }
    if (now != planned)
      throw Error(what + " " + path.string() + " changed since planning (sha256 " +
                  now.substr(0, 12) + "..., planned " + planned.substr(0, 12) +
                  "...): plan the campaign again");
  };
  check("model", c.at("model").get<std::string>(), c.at("model_sha256"));
  if (!c.at("spec_file").is_null())
    check("spec file", c.at("spec_file").get<std::string>(), c.at("spec_sha256"));
  const std::set<std::string> keys(shard.image_keys.begin(), shard.image_keys.end());
  for (const auto& image : plan.images)
    if (keys.count(image.key) && !image.sha256.empty()) check("image", image.path, image.sha256);
}

void remove_local(const fs::path& db) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", ".lock"})
    fs::remove(db.string() + suffix, ignored);
}

// SQLite creates the database file before it writes anything into it, so a try killed in between
// leaves an empty file. There is nothing in it to resume, and deltann refuses to claim an empty
// file at a path it is given, so the shard could never run on this node again: remove it. Under
// the database's lock, so that a try running now is refused (naming it) rather than disturbed.
void remove_empty_leftover(const fs::path& db) {
  const DatabaseLock lock(db, "deltann run --plan", false);
  std::error_code ec;
  if (fs::file_size(db, ec) != 0 || ec) return;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(db.string() + suffix, ec);
}

// A shard none of whose variants can run on its node (a GPU group's shard on a CPU node) is a
// failure, not a result: published, it would stop the shard from ever running where it can.
void refuse_if_nothing_can_run(const Store& store, const ShardManifest& shard) {
  const auto variants = store.variants();
  if (variants.empty() || std::any_of(variants.begin(), variants.end(), [](const StoredVariant& v) {
        return v.status != VariantStatus::skipped;
      }))
    return;
  std::string reason;
  for (const auto& f : store.failures())
    if (f.stage == FailureStage::plan) {
      reason = f.message;
      break;
    }
  throw Error("none of the shard's " + std::to_string(variants.size()) +
              " variants can run on this node (" + reason +
              "); run it on a node of hardware "
              "group " +
              shard.group);
}

}  // namespace

ShardChoice choose_shard(std::optional<int> flag,
                         const std::function<const char*(const char*)>& getenv) {
  if (flag) {
    if (*flag < 0) throw Error("--shard must not be negative");
    return {*flag, "--shard"};
  }
  for (const char* name : {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"}) {
    const char* value = getenv(name);
    if (!value || !*value) continue;
    int index = -1;
    const char* end = value + std::strlen(value);
    const auto [stop, ec] = std::from_chars(value, end, index);
    if (ec != std::errc() || stop != end || index < 0)
      throw Error(std::string("$") + name + " is '" + value + "', not a shard index");
    return {index, name};
  }
  throw Error(
      "which shard? give --shard I, or run it as a Slurm array task (SLURM_ARRAY_TASK_ID) or a "
      "Kubernetes Indexed Job (JOB_COMPLETION_INDEX)");
}

json node_record() {
  json node;
  const HostIdentity& host = this_host();
  node["host"] = host.host;
  node["cpu"] = host.cpu_model;
  node["cores"] = host.logical_cores;
  // SLURMD_NODENAME is the node as Slurm names it, which need not be the host name (several
  // slurmd on one host, or NodeName differing from NodeHostname): placement is checked by it.
  for (const char* name : {"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                           "SLURMD_NODENAME", "SLURM_CLUSTER_NAME", "JOB_COMPLETION_INDEX"})
    if (const char* value = std::getenv(name); value && *value) node["job"][name] = value;
  const nlohmann::json identity = to_json(host);
  node["gpus"] = identity.at("gpus");
  if (identity.contains("gpu_note")) node["gpu_note"] = identity.at("gpu_note");
  return node;
}

ShardRun run_shard(const ShardRunOptions& options, CampaignObserver& events) {
  const CampaignPlan plan = read_plan_folder(options.plan_dir);
  const ShardChoice choice =
      choose_shard(options.shard, [](const char* n) { return std::getenv(n); });
  if (choice.index >= static_cast<int>(plan.shards.size()))
    throw Error("shard " + std::to_string(choice.index) + " (from " + choice.source +
                ") is not in the plan: " + options.plan_dir.string() + " has shards 0-" +
                std::to_string(plan.shards.size() - 1));
  const ShardManifest& shard = plan.shards[static_cast<size_t>(choice.index)];
  ShardRun run{
      choice.index, choice.source, false, shard_result_path(options.plan_dir, shard.index), {}};
  if (fs::exists(run.result)) {
    const Store done(run.result, StoreMode::ReadOnly);
    if (done.meta("plan_hash") != plan.hash)
      throw Error(run.result.string() + " holds the result of another plan (plan_hash " +
                  done.meta("plan_hash").value_or("none") +
                  "); remove it or plan into a new folder");
    run.already_done = true;
    return run;
  }

  const fs::path state_path = shard_state_path(options.plan_dir, shard.index);
  json state{{"shard", shard.index},    {"group", shard.group}, {"state", "started"},
             {"started_at", utc_now()}, {"pid", ::getpid()},    {"index_from", choice.source},
             {"node", node_record()}};
  write_state(state_path, state);
  try {
    check_inputs(plan, shard);
    CampaignConfig config = config_of_plan(plan);
    config.environments = shard.variants;
    config.cache_dir = options.cache_dir;
    config.worker_dir = options.worker_dir;
    config.jobs = options.jobs;
    fs::path local = options.local_dir;
    if (local.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      local = tmp && *tmp ? fs::path(tmp) : fs::path("/tmp");
    }
    fs::create_directories(local);
    // A database left by a killed try on this node is resumed.
    config.db =
        local / ("deltann-" + plan.hash.substr(0, 12) + "-" + run.result.stem().string() + ".db");
    remove_empty_leftover(config.db);
    const CampaignSlice slice = slice_of_shard(plan, shard);
    run.outcome = run_campaign(config, events, &slice);
    {
      Store store(config.db);
      refuse_if_nothing_can_run(store, shard);
      store.set_meta("plan_hash", plan.hash);
      store.set_meta("shard", std::to_string(shard.index));
      store.set_meta("shard_group", shard.group);
      store.set_meta("node", state["node"].dump());
      store.set_meta("shard_started_at", state["started_at"]);
      store.set_meta("shard_finished_at", utc_now());
    }
    publish(config.db, run.result);
    remove_local(config.db);
  } catch (const std::exception& e) {
    state["state"] = "failed";
    state["finished_at"] = utc_now();
    state["error"] = e.what();
    write_state(state_path, state);
    throw;
  }
  state["state"] = "done";
  state["finished_at"] = utc_now();
  write_state(state_path, state);
  return run;
}

const char* to_string(ShardState state) {
  switch (state) {
    case ShardState::done:
      return "done";
    case ShardState::failed:
      return "failed";
    case ShardState::started:
      return "started";
    case ShardState::missing:
      return "missing";
    case ShardState::foreign:
      return "foreign";
  }
  return "?";
}

namespace {

// Whether the shard database `result` is another plan's; `why` then names it and both hashes.
bool belongs_to_other_plan(const fs::path& result, int index, const std::string& plan_hash,
                           std::string& why) {
  try {
    check_shard_database({index, result}, plan_hash);
  } catch (const ForeignShardError& e) {
    why = std::string(e.what()) + "; remove it to run the shard again";
    return true;
  } catch (const Error&) {
    // Damaged, or of another schema: it is there, and merge refuses it with that reason.
  }
  return false;
}

}  // namespace

std::vector<ShardStatus> shard_statuses(const fs::path& dir, const CampaignPlan& plan) {
  std::vector<ShardStatus> statuses;
  const std::string here = host_name();
  for (const auto& shard : plan.shards) {
    ShardStatus s{shard.index, shard.group, ShardState::missing, "", json()};
    const fs::path state_path = shard_state_path(dir, shard.index);
    if (fs::exists(state_path)) {
      std::ifstream in(state_path);
      s.record = json::parse(in, nullptr, false);
      if (s.record.is_discarded()) s.record = json::object();
    }
    const std::string host =
        s.record.is_object() && s.record.contains("node") ? s.record["node"].value("host", "") : "";
    const std::string state = s.record.is_object() ? s.record.value("state", "") : "";
    const std::string where = host.empty() ? "" : " on " + host;
    const fs::path result = shard_result_path(dir, shard.index);
    if (fs::exists(result) && belongs_to_other_plan(result, shard.index, plan.hash, s.detail)) {
      s.state = ShardState::foreign;
    } else if (fs::exists(result)) {
      s.state = ShardState::done;
      s.detail = (state == "done" ? "finished " + s.record.value("finished_at", "") + where : "");
    } else if (state == "failed") {
      s.state = ShardState::failed;
      s.detail = (host.empty() ? "" : "on " + host + ": ") + s.record.value("error", "");
    } else if (state == "done") {
      s.state = ShardState::failed;
      s.detail = "recorded as done" + where + " but its database is not in results/";
    } else if (state == "started") {
      s.state = ShardState::started;
      s.detail = "started " + s.record.value("started_at", "") + where;
      // On this host the process can be asked: gone without a result is a failure (killed).
      const int pid = s.record.value("pid", 0);
      if (host == here && pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
        s.state = ShardState::failed;
        s.detail += ": its process (pid " + std::to_string(pid) + ") is gone without a result";
      }
    } else if (fs::exists(state_path)) {
      s.state = ShardState::failed;
      s.detail = "its state file " + state_path.string() + " is unreadable";
    }
    statuses.push_back(std::move(s));
  }
  return statuses;
}

}  // namespace deltann
