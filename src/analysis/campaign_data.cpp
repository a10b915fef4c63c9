#include "deltann/campaign_data.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "deltann/stats.h"

namespace deltann {
namespace {

constexpr const char* kEnginePrefix = "engine:";

CampaignModel typed_model(StoredModel stored) {
  CampaignModel model;
  model.stored = std::move(stored);
  try {
    model.spec = parse_model_spec(nlohmann::json::parse(model.stored.spec_json),
                                  std::filesystem::path(model.stored.path).parent_path());
    model.output_kind = model.spec->output.kind;
  } catch (const std::exception& e) {
    model.spec_error = e.what();
  }
  return model;
}

// Moves what the analysis needs out of a stored result (its sample buffer stays, for the next
// row); `pooled` collects its samples in ms.
CampaignResult typed_result(StoredResult& r, std::vector<double>& pooled,
                            std::vector<double>& scratch) {
  CampaignResult out;
  out.image_id = r.image_id;
  out.top_ids = std::move(r.top_ids);
  out.top_scores = std::move(r.top_scores);
  out.output = std::move(r.output);
  out.nonfinite = r.nonfinite;
  out.repeat_max_abs_diff = r.repeat_max_abs_diff;
  out.samples = static_cast<int64_t>(r.samples_ns.size());
  scratch.clear();
  for (const int64_t ns : r.samples_ns) scratch.push_back(static_cast<double>(ns) / 1e6);
  pooled.insert(pooled.end(), scratch.begin(), scratch.end());
  if (!scratch.empty()) {
    std::sort(scratch.begin(), scratch.end());
    out.median_ms = stats::percentile_sorted(scratch, 50);
  }
  return out;
}

}  // namespace

const StoredImage* CampaignData::image(int64_t id) const {
  const auto it =
      std::lower_bound(images.begin(), images.end(), id,
                       [](const StoredImage& i, int64_t value) { return i.id < value; });
  return it != images.end() && it->id == id ? &*it : nullptr;
}

const CampaignVariant* CampaignData::variant(int64_t id) const {
  for (const auto& v : variants)
    if (v.stored.id == id) return &v;
  return nullptr;
}

std::string CampaignData::meta_value(const std::string& key) const {
  const auto it = meta.find(key);
  return it == meta.end() ? std::string() : it->second;
}

CampaignData load_campaign(const Store& store, const CampaignLoadOptions& options) {
  CampaignData c;
  c.db_path = store.path();
  c.meta = store.all_meta();
  for (const auto& [key, value] : c.meta) {
    if (key.rfind(kEnginePrefix, 0) != 0) continue;
    const std::string name = key.substr(std::char_traits<char>::length(kEnginePrefix));
    // Parsed as `deltann backends` reads a worker's description.
    try {
      c.engines[name] = backend_info_from_json(nlohmann::json::parse(value));
    } catch (const std::exception& e) {
      c.problems.push_back("the description of engine " + name + " (meta " + key +
                           ") cannot be read (" + e.what() +
                           "): the order of its opt levels is unknown, so its slow-down findings "
                           "are left out");
    }
  }
  if (const auto peak = c.meta.find("cpu_peak"); peak != c.meta.end()) {
    c.cpu_peak = parse_cpu_peak(peak->second);
    if (!c.cpu_peak)
      c.problems.push_back(
          "the CPU's peak (meta cpu_peak) cannot be read: the variants' shares "
          "of peak are left out");
  }
  std::map<int64_t, int> model_index;  // from 1, in id order
  for (auto& stored : store.models()) {
    model_index[stored.id] = static_cast<int>(c.models.size()) + 1;
    c.models.push_back(typed_model(std::move(stored)));
  }
  c.images = store.images();
  c.failures = store.failures();
  c.localizations = store.localizations();
  for (auto& row : store.provenance()) c.provenance[row.image_id] = std::move(row);
  const bool several_models = c.models.size() > 1;
  std::vector<double> scratch;
  for (auto& stored : store.variants()) {
    CampaignVariant v;
    v.stored = std::move(stored);
    v.model = model_index.count(v.stored.model_id) ? model_index.at(v.stored.model_id) : 1;
    v.name = v.stored.env + (several_models ? " [model " + std::to_string(v.model) + "]" : "");
    // Exactly as many as stored: a million results make every spare slot count.
    v.results.reserve(static_cast<size_t>(store.result_count(v.stored.id)));
    // Timing statistics come from the timing sample only (docs/ANALYSIS.md, "Timing sample"): an
    // image outside it ran once, untimed, and its result holds no samples.
    store.for_each_result(v.stored.id, options.outputs, [&](StoredResult& r) {
      v.timed_images += !r.samples_ns.empty();
      v.results.push_back(typed_result(r, v.samples_ms, scratch));
    });
    std::sort(v.samples_ms.begin(), v.samples_ms.end());
    v.samples_ms.shrink_to_fit();
    c.variants.push_back(std::move(v));
  }
  return c;
}

}  // namespace deltann
