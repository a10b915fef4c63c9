# OpenVINO: ONNX and TFLite models compiled by OpenVINO's CPU plugin (docs/OPENVINO.md). Headers,
# CMake package and libraries all come from the `openvino` wheel in the project venv.
option(DELTANN_WITH_OPENVINO "Build the OpenVINO engine" ON)
if(DELTANN_WITH_OPENVINO)
  deltann_find_wheel(openvino _ov_site DELTANN_OPENVINO_VERSION _ov_off)
  if(NOT _ov_off)
    # Only the wheel's own package: a system OpenVINO of another version must not be mixed in.
    find_package(OpenVINO CONFIG QUIET COMPONENTS Runtime
      PATHS "${_ov_site}/openvino/cmake" NO_DEFAULT_PATH)
    if(NOT (OpenVINO_FOUND AND TARGET openvino::runtime))
      set(_ov_off "OpenVINOConfig.cmake or openvino::runtime not found under ${_ov_site}/openvino/cmake")
    endif()
  endif()
  if(_ov_off)
    deltann_engine_off(openvino "${_ov_off}")
  else()
    # openvino::runtime brings _GLIBCXX_USE_CXX11_ABI=1 (Debian's g++ default, so nothing changes)
    # and OV_THREAD=OV_THREAD_TBB_ADAPTIVE; both stay inside this one executable.
    # libopenvino.so finds libtbb and its plugins and frontends (dlopen'ed at run time) in its own
    # folder ($ORIGIN RPATH and its own path), so the worker only needs to find libopenvino.so.
    deltann_add_engine(openvino
      SOURCES src/backends/openvino/openvino_backend.cpp src/backends/openvino/openvino_options.cpp
      DEPS openvino::runtime
      RUNTIME_DIRS "${_ov_site}/openvino/libs"
      SUMMARY "openvino ${DELTANN_OPENVINO_VERSION}, ${_ov_site}/openvino/libs")
  endif()
else()
  deltann_engine_off(openvino "DELTANN_WITH_OPENVINO is OFF")
endif()
