#include "locate.h"

#include <cstdlib>
#include <system_error>

// Set by CMakeLists.txt for this file alone.
#ifndef DELTANN_DEFAULT_PYTHON
#error "DELTANN_DEFAULT_PYTHON must name the project environment's Python"
#endif
#ifndef DELTANN_DEFAULT_TF_PYTHON
#error "DELTANN_DEFAULT_TF_PYTHON must name the TensorFlow environment's Python"
#endif
#ifndef DELTANN_INSTALLED_PKGLIBDIR
#error "DELTANN_INSTALLED_PKGLIBDIR must give the install's lib/deltann relative to its bin/"
#endif
#ifndef DELTANN_INSTALLED_DATADIR
#error "DELTANN_INSTALLED_DATADIR must give the install's share/deltann relative to its bin/"
#endif

namespace deltann {
namespace fs = std::filesystem;

namespace {

const char* env_value(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

// An installed program has <prefix>/lib/deltann beside its bin/; a build tree has nothing there.
bool program_is_installed() {
  std::error_code ec;
  return fs::is_directory(program_dir() / DELTANN_INSTALLED_PKGLIBDIR, ec);
}

}  // namespace

fs::path program_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

fs::path program_lib_dir() {
  if (program_is_installed())
    return (program_dir() / DELTANN_INSTALLED_PKGLIBDIR).lexically_normal();
  return program_dir();
}

fs::path program_data_dir() {
  if (program_is_installed()) return (program_dir() / DELTANN_INSTALLED_DATADIR).lexically_normal();
  return program_dir();
}

fs::path tools_python() {
  if (const char* python = env_value("DELTANN_PYTHON")) return python;
  return DELTANN_DEFAULT_PYTHON;
}

fs::path tools_dir() {
  if (const char* dir = env_value("DELTANN_TOOLS_DIR")) return dir;
  return program_lib_dir() / "python" / "deltann_tools";
}

fs::path default_demo_dir() {
  if (const char* dir = env_value("DELTANN_DEMO_DIR")) return dir;
  return program_data_dir() / "demo";
}

void export_tool_environment() {
  ::setenv("DELTANN_TF_PYTHON", DELTANN_DEFAULT_TF_PYTHON, /*overwrite=*/0);
}

}  // namespace deltann
