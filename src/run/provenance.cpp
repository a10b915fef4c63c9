#include "provenance.h"

#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/campaign_events.h"
#include "deltann/error.h"

namespace deltann {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// deltann expand writes about 400 bytes per image: 64 MiB holds over 150,000 images.
constexpr uintmax_t kMaxProvenanceBytes = 64u << 20;

std::string text_field(const json& record, const std::string& key, const char* field,
                       bool required) {
  const auto it = record.find(field);
  if (it == record.end() || it->is_null()) {
    if (required) throw Error("provenance of " + key + ": no '" + field + "'");
    return "";
  }
  if (!it->is_string()) throw Error("provenance of " + key + ": '" + field + "' is not text");
  return it->get<std::string>();
}

std::optional<int64_t> integer_field(const json& record, const std::string& key,
                                     const char* field) {
  const auto it = record.find(field);
  if (it == record.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !it->is_number_unsigned())
    throw Error("provenance of " + key + ": '" + field + "' is not an integer");
  return it->get<int64_t>();
}

}  // namespace

std::vector<StoredProvenance> provenance_rows(const json& records,
                                              const std::vector<StoredImage>& images) {
  if (!records.is_object()) throw Error("not a JSON object keyed by image file name");
  std::vector<StoredProvenance> rows;
  for (const auto& image : images) {
    const auto it = records.find(image.key);
    if (it == records.end()) continue;
    const json& record = *it;
    if (!record.is_object()) throw Error("provenance of " + image.key + " is not an object");
    StoredProvenance row;
    row.image_id = image.id;
    row.source = text_field(record, image.key, "source", true);
    row.source_sha256 = text_field(record, image.key, "source_sha256", true);
    row.transform = text_field(record, image.key, "transform", true);
    row.family = text_field(record, image.key, "family", false);
    if (const auto severity = integer_field(record, image.key, "severity")) {
      if (*severity < 1 || *severity > 5)
        throw Error("provenance of " + image.key + ": severity " + std::to_string(*severity) +
                    " is not 1 to 5");
      row.severity = static_cast<int>(*severity);
    }
    row.seed = integer_field(record, image.key, "seed");
    row.call_seed = integer_field(record, image.key, "call_seed");
    row.record = record.dump();
    rows.push_back(std::move(row));
  }
  return rows;
}

void record_expanded_provenance(const Dataset& dataset, Store& store, CampaignObserver& events) {
  if (dataset.layout != "list") return;
  const fs::path file = dataset.root / "provenance.json";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return;
  try {
    const uintmax_t size = fs::file_size(file);
    if (size > kMaxProvenanceBytes)
      throw Error("it is " + std::to_string(size >> 20) + " MiB, more than the " +
                  std::to_string(kMaxProvenanceBytes >> 20) + " MiB a provenance file may be");
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) throw Error("cannot read it");
    const json records = json::parse(text.str());
    const auto rows = provenance_rows(records, store.images());
    store.set_provenance(rows);
    events.on_note("provenance: " + std::to_string(rows.size()) + " images of the expanded set (" +
                   file.string() + ") stored with their transform and severity");
  } catch (const std::exception& e) {
    events.on_note("note: " + file.string() +
                   " not used, the images have no provenance: " + e.what());
  }
}

}  // namespace deltann
