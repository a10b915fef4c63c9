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
  if(OpenCV_dnn_FOUND OR TARGET opencv_dnn)
    add_executable(deltann-worker-opencv src/backends/opencv/opencv_backend.cpp)
    target_link_libraries(deltann-worker-opencv PRIVATE deltann_worker opencv_core opencv_dnn)
    message(STATUS "deltann: OpenCV DNN engine ON (OpenCV ${OpenCV_VERSION})")
  else()
    message(STATUS "deltann: OpenCV DNN engine OFF: OpenCV's dnn module not found")
  endif()
endif()
