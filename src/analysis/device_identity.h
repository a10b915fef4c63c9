// A variant's device identity (DeviceIdentity in deltann/compare.h) from what the campaign stored.
#pragma once

#include <map>
#include <string>

#include "deltann/compare.h"

namespace deltann {

// From the variant's knobs and its stored load reply (variants.info_json: the engine's `hardware`,
// the recording machine's `host`, and `other_hosts` of a merged variant). What cannot be read is
// left out and said in `note`; it never stops the analysis.
DeviceIdentity device_identity(const std::map<std::string, std::string>& knobs,
                               const std::string& info_json);

}  // namespace deltann
