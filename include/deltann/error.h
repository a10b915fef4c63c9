// Errors that carry the place they happened, so a message can name the file and the reason.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace deltann {

// Thrown for bad user input (a file, a spec, an environment string) or an engine failure.
// `what()` is a complete sentence meant for the user: it names what and where.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The request is valid but this machine cannot run it (engine not built, device absent). The
// planner records such variants as skipped with this message instead of stopping the campaign.
class Unsupported : public Error {
 public:
  using Error::Error;
};

// Why a filesystem call failed, in plain words for a message that names the path beside it:
// "symlink loop" rather than "Too many levels of symbolic links".
std::string filesystem_reason(const std::error_code& error);

// A filesystem error that escaped as a sentence: "<plain reason>: <path1>[, <path2>]".
std::string describe(const std::filesystem::filesystem_error& error);

}  // namespace deltann
