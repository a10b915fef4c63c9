// Content hashes (SHA-256, via OpenSSL) for artifacts, images and cache keys.
#pragma once

#include <filesystem>
#include <string>

namespace deltann {

// Hex SHA-256 of a file's bytes; throws Error naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);
std::string sha256_text(const std::string& text);

}  // namespace deltann
