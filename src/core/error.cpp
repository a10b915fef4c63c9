#include "deltann/error.h"

#include <cerrno>

namespace deltann {

std::string filesystem_reason(const std::error_code& error) {
  if (error.category() != std::generic_category() && error.category() != std::system_category())
    return error.message();
  switch (error.value()) {
    case ELOOP:
      return "symlink loop";
    case ENAMETOOLONG:
      return "name too long";
    case ENOENT:
      return "does not exist";
    case EACCES:
    case EPERM:
      return "permission denied";
    case ENOTDIR:
      return "a part of the path is not a folder";
    case EISDIR:
      return "is a folder";
    case EEXIST:
      return "already exists";
    case ENOSPC:
      return "no space left on the device";
    case EROFS:
      return "read-only filesystem";
    default:
      return error.message();
  }
}

std::string describe(const std::filesystem::filesystem_error& error) {
  std::string text = filesystem_reason(error.code());
  if (!error.path1().empty()) text += ": " + error.path1().string();
  if (!error.path2().empty()) text += ", " + error.path2().string();
  return text;
}

}  // namespace deltann
