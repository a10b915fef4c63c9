// Shared by the libFuzzer targets (docs/FUZZING.md).
//
// The contract every target checks: a parser given any bytes either succeeds or throws
// deltann::Error (Unsupported included) with a message. Any other exception escapes
// LLVMFuzzerTestOneInput and aborts, and AddressSanitizer, UndefinedBehaviorSanitizer and
// libFuzzer's memory limit turn overflows, undefined behaviour and runaway allocations into
// crashes too; libFuzzer then saves the input that did it.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "deltann/error.h"

namespace deltann::fuzz {

// Runs one parse; an Error is the parser refusing bad input, which is what it should do.
template <typename F>
void refusal_is_fine(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

// Fails the run (a crash with the input saved) when a property of an accepted input is broken.
inline void check(bool ok, const char* property) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property broken: %s\n", property);
  std::abort();
}

// A file of this process for parsers that read from a path: each input is written over it.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("deltann-fuzz-" + std::to_string(::getpid()) + "-" + name)) {}
  ~ScratchFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::filesystem::path& write(const uint8_t* data, size_t size) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) {
      std::fprintf(stderr, "cannot write the scratch file %s\n", path_.c_str());
      std::abort();
    }
    return path_;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A folder of this process, removed with everything in it when the run ends.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("deltann-fuzz-" + std::to_string(::getpid()) + "-" + name)) {
    std::filesystem::create_directories(path_);
  }
  ~ScratchFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace deltann::fuzz
