# ONNX Runtime: the C++ API of the SDK that scripts/setup puts in ${DELTANN_ORT_ROOT}.
option(DELTANN_WITH_ORT "Build the ONNX Runtime engine" ON)
if(NOT DELTANN_WITH_ORT)
  deltann_engine_off(ort "DELTANN_WITH_ORT is OFF")
  return()
endif()

find_path(DELTANN_ORT_INCLUDE onnxruntime_cxx_api.h PATHS "${DELTANN_ORT_ROOT}/include" NO_DEFAULT_PATH)
find_library(DELTANN_ORT_LIBRARY NAMES onnxruntime PATHS "${DELTANN_ORT_ROOT}/lib" NO_DEFAULT_PATH)
if(NOT (DELTANN_ORT_INCLUDE AND DELTANN_ORT_LIBRARY))
  deltann_engine_off(ort "headers or library not under ${DELTANN_ORT_ROOT} (run scripts/setup)")
  return()
endif()

add_library(deltann::onnxruntime SHARED IMPORTED)
set_target_properties(deltann::onnxruntime PROPERTIES
  IMPORTED_LOCATION "${DELTANN_ORT_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${DELTANN_ORT_INCLUDE}")

# ONNX Runtime's per-layer capture rewrites the model with ONNX's own protobuf classes (Debian's
# libonnx-dev); without them the engine still runs and answers capture with an error.
set(_ort_capture_deps "")
set(_ort_capture_defs "")
if(TARGET deltann_onnx)
  set(_ort_capture_deps deltann_onnx)
  set(_ort_capture_defs DELTANN_ORT_CAPTURE=1)
  message(STATUS "deltann: ONNX Runtime capture ON (ONNX ${ONNX_VERSION} protobuf classes)")
else()
  message(STATUS "deltann: ONNX Runtime capture OFF: libonnx-dev's ONNX CMake package not found")
endif()

# The library (soname libonnxruntime.so.1) is found through the RPATH in the build tree and is
# installed beside the worker, so that an installed deltann runs ONNX models on its own.
deltann_add_engine(ort
  SOURCES src/backends/ort/ort_backend.cpp
  DEPS deltann::onnxruntime ${_ort_capture_deps}
  DEFINITIONS ${_ort_capture_defs}
  RUNTIME_DIRS "${DELTANN_ORT_ROOT}/lib"
  BUNDLE "${DELTANN_ORT_LIBRARY}"
  SUMMARY "${DELTANN_ORT_LIBRARY}")
