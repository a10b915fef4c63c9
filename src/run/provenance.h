// The provenance of an expanded set's images: `deltann expand` writes provenance.json beside the
// list file it makes; a campaign over that list stores each image's record in the database
// (table image_provenance, docs/STORAGE.md), so that results can be grouped by transform and
// severity without the folder.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "deltann/dataset.h"
#include "deltann/store.h"

namespace deltann {

class CampaignObserver;

// The rows for the stored images whose key `records` (provenance.json's object, keyed by output
// file name) holds; images it does not name get none. Throws Error naming the key and the field
// when a record is malformed.
std::vector<StoredProvenance> provenance_rows(const nlohmann::json& records,
                                              const std::vector<StoredImage>& images);

// When the dataset is a list file with a provenance.json beside it, stores the provenance of the
// campaign's images and says how many on `events`. A provenance.json that cannot be read is
// named with the reason on `events`, and the campaign goes on without provenance.
void record_expanded_provenance(const Dataset& dataset, Store& store, CampaignObserver& events);

}  // namespace deltann
