// What happened to an image, a variant and a failure, as the campaign database stores it
// (docs/STORAGE.md explains each value). Each kind is an enum with exactly one name per value:
// to_string gives the name that the database, --json and every other output write, and the parse
// functions read it back, refusing any other text with an Error that names it.
#pragma once

#include <array>
#include <string_view>

namespace deltann {

// images.status: whether the image could be used at all (duplicate: it repeats an earlier entry,
// images.duplicate_of, and runs once as that one).
enum class ImageStatus { ok, error, duplicate };

// variants.status: where a variant stands in the campaign.
enum class VariantStatus { pending, running, done, failed, skipped };

// failures.stage: the step that failed, in the order a variant goes through them.
enum class FailureStage { plan, convert, compile, preprocess, load, first_inference, run };

// failures.symptom: how the step failed.
enum class FailureSymptom { unsupported, error, crash, abort, killed, exit, hang };

// Every value of each kind, in declaration order (the round-trip test and the storage doc test go
// through them).
inline constexpr std::array kImageStatuses = {ImageStatus::ok, ImageStatus::error,
                                              ImageStatus::duplicate};
inline constexpr std::array kVariantStatuses = {VariantStatus::pending, VariantStatus::running,
                                                VariantStatus::done, VariantStatus::failed,
                                                VariantStatus::skipped};
inline constexpr std::array kFailureStages = {FailureStage::plan,    FailureStage::convert,
                                              FailureStage::compile, FailureStage::preprocess,
                                              FailureStage::load,    FailureStage::first_inference,
                                              FailureStage::run};
inline constexpr std::array kFailureSymptoms = {FailureSymptom::unsupported, FailureSymptom::error,
                                                FailureSymptom::crash,       FailureSymptom::abort,
                                                FailureSymptom::killed,      FailureSymptom::exit,
                                                FailureSymptom::hang};

std::string_view to_string(ImageStatus status);
std::string_view to_string(VariantStatus status);
std::string_view to_string(FailureStage stage);
std::string_view to_string(FailureSymptom symptom);

// Each reads a name that to_string writes; any other text throws Error naming the text and the
// names it may be ("'ok ' is not an image status (ok, error)").
ImageStatus parse_image_status(std::string_view text);
VariantStatus parse_variant_status(std::string_view text);
FailureStage parse_failure_stage(std::string_view text);
FailureSymptom parse_failure_symptom(std::string_view text);

}  // namespace deltann
