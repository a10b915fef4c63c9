# OpenCV DNN: the system OpenCV's dnn module.
option(DELTANN_WITH_OPENCV_DNN "Build the OpenCV DNN engine" ON)
if(NOT DELTANN_WITH_OPENCV_DNN)
  deltann_engine_off(opencv "DELTANN_WITH_OPENCV_DNN is OFF")
  return()
endif()

find_package(OpenCV 4 QUIET COMPONENTS dnn)
if(NOT (OpenCV_dnn_FOUND OR TARGET opencv_dnn))
  deltann_engine_off(opencv "OpenCV's dnn module not found")
elseif(NOT TARGET deltann_onnx)
  # The worker reads the model's declared input shape (and node names) with ONNX's protobuf
  # classes: OpenCV 4.6 keeps neither, and would run any input size without a word.
  deltann_engine_off(opencv "libonnx-dev's ONNX CMake package or protobuf not found")
else()
  deltann_add_engine(opencv
    SOURCES src/backends/opencv/opencv_backend.cpp
    DEPS opencv_core opencv_dnn deltann_onnx
    SUMMARY "OpenCV ${OpenCV_VERSION}")
endif()
