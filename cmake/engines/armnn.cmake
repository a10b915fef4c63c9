# Arm NN: a second TFLite engine, from Debian bookworm's Arm NN 20.08 (libarmnn-dev,
# libarmnntfliteparser-dev, libarmnn-cpuref-backend22). Debian ships no CMake package for it, so
# headers and libraries are found directly. On x86-64 the only backend is CpuRef, a dynamic
# backend in the armnn22 folder; the worker points the runtime there (docs/TFLITE.md).
option(DELTANN_WITH_ARMNN "Build the Arm NN (TfLite parser, CpuRef) engine" ON)
if(DELTANN_WITH_ARMNN)
  find_path(DELTANN_ARMNN_INCLUDE armnnTfLiteParser/ITfLiteParser.hpp)
  find_library(DELTANN_ARMNN_LIBRARY NAMES armnn)
  find_library(DELTANN_ARMNN_TFLITE_LIBRARY NAMES armnnTfLiteParser)
  find_file(DELTANN_ARMNN_CPUREF Arm_CpuRef_backend.so
    PATHS "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/armnn22" NO_DEFAULT_PATH)
  if(DELTANN_ARMNN_INCLUDE AND DELTANN_ARMNN_LIBRARY AND DELTANN_ARMNN_TFLITE_LIBRARY
     AND DELTANN_ARMNN_CPUREF)
    get_filename_component(_armnn_backend_dir "${DELTANN_ARMNN_CPUREF}" DIRECTORY)
    deltann_add_engine(armnn
      SOURCES src/backends/armnn/armnn_backend.cpp src/backends/armnn/tflite_signatures.cpp
      DEPS "${DELTANN_ARMNN_TFLITE_LIBRARY}" "${DELTANN_ARMNN_LIBRARY}"
      DEFINITIONS DELTANN_ARMNN_BACKEND_DIR="${_armnn_backend_dir}"
      SUMMARY "${DELTANN_ARMNN_LIBRARY}, backends in ${_armnn_backend_dir}")
    target_include_directories(deltann-worker-armnn SYSTEM PRIVATE "${DELTANN_ARMNN_INCLUDE}")
  else()
    deltann_engine_off(armnn "headers, libarmnn, libarmnnTfLiteParser or the CpuRef backend not found (apt install libarmnn-dev libarmnntfliteparser-dev libarmnn-cpuref-backend22)")
  endif()
else()
  deltann_engine_off(armnn "DELTANN_WITH_ARMNN is OFF")
endif()
