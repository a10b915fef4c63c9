// The writes a campaign's variants make to its database, one at a time: with --jobs N > 1 the
// variants run on N threads and share one SQLite connection, which is not to be used by two
// threads at once. Reads and the campaign's own bookkeeping stay on the main thread and use the
// Store directly.
#pragma once

#include <mutex>
#include <string>
#include <utility>

#include "deltann/store.h"

namespace deltann {

class LockedStore {
 public:
  explicit LockedStore(Store& store) : store_(store) {}

  void set_variant_status(int64_t variant_id, VariantStatus status) {
    const std::lock_guard hold(mutex_);
    store_.set_variant_status(variant_id, status);
  }
  void record_failure(const StoredFailure& failure) {
    const std::lock_guard hold(mutex_);
    store_.record_failure(failure);
  }
  void record_build(int64_t variant_id, int64_t compile_ns, const std::string& build_json) {
    const std::lock_guard hold(mutex_);
    store_.record_build(variant_id, compile_ns, build_json);
  }
  void record_load(int64_t variant_id, const std::string& engine_version,
                   const std::string& artifact_sha, int64_t load_ns,
                   const std::string& engine_json) {
    const std::lock_guard hold(mutex_);
    store_.record_load(variant_id, engine_version, artifact_sha, load_ns, engine_json);
  }
  void record_first_inference(int64_t variant_id, int64_t first_ns) {
    const std::lock_guard hold(mutex_);
    store_.record_first_inference(variant_id, first_ns);
  }
  void add_result(StoredResult result) {
    const std::lock_guard hold(mutex_);
    store_.add_result(std::move(result));
  }

 private:
  Store& store_;
  std::mutex mutex_;
};

}  // namespace deltann
