#include "slurm_submit.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/campaign_file.h"
#include "deltann/error.h"
#include "run_program.h"

namespace deltann {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kSbatchTimeout = 60;

// Options that `deltann submit` sets itself: given again through --sbatch-arg they would replace
// the array, the dependency or the logs, or make sbatch wait.
const std::vector<std::string> kReservedOptions = {"--array", "--dependency", "--output", "--error",
                                                   "--wait",  "--parsable",   "-a",       "-d",
                                                   "-o",      "-e",           "-W"};

// A value written into an #SBATCH line must stay one word on that line.
void check_value(const std::string& value, const std::string& what) {
  if (value.empty() || !is_placement_word(value))
    throw Error(what + " '" + value +
                "' cannot go into a batch script: it must be printable ASCII without spaces");
}

void check_sbatch_arg(const std::string& arg) {
  check_value(arg, "--sbatch-arg");
  if (arg[0] != '-')
    throw Error("--sbatch-arg '" + arg + "' is not an sbatch option (--name=value)");
  const std::string name = arg.substr(0, arg.find('='));
  for (const auto& reserved : kReservedOptions)
    if (name == reserved || (reserved.size() == 2 && arg.rfind(reserved, 0) == 0))
      throw Error("--sbatch-arg '" + arg + "': deltann submit sets " + reserved + " itself");
}

// The folder's path goes into #SBATCH --output lines, where '%' starts one of Slurm's patterns.
void check_folder(const fs::path& dir) {
  const std::string text = dir.string();
  if (!is_placement_word(text) || text.find('%') != std::string::npos)
    throw Error("the plan folder's path " + text +
                " cannot go into a batch script's #SBATCH lines (it must be printable ASCII "
                "without spaces or '%'): move or link the folder to a plainer path");
}

// A word for the shell: single quotes, each ' inside written as '\''.
std::string shell_quoted(const std::string& word) {
  std::string quoted = "'";
  for (const char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// A group's name as part of a file name and a job name.
std::string name_word(const std::string& name) {
  std::string word;
  for (const char c : name)
    word +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return word.empty() ? "group" : word;
}

std::string common_lines(const SlurmOptions& options) {
  std::string lines;
  if (!options.partition.empty()) lines += "#SBATCH --partition=" + options.partition + "\n";
  if (!options.time.empty()) lines += "#SBATCH --time=" + options.time + "\n";
  for (const auto& arg : options.sbatch_args) lines += "#SBATCH " + arg + "\n";
  return lines;
}

std::string array_script(const fs::path& dir, const CampaignPlan& plan, const PlanGroup& group,
                         const std::vector<int>& shards, const SlurmOptions& options) {
  std::ostringstream s;
  s << "#!/bin/sh\n"
    << "# deltann: hardware group '" << name_word(group.name) << "' of plan "
    << plan.hash.substr(0, 12) << ", shards " << index_ranges(shards) << "\n"
    << "#SBATCH --job-name=deltann-" << name_word(group.name) << "\n"
    << "#SBATCH --array=" << index_ranges(shards) << "\n"
    << "#SBATCH --output=" << (dir / "slurm" / "logs" / "%A_%a.out").string() << "\n";
  if (!group.constraint.empty()) s << "#SBATCH --constraint=" << group.constraint << "\n";
  if (!group.gres.empty()) s << "#SBATCH --gres=" << group.gres << "\n";
  if (!group.licenses.empty()) s << "#SBATCH --licenses=" << group.licenses << "\n";
  if (group.exclusive) s << "#SBATCH --exclusive\n";
  s << common_lines(options) << "# the shard's index comes from SLURM_ARRAY_TASK_ID\n"
    << "exec " << shell_quoted(options.deltann.string()) << " run --plan "
    << shell_quoted(dir.string()) << "\n";
  return s.str();
}

std::string merge_script(const fs::path& dir, const CampaignPlan& plan,
                         const SlurmOptions& options) {
  std::ostringstream s;
  s << "#!/bin/sh\n"
    << "# deltann: the shards of plan " << plan.hash.substr(0, 12)
    << " merged into one database, once every array has ended well\n"
    << "#SBATCH --job-name=deltann-merge\n"
    << "#SBATCH --output=" << (dir / "slurm" / "logs" / "merge_%j.out").string() << "\n"
    << common_lines(options)
    // --force: the database is made from the results alone, so a later merge (after shards
    // were run again) replaces it.
    << "exec " << shell_quoted(options.deltann.string()) << " merge " << shell_quoted(dir.string())
    << " -o " << shell_quoted((dir / "campaign.db").string()) << " --force\n";
  return s.str();
}

void write_file(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error("cannot write " + temporary.string());
  }
  fs::rename(temporary, path);
}

// sbatch --parsable prints "jobid" or "jobid;cluster".
std::string parsed_job_id(const std::string& out) {
  std::string id = out.substr(0, out.find_first_of(";\n"));
  if (id.empty() || !std::all_of(id.begin(), id.end(), ::isdigit)) return "";
  return id;
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// Submits one job; throws Error with sbatch's own message when it refuses.
std::string submit(const SlurmJob& job, const std::vector<std::string>& after) {
  const ProgramRun run = run_program(sbatch_command(job, after), kSbatchTimeout);
  const std::string id = run.ok() ? parsed_job_id(run.out) : "";
  if (id.empty()) {
    const std::string said = trimmed(run.err.empty() ? run.out : run.err);
    throw Error("sbatch " + (run.ok() ? "answered no job id" : run.failure()) +
                (said.empty() ? "" : ": " + said));
  }
  return id;
}

json to_json(const SlurmJob& job) {
  json j = {{"job_id", job.job_id}, {"script", job.script.string()}};
  if (!job.group.empty()) {
    j["group"] = job.group;
    j["shards"] = index_ranges(job.shards);
  }
  return j;
}

// Appends this submission to DIR/slurm/jobs.json (a resubmission adds one).
void record_jobs(const fs::path& dir, const SlurmSubmission& jobs) {
  const fs::path path = dir / "slurm" / "jobs.json";
  json record = {{"submissions", json::array()}};
  if (fs::exists(path)) {
    std::ifstream in(path);
    try {
      record = json::parse(in);
    } catch (const json::exception&) {
      // An unreadable record is replaced: Slurm itself still knows the older jobs.
    }
  }
  json submission = {{"arrays", json::array()}, {"merge", to_json(jobs.merge)}};
  for (const auto& job : jobs.arrays) submission["arrays"].push_back(to_json(job));
  if (!record.contains("submissions") || !record["submissions"].is_array())
    record["submissions"] = json::array();
  record["submissions"].push_back(submission);
  write_file(path, record.dump(2) + "\n");
}

}  // namespace

SlurmSubmission slurm_jobs(const fs::path& dir, const CampaignPlan& plan,
                           const std::vector<int>& pending, const SlurmOptions& options) {
  check_folder(dir);
  check_value(options.deltann.string(), "the deltann program's path");
  if (!options.partition.empty()) check_value(options.partition, "--partition");
  if (!options.time.empty()) check_value(options.time, "--time");
  for (const auto& arg : options.sbatch_args) check_sbatch_arg(arg);
  const std::set<int> to_run(pending.begin(), pending.end());
  SlurmSubmission jobs;
  std::set<std::string> script_names;
  for (const auto& group : plan.groups) {
    for (const auto& [what, value] :
         {std::pair{"constraint", group.constraint}, std::pair{"gres", group.gres},
          std::pair{"licenses", group.licenses}})
      if (!value.empty()) check_value(value, "hardware group '" + group.name + "': " + what);
    std::vector<int> shards;
    for (const int index : shards_of_group(plan, group.name))
      if (to_run.count(index)) shards.push_back(index);
    if (shards.empty()) continue;
    std::string name = "array-" + name_word(group.name);
    if (!script_names.insert(name).second) name += "-" + std::to_string(jobs.arrays.size());
    script_names.insert(name);
    jobs.arrays.push_back({group.name, shards, dir / "slurm" / (name + ".sh"),
                           array_script(dir, plan, group, shards, options), ""});
  }
  jobs.merge = {"", {}, dir / "slurm" / "merge.sh", merge_script(dir, plan, options), ""};
  return jobs;
}

std::vector<std::string> sbatch_command(const SlurmJob& job,
                                        const std::vector<std::string>& after) {
  std::vector<std::string> command = {"sbatch", "--parsable"};
  if (!after.empty()) {
    std::string dependency = "--dependency=afterok";
    for (const auto& id : after) dependency += ":" + id;
    command.push_back(dependency);
  }
  command.push_back(job.script.string());
  return command;
}

void submit_slurm_jobs(const fs::path& dir, SlurmSubmission& jobs) {
  fs::create_directories(dir / "slurm" / "logs");
  for (const auto& job : jobs.arrays) write_file(job.script, job.text);
  write_file(jobs.merge.script, jobs.merge.text);
  std::vector<std::string> submitted;
  // Cancels what this submission queued, so that no array waits for a merge that never comes.
  const auto cancel = [&](const std::string& refused, const std::string& why) {
    std::string message = refused + " was refused by Slurm: " + why;
    if (!submitted.empty()) {
      std::vector<std::string> scancel = {"scancel"};
      scancel.insert(scancel.end(), submitted.begin(), submitted.end());
      const ProgramRun run = run_program(scancel, kSbatchTimeout);
      std::string ids;
      for (const auto& id : submitted) ids += (ids.empty() ? "" : ", ") + id;
      message += run.ok() ? "; cancelled the jobs already submitted (" + ids + ")"
                          : "; could not cancel the jobs already submitted (" + ids +
                                "): scancel " + run.failure() + " " + trimmed(run.err);
    }
    throw Error(message + "; no merge job was submitted");
  };
  for (auto& job : jobs.arrays) {
    try {
      job.job_id = submit(job, {});
    } catch (const Error& e) {
      cancel("the job array of hardware group '" + job.group + "' (" + job.script.string() + ")",
             e.what());
    }
    submitted.push_back(job.job_id);
  }
  try {
    jobs.merge.job_id = submit(jobs.merge, submitted);
  } catch (const Error& e) {
    cancel("the merge job (" + jobs.merge.script.string() + ")", e.what());
  }
  record_jobs(dir, jobs);
}

std::vector<std::string> cancel_pending_merge_jobs(const fs::path& dir) {
  const fs::path path = dir / "slurm" / "jobs.json";
  if (!fs::exists(path)) return {};
  std::vector<std::string> merge_ids;
  try {
    std::ifstream in(path);
    const json record = json::parse(in);
    for (const auto& submission : record.at("submissions"))
      merge_ids.push_back(submission.at("merge").at("job_id").get<std::string>());
  } catch (const std::exception& e) {
    return {"note: " + path.string() + " is unreadable (" + e.what() +
            "); a merge job of an earlier submission may still be pending: see squeue"};
  }
  std::vector<std::string> lines;
  for (const auto& id : merge_ids) {
    // A job Slurm no longer holds is no error of ours: squeue then fails or says nothing.
    const ProgramRun state =
        run_program({"squeue", "--noheader", "--format=%T", "--jobs=" + id}, kSbatchTimeout);
    std::istringstream said(state.out);
    std::string word;
    said >> word;
    if (!state.ok() || word != "PENDING") continue;
    const ProgramRun cancel = run_program({"scancel", id}, kSbatchTimeout);
    lines.push_back(cancel.ok() ? "cancelled job " + id +
                                      ": the merge job of an earlier submission, still pending "
                                      "(this submission's merge job takes its place)"
                                : "could not cancel job " + id +
                                      ", the pending merge job of an earlier submission: scancel " +
                                      cancel.failure() + " " + trimmed(cancel.err));
  }
  return lines;
}

std::vector<std::string> submitted_slurm_jobs(const fs::path& dir) {
  const fs::path path = dir / "slurm" / "jobs.json";
  if (!fs::exists(path)) return {};
  std::vector<std::string> lines;
  try {
    std::ifstream in(path);
    const json record = json::parse(in);
    const json& last = record.at("submissions").back();
    for (const auto& job : last.at("arrays"))
      lines.push_back("slurm job " + job.at("job_id").get<std::string>() + ": hardware group " +
                      job.at("group").get<std::string>() + ", shards " +
                      job.at("shards").get<std::string>());
    lines.push_back("slurm job " + last.at("merge").at("job_id").get<std::string>() +
                    ": merge, once the arrays have ended well");
  } catch (const std::exception& e) {
    lines = {path.string() + " is unreadable (" + e.what() + ")"};
  }
  return lines;
}

}  // namespace deltann
