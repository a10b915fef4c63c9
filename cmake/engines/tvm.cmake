# Apache TVM: runs Relax VM executables exported as shared libraries, through TVM's C++ runtime and
# FFI. Headers and libraries come from the apache-tvm and apache-tvm-ffi wheels in the venv.
option(DELTANN_WITH_TVM "Build the Apache TVM engine" ON)
if(NOT DELTANN_WITH_TVM)
  deltann_engine_off(tvm "DELTANN_WITH_TVM is OFF")
  return()
endif()

deltann_find_wheel(apache-tvm _tvm_site DELTANN_TVM_VERSION _tvm_off)
if(NOT _tvm_off)
  find_path(DELTANN_TVM_FFI_INCLUDE tvm/ffi/extra/module.h
    PATHS "${_tvm_site}/tvm_ffi/include" NO_DEFAULT_PATH)
  find_path(DELTANN_TVM_DLPACK_INCLUDE dlpack/dlpack.h
    PATHS "${_tvm_site}/tvm_ffi/include" "${_tvm_site}/tvm_ffi/3rdparty/dlpack/include"
    NO_DEFAULT_PATH)
  find_library(DELTANN_TVM_FFI_LIBRARY NAMES tvm_ffi PATHS "${_tvm_site}/tvm_ffi/lib" NO_DEFAULT_PATH)
  find_library(DELTANN_TVM_RUNTIME_LIBRARY NAMES tvm_runtime PATHS "${_tvm_site}/tvm/lib" NO_DEFAULT_PATH)
  if(NOT (DELTANN_TVM_FFI_INCLUDE AND DELTANN_TVM_DLPACK_INCLUDE AND DELTANN_TVM_FFI_LIBRARY
          AND DELTANN_TVM_RUNTIME_LIBRARY))
    set(_tvm_off "tvm_ffi headers, dlpack.h, libtvm_ffi.so or libtvm_runtime.so not under ${_tvm_site}")
  endif()
endif()
if(_tvm_off)
  deltann_engine_off(tvm "${_tvm_off}")
  return()
endif()

get_filename_component(_tvm_ffi_lib_dir "${DELTANN_TVM_FFI_LIBRARY}" DIRECTORY)
get_filename_component(_tvm_lib_dir "${DELTANN_TVM_RUNTIME_LIBRARY}" DIRECTORY)
add_library(deltann::tvm_ffi SHARED IMPORTED)
set_target_properties(deltann::tvm_ffi PROPERTIES IMPORTED_LOCATION "${DELTANN_TVM_FFI_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${DELTANN_TVM_FFI_INCLUDE};${DELTANN_TVM_DLPACK_INCLUDE}"
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${DELTANN_TVM_FFI_INCLUDE};${DELTANN_TVM_DLPACK_INCLUDE}")
add_library(deltann::tvm_runtime SHARED IMPORTED)
set_target_properties(deltann::tvm_runtime PROPERTIES IMPORTED_LOCATION "${DELTANN_TVM_RUNTIME_LIBRARY}"
  INTERFACE_LINK_LIBRARIES deltann::tvm_ffi)
# libtvm_runtime.so finds libtvm_ffi.so (another wheel) only because the worker loads it first.
deltann_add_engine(tvm
  SOURCES src/backends/tvm/tvm_backend.cpp
  DEPS deltann::tvm_runtime deltann::tvm_ffi
  DEFINITIONS DELTANN_TVM_VERSION="${DELTANN_TVM_VERSION}" DELTANN_TVM_LIB_DIR="${_tvm_lib_dir}"
  RUNTIME_DIRS "${_tvm_lib_dir}" "${_tvm_ffi_lib_dir}"
  SUMMARY "apache-tvm ${DELTANN_TVM_VERSION}, ${_tvm_lib_dir}")
# The worker reaches the runtime only through the FFI registry, so keep libtvm_runtime.so a
# dependency even where the linker drops unreferenced libraries.
target_link_options(deltann-worker-tvm PRIVATE "LINKER:--no-as-needed")
