# Engines: each one is a folder src/backends/<name>/ and a file cmake/engines/<name>.cmake, listed
# in DELTANN_ENGINE_FILES (CMakeLists.txt). The file finds the engine's dependencies and, when
# they are all here, calls deltann_add_engine(); otherwise deltann_engine_off() says why. Each
# engine is its own executable `deltann-worker-<name>`, so engines never share a process.

# deltann_add_engine(NAME SOURCES files...
#                    [DEPS targets...] [INCLUDES dirs...] [DEFINITIONS defs...]
#                    [RUNTIME_DIRS dirs...] [BUNDLE libraries...] [SUMMARY text] [TEST])
# Builds deltann-worker-NAME from SOURCES with the worker loop (deltann_worker) and DEPS.
#   INCLUDES      private include folders besides src/backends/NAME.
#   DEFINITIONS   private compile definitions.
#   RUNTIME_DIRS  folders the worker loads shared libraries from (outside the system's), made its
#                 RPATH in the build tree and when installed.
#   BUNDLE        shared libraries installed beside the worker and found there through $ORIGIN
#                 (their folder leaves the installed RPATH), so that an installed copy does not
#                 need that folder.
#   SUMMARY       what the configure message says after "NAME engine ON".
#   TEST          a test-only engine: built into test-workers/ (which `deltann backends` never
#                 lists), never installed.
# Installed workers go to ${DELTANN_INSTALL_PKGLIBDIR}, where the installed deltann looks for them.
function(deltann_add_engine name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "TEST" "SUMMARY"
                        "SOURCES;DEPS;INCLUDES;DEFINITIONS;RUNTIME_DIRS;BUNDLE")
  set(target deltann-worker-${name})
  add_executable(${target} ${arg_SOURCES})
  target_include_directories(${target} PRIVATE "${CMAKE_SOURCE_DIR}/src/backends/${name}"
                                                ${arg_INCLUDES})
  target_link_libraries(${target} PRIVATE deltann_worker ${arg_DEPS})
  if(arg_DEFINITIONS)
    target_compile_definitions(${target} PRIVATE ${arg_DEFINITIONS})
  endif()
  # Installed, a bundled library is found beside the worker instead of in its build folder.
  set(install_rpath ${arg_RUNTIME_DIRS})
  foreach(library IN LISTS arg_BUNDLE)
    get_filename_component(library_dir "${library}" DIRECTORY)
    list(REMOVE_ITEM install_rpath "${library_dir}")
  endforeach()
  if(arg_BUNDLE)
    list(PREPEND install_rpath "$ORIGIN")
  endif()
  set_target_properties(${target} PROPERTIES BUILD_RPATH "${arg_RUNTIME_DIRS}"
                                             INSTALL_RPATH "${install_rpath}")
  if(arg_TEST)
    set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/test-workers")
    return()
  endif()
  install(TARGETS ${target} RUNTIME DESTINATION "${DELTANN_INSTALL_PKGLIBDIR}")
  foreach(library IN LISTS arg_BUNDLE)
    deltann_install_shared_library("${library}")
  endforeach()
  set_property(GLOBAL APPEND PROPERTY DELTANN_ENGINES ${name})
  if(arg_SUMMARY)
    message(STATUS "deltann: ${name} engine ON (${arg_SUMMARY})")
  else()
    message(STATUS "deltann: ${name} engine ON")
  endif()
endfunction()

# deltann_engine_off(NAME REASON): the configure message of an engine left out, and no leftover of
# it: an engine's executable from an earlier configure would make the campaign believe it is here.
function(deltann_engine_off name reason)
  file(REMOVE "${CMAKE_BINARY_DIR}/deltann-worker-${name}")
  message(STATUS "deltann: ${name} engine OFF: ${reason}")
endfunction()

# deltann_install_shared_library(PATH): installs the shared library PATH (a link is followed) into
# ${DELTANN_INSTALL_PKGLIBDIR} under its soname, the name the dynamic loader looks for. (CMake
# 3.25's file(READ_ELF) cannot read a soname; objdump can.)
function(deltann_install_shared_library path)
  get_filename_component(real "${path}" REALPATH)
  get_filename_component(soname "${path}" NAME)
  execute_process(COMMAND "${CMAKE_OBJDUMP}" -p "${real}" OUTPUT_VARIABLE headers ERROR_QUIET)
  if(headers MATCHES "\n[ \t]*SONAME[ \t]+([^ \t\n]+)")
    set(soname "${CMAKE_MATCH_1}")
  endif()
  install(FILES "${real}" RENAME "${soname}" DESTINATION "${DELTANN_INSTALL_PKGLIBDIR}")
endfunction()
