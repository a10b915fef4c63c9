# TensorFlow/Keras: a Python worker (python/deltann_workers/tensorflow_engine.py) run by the
# TensorFlow venv's Python (docs/TENSORFLOW.md): TensorFlow's supported interface for Keras models
# is Python. Nothing is compiled: the engine is a generated launcher `deltann-worker-tensorflow`
# next to deltann (cmake/python_worker.cmake).
option(DELTANN_WITH_TENSORFLOW "Build the TensorFlow/Keras engine (a Python worker)" ON)

if(DELTANN_WITH_TENSORFLOW)
  deltann_python_shebang_problem(_tf_off)
  if(NOT _tf_off)
    # Reads the packages' metadata only: importing TensorFlow takes seconds.
    execute_process(
      COMMAND "${DELTANN_TF_PYTHON}" -I -c
        "from importlib import metadata as m; print(m.version('tensorflow')); print(m.version('keras')); print(m.version('tf-keras')); print(m.distribution('tensorflow')._path)"
      OUTPUT_VARIABLE _tf_probe ERROR_VARIABLE _tf_probe_error
      RESULT_VARIABLE _tf_probe_rc OUTPUT_STRIP_TRAILING_WHITESPACE TIMEOUT 60)
    if(NOT _tf_probe_rc EQUAL 0)
      string(REGEX REPLACE ".*\n([^\n]+)\n*$" "\\1" _tf_probe_error "\n${_tf_probe_error}")
      set(_tf_off "${DELTANN_TF_PYTHON} lacks tensorflow, keras or tf-keras (${_tf_probe_error})")
    else()
      string(REPLACE "\n" ";" _tf_probe "${_tf_probe}")
      list(GET _tf_probe 0 DELTANN_TENSORFLOW_VERSION)
      list(GET _tf_probe 1 _tf_keras3)
      list(GET _tf_probe 2 _tf_keras2)
      list(GET _tf_probe 3 _tf_dist)
    endif()
  endif()
  if(_tf_off)
    deltann_engine_off(tensorflow "${_tf_off}")
  else()
    deltann_add_python_engine(tensorflow deltann_workers.tensorflow_engine
      "tensorflow ${DELTANN_TENSORFLOW_VERSION}, keras ${_tf_keras3}, tf-keras ${_tf_keras2}, ${DELTANN_TF_PYTHON}")
    # Re-probe when the wheel changes (an upgrade or a re-made venv).
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_tf_dist}/METADATA")
  endif()
else()
  deltann_engine_off(tensorflow "DELTANN_WITH_TENSORFLOW is OFF")
endif()
