# TFLite/LiteRT: a Python worker (python/deltann_workers/tflite.py) run by the TensorFlow venv's
# Python, because the ai-edge-litert wheel ships libLiteRt.so but no headers (docs/TFLITE.md).
# Nothing is compiled: the engine is a generated launcher `deltann-worker-tflite` next to deltann
# (cmake/python_worker.cmake).
option(DELTANN_WITH_TFLITE "Build the TFLite/LiteRT engine (a Python worker)" ON)

if(DELTANN_WITH_TFLITE)
  deltann_python_shebang_problem(_tflite_off)
  if(NOT _tflite_off)
    # Imports LiteRT's interpreter module (loads libLiteRt.so, a fraction of a second) but not
    # TensorFlow; -I so that nothing from the caller's PYTHONPATH stands in for it.
    execute_process(
      COMMAND "${DELTANN_TF_PYTHON}" -I -c
        "import ai_edge_litert, ai_edge_litert.interpreter; print(ai_edge_litert.__version__); print(ai_edge_litert.__file__)"
      OUTPUT_VARIABLE _tflite_probe ERROR_VARIABLE _tflite_probe_error
      RESULT_VARIABLE _tflite_probe_rc OUTPUT_STRIP_TRAILING_WHITESPACE TIMEOUT 60)
    if(NOT _tflite_probe_rc EQUAL 0)
      string(REGEX REPLACE ".*\n([^\n]+)\n*$" "\\1" _tflite_probe_error "\n${_tflite_probe_error}")
      set(_tflite_off "${DELTANN_TF_PYTHON} cannot import ai_edge_litert.interpreter (${_tflite_probe_error})")
    else()
      string(REPLACE "\n" ";" _tflite_probe "${_tflite_probe}")
      list(GET _tflite_probe 0 DELTANN_LITERT_VERSION)
      list(GET _tflite_probe 1 _tflite_init)
    endif()
  endif()
  if(_tflite_off)
    deltann_engine_off(tflite "${_tflite_off}")
  else()
    deltann_add_python_engine(tflite deltann_workers.tflite
      "ai-edge-litert ${DELTANN_LITERT_VERSION}, ${DELTANN_TF_PYTHON}")
    # Re-probe when the wheel changes (an upgrade or a re-made venv).
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_tflite_init}")
  endif()
else()
  deltann_engine_off(tflite "DELTANN_WITH_TFLITE is OFF")
endif()
