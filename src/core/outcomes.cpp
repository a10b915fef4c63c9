#include "deltann/outcomes.h"

#include <string>

#include "deltann/error.h"

namespace deltann {

namespace {

// The value of `all` whose name is `text`; `kind` names the kind in the error.
template <class Kind, size_t N>
Kind parse(std::string_view text, const std::array<Kind, N>& all, const char* kind) {
  for (const Kind value : all)
    if (to_string(value) == text) return value;
  std::string names;
  for (const Kind value : all) names += (names.empty() ? "" : ", ") + std::string(to_string(value));
  throw Error("'" + std::string(text) + "' is not " + kind + " (" + names + ")");
}

}  // namespace

// The switches have no default, so that the compiler names a value left without its name.
std::string_view to_string(ImageStatus status) {
  switch (status) {
    case ImageStatus::ok:
      return "ok";
    case ImageStatus::error:
      return "error";
    case ImageStatus::duplicate:
      return "duplicate";
  }
  return "unknown";
}

std::string_view to_string(VariantStatus status) {
  switch (status) {
    case VariantStatus::pending:
      return "pending";
    case VariantStatus::running:
      return "running";
    case VariantStatus::done:
      return "done";
    case VariantStatus::failed:
      return "failed";
    case VariantStatus::skipped:
      return "skipped";
  }
  return "unknown";
}

std::string_view to_string(FailureStage stage) {
  switch (stage) {
    case FailureStage::plan:
      return "plan";
    case FailureStage::convert:
      return "convert";
    case FailureStage::compile:
      return "compile";
    case FailureStage::preprocess:
      return "preprocess";
    case FailureStage::load:
      return "load";
    case FailureStage::first_inference:
      return "first_inference";
    case FailureStage::run:
      return "run";
  }
  return "unknown";
}

std::string_view to_string(FailureSymptom symptom) {
  switch (symptom) {
    case FailureSymptom::unsupported:
      return "unsupported";
    case FailureSymptom::error:
      return "error";
    case FailureSymptom::crash:
      return "crash";
    case FailureSymptom::abort:
      return "abort";
    case FailureSymptom::killed:
      return "killed";
    case FailureSymptom::exit:
      return "exit";
    case FailureSymptom::hang:
      return "hang";
  }
  return "unknown";
}

ImageStatus parse_image_status(std::string_view text) {
  return parse(text, kImageStatuses, "an image status");
}

VariantStatus parse_variant_status(std::string_view text) {
  return parse(text, kVariantStatuses, "a variant status");
}

FailureStage parse_failure_stage(std::string_view text) {
  return parse(text, kFailureStages, "a failure stage");
}

FailureSymptom parse_failure_symptom(std::string_view text) {
  return parse(text, kFailureSymptoms, "a failure symptom");
}

}  // namespace deltann
