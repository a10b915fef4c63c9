#pragma once
// Where this deltann's own files are. They are found from the running program's location, never
// from a path compiled in, so that one binary works in its build tree and installed under any
// prefix (docs/BUILD.md):
//   build tree   <build>/deltann, the workers beside it, and the links <build>/python and
//                <build>/demo that CMake makes into the source tree
//   installed    <prefix>/bin/deltann, <prefix>/lib/deltann/ (workers, python/) and
//                <prefix>/share/deltann/ (demo/)
// Each lookup has an environment variable that overrides it.

#include <filesystem>

namespace deltann {

// The folder of the running program (/proc/self/exe), or the current folder if that is unknown.
std::filesystem::path program_dir();
// Where the workers and python/ are: <prefix>/lib/deltann when the program is installed, else the
// program's own folder.
std::filesystem::path program_lib_dir();
// Where the demo/ is: <prefix>/share/deltann when the program is installed, else the program's
// own folder.
std::filesystem::path program_data_dir();

// $DELTANN_PYTHON, else the project environment's Python the build was configured with.
std::filesystem::path tools_python();
// $DELTANN_TOOLS_DIR, else python/deltann_tools in program_lib_dir().
std::filesystem::path tools_dir();
// $DELTANN_DEMO_DIR, else demo/ in program_data_dir().
std::filesystem::path default_demo_dir();

// Sets $DELTANN_TF_PYTHON, unless it is set, to the TensorFlow environment's Python the build was
// configured with, for the tools deltann runs (convert.py runs its TensorFlow steps with it).
// Call it at start-up, before any thread.
void export_tool_environment();

}  // namespace deltann
