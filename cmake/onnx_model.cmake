# ONNX's protobuf classes (Debian's libonnx-dev) behind one loader and graph index
# (src/core/onnx_model.h): the `deltann_onnx` library, which every C++ reader of ONNX files links
# (the reference executor, the OpenCV DNN and ONNX Runtime workers, model comparison and the
# reproducer). Absent when the classes are not found; those readers are then left out or say so.
find_package(Protobuf QUIET)
find_package(ONNX CONFIG QUIET)
if(TARGET onnx_proto AND TARGET protobuf::libprotobuf AND NOT TARGET deltann_onnx)
  # onnx_proto carries ONNX_NAMESPACE=onnx and ONNX_ML=1, matching how Debian built it.
  add_library(deltann_onnx STATIC src/core/onnx_model.cpp)
  target_link_libraries(deltann_onnx PUBLIC deltann_core onnx_proto)
endif()
