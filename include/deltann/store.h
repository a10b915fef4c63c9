// The campaign database: one SQLite file (WAL) per campaign, schema versioned (docs/STORAGE.md).
// Results are buffered and committed in batches, so a killed run loses at most the batch in
// flight; re-running the same campaign skips what is already stored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "deltann/outcomes.h"

namespace SQLite {
class Database;
}

namespace deltann {

inline constexpr int kSchemaVersion = 8;

// Written into the SQLite header of every database deltann creates (`PRAGMA application_id`,
// "DLTN"), so that deltann recognises its own files and never writes into another program's.
inline constexpr int32_t kApplicationId = 0x444C544E;

// A model of the campaign. Its identity is the model file's content and the spec it ran with:
// the same file under another spec gives other numbers, so it is another model.
struct StoredModel {
  int64_t id = 0;
  std::string path;              // where the file was when it last ran
  std::string sha256;            // of the model file
  std::string spec_json;         // the spec that was used
  std::string spec_source = {};  // where that spec came from: a file, or the ImageNet defaults
  // Floating-point operations of one inference (src/core/onnx_flops.h); nullopt when they could
  // not be counted (no ONNX shape inference in this build, a node whose shape stays unknown).
  std::optional<int64_t> flops = {};
};

struct StoredImage {
  int64_t id = 0;
  std::string key;
  std::string path;
  std::string sha256;
  std::optional<int> label;
  ImageStatus status = ImageStatus::ok;
  std::string message;  // why it failed, or conversions applied, or what it duplicates
  // The row of the image this entry repeats (status "duplicate"): it is run once, as that row.
  std::optional<int64_t> duplicate_of = {};
  // In the campaign's timing sample: its results were timed with warm-up and repeats, and only
  // those samples enter the timing statistics. Set by Store::add_to_timing_sample, never by
  // ensure_image.
  bool timed = false;
};

struct StoredVariant {
  int64_t id = 0;
  int64_t model_id = 0;
  std::string env;  // canonical environment string
  std::string framework;
  VariantStatus status = VariantStatus::pending;
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
  FailureStage stage = FailureStage::run;
  FailureSymptom symptom = FailureSymptom::error;
  std::string message;
};

// Where an image of an expanded set came from: `deltann expand`'s provenance.json record, stored
// with the image when a campaign runs over the set (docs/DATASETS.md, "Expanding photos").
struct StoredProvenance {
  int64_t image_id = 0;
  std::string source;                // the source photo's key in the dataset it was expanded from
  std::string source_sha256;         // of the source photo's file
  std::string transform;             // "original", or the corruption ("fog", ...)
  std::string family;                // the corruption's family ("weather", ...); "" for an original
  std::optional<int> severity;       // 1 to 5; none for an original
  std::optional<int64_t> seed;       // `expand --seed`
  std::optional<int64_t> call_seed;  // the seed of this one corruption call
  std::string record;  // the whole record as JSON: source path, library version and all
};

// One `deltann localize` result kept with the campaign (the --db form), for `deltann report`.
struct StoredLocalization {
  int64_t id = 0;
  std::string env_a, env_b, image_key;
  std::string json;  // the localization as `deltann localize --json` prints it
  std::string recorded_at;
};

// How a verb opens a database: `run` and `localize --db` write, the others only read.
enum class StoreMode {
  // Creates the file when it does not exist; an existing file must be a deltann database, and
  // an older schema is migrated in place.
  ReadWrite,
  // Never modifies the file (SQLite read-only); an older schema is migrated in a copy in memory.
  ReadOnly,
};

class Store {
 public:
  // Opens (or, read-write, creates) the database. Throws Error when the file exists but is not a
  // deltann database (an empty file, another program's SQLite file, not SQLite at all), or its
  // schema version is newer than this build knows.
  explicit Store(const std::filesystem::path& path, StoreMode mode = StoreMode::ReadWrite,
                 int batch_size = 64);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const { return path_; }
  bool read_only() const { return mode_ == StoreMode::ReadOnly; }
  std::optional<std::string> meta(const std::string& key) const;
  std::map<std::string, std::string> all_meta() const;
  void set_meta(const std::string& key, const std::string& value);

  // By identity (sha256 + spec_json): an existing row gets the given path and spec source (and
  // FLOP count, when one is given), else a new row is added.
  int64_t ensure_model(const StoredModel& model);
  // By key; updates path, sha256, label, status, message and duplicate_of (never `timed`).
  int64_t ensure_image(const StoredImage& image);
  // Puts the images in the timing sample (images.timed). An image never leaves it: its stored
  // results were timed.
  void add_to_timing_sample(const std::vector<int64_t>& image_ids);
  int64_t ensure_variant(int64_t model_id, const std::string& env, const std::string& framework);

  void set_variant_status(int64_t variant_id, VariantStatus status);
  void record_load(int64_t variant_id, const std::string& engine_version,
                   const std::string& artifact_sha256, int64_t load_ns,
                   const std::string& info_json);
  void record_first_inference(int64_t variant_id, int64_t first_ns);
  void record_build(int64_t variant_id, int64_t compile_ns, const std::string& build_json);
  void record_failure(const StoredFailure& failure);
  int64_t add_localization(const StoredLocalization& localization);  // returns its id
  // Stores (or replaces) the provenance of these images, in one transaction.
  void set_provenance(const std::vector<StoredProvenance>& rows);
  // Buffered; written when the batch is full or on flush().
  void add_result(StoredResult result);
  void flush();

  void clear_failures(int64_t variant_id);

  // Images of a variant that need no more work: those with a result and, when `include_failed`,
  // those whose failure is already recorded.
  std::set<int64_t> completed_images(int64_t variant_id, bool include_failed = true) const;

  // The readers are const: they see every result added so far (the buffered batch is written
  // first) and change nothing else. load_campaign (deltann/campaign_data.h) reads them all.
  std::vector<StoredModel> models() const;
  std::vector<StoredImage> images() const;
  std::vector<StoredVariant> variants() const;
  std::vector<StoredFailure> failures() const;
  bool has_results() const;  // whether any result is stored (committed or pending)
  std::set<int64_t> images_with_results() const;  // of any variant
  std::vector<StoredLocalization> localizations() const;
  std::vector<StoredProvenance> provenance() const;  // in image id order
  // Results of one variant ordered by image id; `with_output` also loads the full vectors.
  std::vector<StoredResult> results(int64_t variant_id, bool with_output) const;
  // The same, one at a time: `visit` gets each row in a reused object (move out what it keeps),
  // so that reading a large campaign never holds a variant's rows twice.
  void for_each_result(int64_t variant_id, bool with_output,
                       const std::function<void(StoredResult&)>& visit) const;
  int64_t result_count(int64_t variant_id) const;  // results stored for the variant

 private:
  // Writes the buffered batch. Const so that a reader can make its answer complete: the batch is
  // already part of the campaign as far as callers are concerned, only not yet on disk.
  void flush_pending() const;
  void write_results(const std::vector<StoredResult>& batch) const;
  void open_existing();
  void create();
  void migrate(int from_version);
  void require_writable(const char* what) const;

  std::filesystem::path path_;
  StoreMode mode_;
  std::unique_ptr<SQLite::Database> db_;
  int batch_size_;
  mutable std::vector<StoredResult> pending_;
};

}  // namespace deltann
