"""Makes the tiny TFLite models of tests/integration/test_tflite_worker.py, with their ONNX twins.

    PYTHONPATH=tests/pylib .deps/venv-tf/bin/python -m deltann_testmodels.make_tflite_test_models \
        --out DIR

Runs with the TensorFlow venv's Python (.deps/venv-tf: TensorFlow, tf2onnx); the tests themselves
run elsewhere and only read what this writes:

- tiny.tflite: NHWC [1,8,8,3] float32 -> Conv 3x3 (4) -> ReLU -> global average -> Dense(5):
  5 logits. The small conv net every knob is tried on.
- prob1001.tflite: NHWC [1,16,16,3] -> two convs -> Dense(1001) -> softmax: probabilities with
  TensorFlow's background slot (1000 classes, label offset 1).
- tiny_quant.tflite: tiny, fully quantised to int8 kernels with a uint8 input and an int8 output,
  so the worker's own quantisation and dequantisation are exercised.
- tiny.onnx, prob1001.onnx: the float .tflite files converted by tf2onnx, for ONNX Runtime.
- models.json: for each model its input and output names (tensor and signature) and shapes.

Weights come from fixed seeds, so every run writes the same models.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import numpy as np
import tensorflow as tf

OPSET = 13
BIAS = tf.keras.initializers.RandomNormal(stddev=0.1, seed=3)


def tiny_net():
    tf.keras.utils.set_random_seed(11)
    image = tf.keras.Input(shape=(8, 8, 3), batch_size=1, name="image")
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(image)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # A non-zero bias: with Keras' zero bias the converter leaves FULLY_CONNECTED's bias input
    # out (-1), which Arm NN 20.08's TfLite parser cannot read.
    logits = tf.keras.layers.Dense(5, name="logits", bias_initializer=BIAS)(x)
    return tf.keras.Model(image, logits, name="tiny")


def prob1001_net():
    tf.keras.utils.set_random_seed(12)
    image = tf.keras.Input(shape=(16, 16, 3), batch_size=1, name="image")
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(image)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # Large weights spread the softmax, so top-1 is not a near-tie of 1001 equal probabilities.
    dense = tf.keras.layers.Dense(1001, name="logits", bias_initializer=BIAS,
                                  kernel_initializer=tf.keras.initializers.RandomNormal(stddev=3.0))
    probabilities = tf.keras.layers.Softmax(name="probabilities")(dense(x))
    return tf.keras.Model(image, probabilities, name="prob1001")


def to_tflite(model, quantised=False):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantised:
        shape = [1, *model.input_shape[1:]]
        samples = np.random.default_rng(5).uniform(0, 1, [32, *shape]).astype(np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.int8
    return converter.convert()


def io_names(path):
    """Tensor and signature names, shapes and dtypes of a .tflite file's input and output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signature = interpreter.get_signature_runner()
    (input_key, input_details), = signature.get_input_details().items()
    (output_key, output_details), = signature.get_output_details().items()

    def entry(key, details):
        scale, zero_point = details["quantization"]
        return {"tensor": details["name"], "signature": key,
                "shape": [int(d) for d in details["shape"]],
                "dtype": np.dtype(details["dtype"]).name, "scale": float(scale),
                "zero_point": int(zero_point)}

    return {"input": entry(input_key, input_details), "output": entry(output_key, output_details)}


def to_onnx(tflite_path, onnx_path):
    import tf2onnx

    tf2onnx.convert.from_tflite(str(tflite_path), opset=OPSET, output_path=str(onnx_path))
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    return {"input": graph.input[0].name, "output": graph.output[0].name}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the models")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    manifest = {}
    tiny = tiny_net()
    for name, model, quantised, twin in (("tiny", tiny, False, True),
                                         ("prob1001", prob1001_net(), False, True),
                                         ("tiny_quant", tiny, True, False)):
        path = args.out / f"{name}.tflite"
        path.write_bytes(to_tflite(model, quantised))
        manifest[name] = io_names(path)
        if twin:
            manifest[name]["onnx"] = to_onnx(path, args.out / f"{name}.onnx")
    (args.out / "models.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
