"""deltann workers written in Python, for engines that offer a Python API but no usable C/C++ one.

- `worker`: the worker protocol of docs/PROTOCOL.md (`--describe`, `--serve`), the same loop as
  src/run/worker.cpp, around any object with the small Engine/Session interface it defines. It
  imports only the standard library, numpy and deltann_tools.environment (standard library only),
  so any engine's environment can run it.
- `tflite`: the TFLite/LiteRT engine (docs/TFLITE.md), run by the generated
  `deltann-worker-tflite` launcher (cmake/engines/tflite.cmake) with the TensorFlow venv's Python.
"""
