# The float64 ONNX reference engine (docs/REFERENCE.md): the executor library, its worker and its
# tests. It needs only Debian's libonnx-dev (ONNX's protobuf classes) and libprotobuf, found by the
# top-level CMakeLists.txt.

option(DELTANN_WITH_REFERENCE "Build the float64 ONNX reference engine" ON)
if(DELTANN_WITH_REFERENCE)
  if(NOT (TARGET onnx_proto AND TARGET protobuf::libprotobuf))
    deltann_engine_off(reference "libonnx-dev's ONNX CMake package or protobuf not found")
  else()
    # onnx_proto carries ONNX_NAMESPACE=onnx and ONNX_ML=1, matching how Debian built it.
    # The executor is a library of its own (the fuzz build and its tests use it without a worker);
    # its users see reference/reference.h (and ops.h, which its sources include by that name).
    deltann_add_layer(reference
      SOURCES src/reference/model.cpp src/reference/ops_common.cpp src/reference/ops_elementwise.cpp
              src/reference/ops_nn.cpp src/reference/ops_shape.cpp
      HEADERS src/reference/reference.h src/reference/ops.h
      DEPS deltann_core)
    target_link_libraries(deltann_reference PRIVATE deltann_onnx)

    if(DELTANN_BUILD_TESTS OR DELTANN_FUZZ)
      # The ONNX backend node tests (model + expected outputs per operator case) ship in the onnx
      # wheel, but not in every version: look in the project venv, then the TensorFlow venv. The
      # reference tests run them; the ONNX fuzz target takes their models as seeds.
      set(DELTANN_ONNX_NODE_TESTS "" CACHE PATH
        "ONNX backend node tests (onnx/backend/test/data/node); empty: ask the project Pythons")
      set(DELTANN_REFERENCE_NODE_TESTS "${DELTANN_ONNX_NODE_TESTS}")
      if(NOT DELTANN_REFERENCE_NODE_TESTS)
        foreach(_ref_python "${DELTANN_PYTHON}" "${DELTANN_TF_PYTHON}")
          if(DELTANN_REFERENCE_NODE_TESTS OR NOT EXISTS "${_ref_python}")
            continue()
          endif()
          # importlib.util.find_spec finds the package without importing it (fast, no side effects).
          execute_process(
            COMMAND "${_ref_python}" -c
              "import importlib.util, os; s = importlib.util.find_spec('onnx'); print(os.path.join(os.path.dirname(s.origin), 'backend', 'test', 'data', 'node'))"
            OUTPUT_VARIABLE _ref_probe RESULT_VARIABLE _ref_rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
          if(_ref_rc EQUAL 0 AND IS_DIRECTORY "${_ref_probe}")
            set(DELTANN_REFERENCE_NODE_TESTS "${_ref_probe}")
          endif()
        endforeach()
      endif()
      if(DELTANN_REFERENCE_NODE_TESTS)
        message(STATUS "deltann: reference node tests from ${DELTANN_REFERENCE_NODE_TESTS}")
      else()
        message(STATUS "deltann: reference node tests will skip: no onnx package with backend/test/data/node")
      endif()
    endif()
    if(DELTANN_FUZZ)
      return()  # the fuzz build needs only the executor library (tests/fuzz/fuzz_onnx_model.cpp)
    endif()

    deltann_add_engine(reference
      SOURCES src/backends/reference/reference_backend.cpp
      DEPS deltann_reference
      SUMMARY "float64 executor on ONNX ${ONNX_VERSION} protobuf classes")

    if(DELTANN_BUILD_TESTS)
      find_package(GTest REQUIRED)
      add_executable(deltann_reference_tests
        tests/reference/reference_unit_test.cpp tests/reference/reference_node_test.cpp)
      target_link_libraries(deltann_reference_tests PRIVATE deltann_reference onnx_proto GTest::gtest_main)
      target_compile_definitions(deltann_reference_tests PRIVATE
        DELTANN_ONNX_NODE_TESTS="${DELTANN_REFERENCE_NODE_TESTS}")
      # One ctest entry for the whole program: the node tests are some 1,600 small cases, most
      # skipped as not covered, which would swamp the listing as separate entries.
      add_test(NAME reference_unit_tests COMMAND deltann_reference_tests)
      set_tests_properties(reference_unit_tests PROPERTIES LABELS unit TIMEOUT 600)
    endif()
  endif()
endif()
