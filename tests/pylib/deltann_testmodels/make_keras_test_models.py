"""Makes the tiny Keras model of tests/integration/test_tensorflow_worker.py.

    PYTHONPATH=tests/pylib .deps/venv-tf/bin/python -m deltann_testmodels.make_keras_test_models \
        --out DIR

Runs with the TensorFlow venv's Python (Keras 3); the tests run elsewhere and read what it writes:

- tiny.keras: NHWC [1,8,8,3] float32 -> Conv 3x3 (4) -> BatchNorm -> ReLU -> global average ->
  Dense(5): 5 logits, a Keras 3 file. BatchNorm has non-trivial statistics, so a converter that
  folds it wrongly shows.
- tiny_savedmodel/: the same model exported as a SavedModel (Keras' model.export).
- tiny.spec.json: its NHWC spec (input 'image', 5 logits).
- x.npy and keras.json: a seeded input and Keras' own output on it (eager call), so the tests can
  compare without TensorFlow.

Weights come from fixed seeds, so every run writes the same model.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import keras
import numpy as np

SHAPE = [1, 8, 8, 3]


def tiny_net():
    keras.utils.set_random_seed(21)
    image = keras.Input(shape=SHAPE[1:], batch_size=1, name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(image)
    norm = keras.layers.BatchNormalization(name="norm")
    x = keras.layers.ReLU(name="relu")(norm(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    bias = keras.initializers.RandomNormal(stddev=0.1, seed=3)
    logits = keras.layers.Dense(5, name="logits", bias_initializer=bias)(x)
    model = keras.Model(image, logits, name="tiny")
    rng = np.random.default_rng(4)
    gamma, beta, mean, var = (rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.2, 4),
                              rng.normal(0, 0.3, 4), rng.uniform(0.5, 2.0, 4))
    norm.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the model")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = tiny_net()
    model.save(args.out / "tiny.keras")
    model.export(str(args.out / "tiny_savedmodel"), verbose=False)
    spec = {"name": "tiny", "input": {"name": "image", "shape": SHAPE, "layout": "NHWC",
                                      "dtype": "float32"},
            "output": {"name": "logits", "classes": 5, "label_offset": 0, "kind": "logits"}}
    (args.out / "tiny.spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    x = np.random.default_rng(7).uniform(-1, 1, SHAPE).astype(np.float32)
    np.save(args.out / "x.npy", x)
    output = np.asarray(model(x, training=False), dtype=np.float32).ravel()
    (args.out / "keras.json").write_text(json.dumps({
        "output": [float(v) for v in output], "keras": keras.__version__}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
