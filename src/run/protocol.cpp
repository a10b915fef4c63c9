#include "protocol.h"

#include <openssl/evp.h>

#include <cstring>

#include "deltann/error.h"

namespace deltann::protocol {

std::string encode_floats(const std::vector<float>& values) {
  const size_t bytes = values.size() * sizeof(float);
  std::string text(4 * ((bytes + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                                reinterpret_cast<const unsigned char*>(values.data()),
                                static_cast<int>(bytes));
  text.resize(static_cast<size_t>(n));
  return text;
}

std::vector<float> decode_floats(const std::string& text) {
  const auto padding_at = text.find('=');
  if (text.size() % 4 != 0 || (padding_at != std::string::npos && padding_at + 2 < text.size()))
    throw Error("worker sent a malformed float vector");
  std::string bytes(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) throw Error("worker sent a malformed float vector");
  // EVP_DecodeBlock counts the padding as data; the true length is the float count times 4.
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  const size_t length = static_cast<size_t>(n) - padding;
  if (length % sizeof(float) != 0) throw Error("worker sent a float vector of odd length");
  std::vector<float> values(length / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), length);
  return values;
}

}  // namespace deltann::protocol
