"""Generators of the tiny models the tests run; test-only, never installed with deltann.

- `make_test_models`: ONNX classifiers and specs (tiny_classifier, label_flip, wrong_shape, ...),
  made with the project's Python (.deps/venv: onnx, onnxruntime) by the integration suite and the
  fuzz seeds: `python -m deltann_testmodels.make_test_models --out DIR`.
- `make_tflite_test_models`: TFLite models and their ONNX twins, made with the TensorFlow venv's
  Python (.deps/venv-tf): `python -m deltann_testmodels.make_tflite_test_models --out DIR`.

Both import only third-party packages, so either runs with tests/pylib alone on PYTHONPATH.
"""
