# ONNX's protobuf classes (Debian's libonnx-dev) behind one loader and graph index
# (src/core/onnx_model.h): the `deltann_onnx` layer, which every C++ reader of ONNX files links
# (the reference executor, the OpenCV DNN and ONNX Runtime workers, model comparison and the
# reproducer). Absent when the classes are not found; those readers are then left out or say so.
find_package(Protobuf QUIET)
find_package(ONNX CONFIG QUIET)
if(TARGET onnx_proto AND TARGET protobuf::libprotobuf AND NOT TARGET deltann_onnx)
  # onnx_proto carries ONNX_NAMESPACE=onnx and ONNX_ML=1, matching how Debian built it.
  deltann_add_layer(onnx SOURCES src/core/onnx_model.cpp src/core/onnx_batch.cpp DEPS deltann_core onnx_proto)
endif()
if(NOT TARGET deltann_onnx)
  # No layer compiles the loader's header then; say so to the header check.
  set_property(GLOBAL PROPERTY "DELTANN_HEADER_OWNER_src/core/onnx_model.h" "none (no ONNX classes)")
endif()

# The FLOP counter (src/core/onnx_flops.h) needs ONNX's shape inference as well (libonnx).
if(TARGET deltann_onnx AND TARGET onnx AND NOT TARGET deltann_onnx_flops)
  deltann_add_layer(onnx_flops SOURCES src/core/onnx_flops.cpp DEPS deltann_onnx onnx)
endif()
if(NOT TARGET deltann_onnx_flops)
  set_property(GLOBAL PROPERTY "DELTANN_HEADER_OWNER_src/core/onnx_flops.h" "none (no ONNX shape inference)")
endif()
