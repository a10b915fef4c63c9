// The campaign database: one SQLite file (WAL) per campaign, schema versioned (docs/STORAGE.md).
// Results are buffered and committed in batches, so a killed run loses at most the batch in
// flight; re-running the same campaign skips what is already stored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace deltann {

inline constexpr int kSchemaVersion = 4;

struct StoredModel {
  int64_t id = 0;
  std::string path;
  std::string sha256;
  std::string spec_json;
};

struct StoredImage {
  int64_t id = 0;
  std::string key;
  std::string path;
  std::string sha256;
  std::optional<int> label;
  std::string status = "ok";  // ok | error
  std::string message;        // why it failed, or conversions applied
};

struct StoredVariant {
  int64_t id = 0;
  int64_t model_id = 0;
  std::string env;  // canonical environment string
  std::string framework;
  std::string status = "pending";  // pending | running | done | failed | skipped
  std::string engine_version;
  std::string artifact_sha256;
  std::optional<int64_t> load_ns;
  std::optional<int64_t> first_ns;
  std::string info_json;              // what the engine said about itself when it loaded
  std::optional<int64_t> compile_ns;  // build step (compiler, converter), when the engine has one
  std::string build_json;             // what the build tool said about the build
};

struct StoredResult {
  int64_t variant_id = 0;
  int64_t image_id = 0;
  std::vector<int> top_ids;  // class ids (label offset already removed), best first
  std::vector<float> top_scores;
  std::vector<float> output;        // full output vector; empty when not kept
  std::vector<int64_t> samples_ns;  // timed repetitions
  int nonfinite = 0;                // NaN/Inf values in the output
  // Largest |difference| between the outputs of the first and the last run of this image; NULL
  // when the image ran once.
  std::optional<double> repeat_max_abs_diff;
};

struct StoredFailure {
  int64_t variant_id = 0;
  std::optional<int64_t> image_id;
  std::string stage;    // plan | load | first_inference | run | preprocess
  std::string symptom;  // error | crash | abort | hang | exit
  std::string message;
};

// One `deltann localize` result kept with the campaign (the --db form), for `deltann report`.
struct StoredLocalization {
  int64_t id = 0;
  std::string env_a, env_b, image_key;
  std::string json;  // the localization as `deltann localize --json` prints it
  std::string recorded_at;
};

class Store {
 public:
  // Opens or creates the database. Throws Error when the file is not a deltann database or its
  // schema version is newer than this build knows.
  explicit Store(const std::filesystem::path& path, int batch_size = 64);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::optional<std::string> meta(const std::string& key);
  std::map<std::string, std::string> all_meta();
  void set_meta(const std::string& key, const std::string& value);

  int64_t ensure_model(const StoredModel& model);  // by sha256 + path
  int64_t ensure_image(const StoredImage& image);  // by key; updates status/message/label
  int64_t ensure_variant(int64_t model_id, const std::string& env, const std::string& framework);

  void set_variant_status(int64_t variant_id, const std::string& status);
  void record_load(int64_t variant_id, const std::string& engine_version,
                   const std::string& artifact_sha256, int64_t load_ns,
                   const std::string& info_json);
  void record_first_inference(int64_t variant_id, int64_t first_ns);
  void record_build(int64_t variant_id, int64_t compile_ns, const std::string& build_json);
  void record_failure(const StoredFailure& failure);
  int64_t add_localization(const StoredLocalization& localization);  // returns its id
  // Buffered; written when the batch is full or on flush().
  void add_result(StoredResult result);
  void flush();

  void clear_failures(int64_t variant_id);

  // Images of a variant that need no more work: those with a result and, when `include_failed`,
  // those whose failure is already recorded.
  std::set<int64_t> completed_images(int64_t variant_id, bool include_failed = true);

  std::vector<StoredModel> models();
  std::vector<StoredImage> images();
  std::vector<StoredVariant> variants();
  std::vector<StoredFailure> failures();
  std::vector<StoredLocalization> localizations();
  // Results of one variant ordered by image id; `with_output` also loads the full vectors.
  std::vector<StoredResult> results(int64_t variant_id, bool with_output);

 private:
  void write_results(const std::vector<StoredResult>& batch);
  void migrate(int from_version);

  std::filesystem::path path_;
  std::unique_ptr<SQLite::Database> db_;
  int batch_size_;
  std::vector<StoredResult> pending_;
};

}  // namespace deltann
