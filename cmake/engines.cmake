# Each engine adds one executable; a missing dependency turns the engine off with a message.

if(DELTANN_WITH_ORT)
  find_path(DELTANN_ORT_INCLUDE onnxruntime_cxx_api.h PATHS "${DELTANN_ORT_ROOT}/include" NO_DEFAULT_PATH)
  find_library(DELTANN_ORT_LIBRARY NAMES onnxruntime PATHS "${DELTANN_ORT_ROOT}/lib" NO_DEFAULT_PATH)
  if(DELTANN_ORT_INCLUDE AND DELTANN_ORT_LIBRARY)
    add_library(deltann::onnxruntime SHARED IMPORTED)
    set_target_properties(deltann::onnxruntime PROPERTIES
      IMPORTED_LOCATION "${DELTANN_ORT_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${DELTANN_ORT_INCLUDE}")
    # The wheel's library has the soname libonnxruntime.so.1; it is found through the RPATH.
    add_executable(deltann-worker-ort src/backends/ort/ort_backend.cpp)
    target_link_libraries(deltann-worker-ort PRIVATE deltann_worker deltann::onnxruntime)
    set_target_properties(deltann-worker-ort PROPERTIES BUILD_RPATH "${DELTANN_ORT_ROOT}/lib")
    message(STATUS "deltann: ONNX Runtime engine ON (${DELTANN_ORT_LIBRARY})")
  else()
    message(STATUS "deltann: ONNX Runtime engine OFF: headers or library not under ${DELTANN_ORT_ROOT} (run scripts/setup)")
  endif()
endif()

if(DELTANN_WITH_OPENCV_DNN)
  find_package(OpenCV 4 QUIET COMPONENTS dnn)
  if(NOT (OpenCV_dnn_FOUND OR TARGET opencv_dnn))
    message(STATUS "deltann: OpenCV DNN engine OFF: OpenCV's dnn module not found")
  elseif(NOT (TARGET onnx_proto AND TARGET protobuf::libprotobuf))
    # The worker reads the model's declared input shape (and node names) with ONNX's protobuf
    # classes: OpenCV 4.6 keeps neither, and would run any input size without a word.
    message(STATUS "deltann: OpenCV DNN engine OFF: libonnx-dev's ONNX CMake package or protobuf not found")
  else()
    add_executable(deltann-worker-opencv src/backends/opencv/opencv_backend.cpp)
    target_link_libraries(deltann-worker-opencv PRIVATE deltann_worker opencv_core opencv_dnn deltann_onnx)
    message(STATUS "deltann: OpenCV DNN engine ON (OpenCV ${OpenCV_VERSION})")
  endif()
endif()

# Apache TVM: runs Relax VM executables exported as shared libraries, through TVM's C++ runtime and
# FFI. Headers and libraries come from the apache-tvm and apache-tvm-ffi wheels in the venv.
option(DELTANN_WITH_TVM "Build the Apache TVM engine" ON)
if(DELTANN_WITH_TVM)
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
    message(STATUS "deltann: TVM engine OFF: ${_tvm_off}")
  else()
    get_filename_component(_tvm_ffi_lib_dir "${DELTANN_TVM_FFI_LIBRARY}" DIRECTORY)
    get_filename_component(_tvm_lib_dir "${DELTANN_TVM_RUNTIME_LIBRARY}" DIRECTORY)
    add_library(deltann::tvm_ffi SHARED IMPORTED)
    set_target_properties(deltann::tvm_ffi PROPERTIES IMPORTED_LOCATION "${DELTANN_TVM_FFI_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${DELTANN_TVM_FFI_INCLUDE};${DELTANN_TVM_DLPACK_INCLUDE}"
      INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${DELTANN_TVM_FFI_INCLUDE};${DELTANN_TVM_DLPACK_INCLUDE}")
    add_library(deltann::tvm_runtime SHARED IMPORTED)
    set_target_properties(deltann::tvm_runtime PROPERTIES IMPORTED_LOCATION "${DELTANN_TVM_RUNTIME_LIBRARY}"
      INTERFACE_LINK_LIBRARIES deltann::tvm_ffi)
    add_executable(deltann-worker-tvm src/backends/tvm/tvm_backend.cpp)
    # The worker reaches the runtime only through the FFI registry, so keep libtvm_runtime.so a
    # dependency even where the linker drops unreferenced libraries.
    target_link_options(deltann-worker-tvm PRIVATE "LINKER:--no-as-needed")
    target_link_libraries(deltann-worker-tvm PRIVATE deltann_worker deltann::tvm_runtime deltann::tvm_ffi)
    target_compile_definitions(deltann-worker-tvm PRIVATE
      DELTANN_TVM_VERSION="${DELTANN_TVM_VERSION}" DELTANN_TVM_LIB_DIR="${_tvm_lib_dir}")
    # libtvm_runtime.so finds libtvm_ffi.so (another wheel) only because the worker loads it first.
    set_target_properties(deltann-worker-tvm PROPERTIES BUILD_RPATH "${_tvm_lib_dir};${_tvm_ffi_lib_dir}")
    message(STATUS "deltann: TVM engine ON (apache-tvm ${DELTANN_TVM_VERSION}, ${_tvm_lib_dir})")
  endif()
endif()
