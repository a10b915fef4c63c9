#!/usr/bin/env python3
"""Export the published DeltaNN study's architectures (MobileNetV2, ResNet-101, InceptionV3) as
Keras models built by keras.applications, seeded and BatchNorm-calibrated on real photos, saved as
`.keras` files with NHWC specs: the study's own direction (its models came from Keras), so that
campaigns can run them in TensorFlow and convert them to ONNX and TFLite with the ecosystems' own
converters (`ort@keras>onnx`, `tflite@keras>tflite`).

Usage (the TensorFlow venv's Python: Keras 3):
    PYTHONPATH=python .deps/venv-tf/bin/python -m deltann_tools.export_keras_study_models \
        --out assets/study [--models mobilenet_v2,resnet101,inception_v3] [--seed 0]

As export_study_models.py does for the PyTorch originals: no pretrained weights are available
offline, so each model is `keras.applications.<Architecture>(weights=None,
classifier_activation=None)` after `keras.utils.set_random_seed(seed)` (Keras' own
initialisation), then its BatchNorm moving statistics are set from one forward pass in training
mode with momentum 0 over the same 27 views of the demo's 9 photos (centre crop, its mirror image,
a zoomed centre crop), preprocessed by the architecture's own `preprocess_input`. Logits, not
probabilities: the classifier's softmax is left out, as in the PyTorch models.

Written per model into <out>/keras_<name>/: keras_<name>.keras, keras_<name>.spec.json (NHWC
input; the preprocessing of keras.applications' preprocess_input for that architecture, checked
against the function itself on the photos) and reference_keras.json (Keras' logits statistics and
top-5 on the photos). Shared with the PyTorch export: <out>/classes.txt, <out>/images/,
<out>/images.txt.
"""
import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Calibration runs on the CPU wherever the export runs: no GPU is initialised.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

from deltann_tools.export_study_models import (
    MODELS,
    checked_logit_stats,
    die,
    write_shared_files,
)

# name: (keras.applications constructor, module of its preprocess_input, spec preprocessing).
# preprocess_input's modes: "tf" scales pixels to [-1, 1] (x / 127.5 - 1); "caffe" turns RGB into
# BGR and subtracts the ImageNet mean per BGR channel, without scaling.
TF_MODE = {"channel_order": "RGB", "scale": 1.0, "mean": [127.5, 127.5, 127.5],
           "std": [127.5, 127.5, 127.5]}
CAFFE_MODE = {"channel_order": "BGR", "scale": 1.0, "mean": [103.939, 116.779, 123.68],
              "std": [1.0, 1.0, 1.0]}
ARCHITECTURES = {
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", TF_MODE),
    "resnet101": ("ResNet101", "resnet", CAFFE_MODE),
    "inception_v3": ("InceptionV3", "inception_v3", TF_MODE),
}
# The spec's arithmetic against preprocess_input on the same pixels (float32 rounding only).
MAX_PREPROCESS_DIFF = 1e-4

CALIBRATION = ("BatchNorm moving statistics from one forward pass in training mode with momentum "
               "0 (so they become that pass's batch statistics) over {n} real photos: the {p} "
               "demo photos each as a centre crop, its mirror image and a centre crop after "
               "resizing the shorter side to 1.5x the crop size, preprocessed by "
               "keras.applications.{module}.preprocess_input")


def pixel_view(tf: Any, path: Path, resize: int, crop: int, flip: bool = False) -> Any:
    """The photo as float32 RGB pixels 0..255, HWC: shorter side -> `resize` (bilinear, no
    antialiasing, as deltann's OpenCV preprocessing), centre crop `crop`."""
    image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    h, w = int(image.shape[0]), int(image.shape[1])
    s = resize / min(w, h)
    size = (max(resize, round(h * s)), max(resize, round(w * s)))
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=False)
    top, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    image = image[top:top + crop, left:left + crop, :]
    if flip:
        image = image[:, ::-1, :]
    return image.numpy()


def spec_preprocess(pixels: Any, mode: dict[str, Any], np: Any) -> Any:
    """deltann's preprocessing of a spec (src/data/preprocess.cpp): channel c of the output takes
    source channel c (RGB) or 2 - c (BGR), then (v * scale - mean[c]) / std[c]."""
    x = pixels[..., ::-1] if mode["channel_order"] == "BGR" else pixels
    return (x * mode["scale"] - np.array(mode["mean"], np.float32)) / np.array(mode["std"],
                                                                                np.float32)


def calibrate(model: Any, batch: Any, keras: Any) -> int:
    """Sets every BatchNormalization layer's moving statistics to those of `batch`."""
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        die("model has no BatchNormalization layer to calibrate")
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # moving = momentum * moving + (1 - momentum) * batch statistic
    model(batch, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return len(norms)


def export_model(name: str, out: Path, seed: int, photos: list[tuple[Path, int]],
                 classes: list[str], modules: tuple[Any, ...]) -> dict[str, Any]:
    np, tf, keras = modules
    constructor, module, mode = ARCHITECTURES[name]
    preprocess_input = getattr(keras.applications, module).preprocess_input
    resize, crop = MODELS[name]
    stem = f"keras_{name}"
    folder = out / stem
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    evaluation = [pixel_view(tf, p, resize, crop) for p, _ in photos]
    views = (evaluation + [pixel_view(tf, p, resize, crop, flip=True) for p, _ in photos]
             + [pixel_view(tf, p, int(crop * 1.5), crop) for p, _ in photos])
    # The spec must say what preprocess_input does: checked on every view.
    worst = max(float(np.max(np.abs(spec_preprocess(v, mode, np)
                                    - preprocess_input(v.copy())))) for v in views)
    if worst > MAX_PREPROCESS_DIFF:
        die(f"{name}: the spec's preprocessing differs from keras.applications.{module}."
            f"preprocess_input by {worst:.3g}")
    calib = np.stack([preprocess_input(v.copy()) for v in views])

    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, constructor)(
        weights=None, classifier_activation=None, input_shape=(crop, crop, 3))
    n_bn = calibrate(model, calib, keras)
    t_cal = time.monotonic()

    logits = np.concatenate([np.asarray(model(calib[i:i + 1], training=False))
                             for i in range(len(evaluation))]).astype(np.float64)
    stats = checked_logit_stats(name, "Keras", logits, np)

    path = folder / f"{stem}.keras"
    model.save(path)
    calibration = CALIBRATION.format(n=len(views), p=len(photos), module=module)
    spec = {
        "name": stem,
        "source": (f"keras.applications.{constructor}(weights=None, classifier_activation="
                   f"None): seeded random weights (keras seed {seed}) with BatchNorm statistics "
                   f"calibrated on real photos; NOT pretrained, so predicted labels are "
                   f"meaningless for accuracy, but differences between engines running it are "
                   f"real"),
        # The input layer's name: what a reloaded model and the converters call the input.
        "input": {"name": model.layers[0].name, "shape": [1, crop, crop, 3], "layout": "NHWC",
                  "dtype": "float32", "resize": resize, "crop": crop,
                  "interpolation": "bilinear", **mode},
        "output": {"name": "", "classes": 1000, "label_offset": 0, "kind": "logits",
                   "class_names": "../classes.txt"},
        "weights": {"seed": seed, "calibration": calibration, "pretrained": False,
                    "framework": f"keras {keras.__version__}"},
    }
    (folder / f"{stem}.spec.json").write_text(json.dumps(spec, indent=2) + "\n")

    images = []
    for (photo, label), row in zip(photos, logits, strict=True):
        order = np.argsort(-row)[:5]
        images.append({"image": f"images/{photo.name}", "label": label,
                       "top5": [{"class": int(c), "name": classes[c],
                                 "logit": round(float(row[c]), 5)} for c in order]})
    reference = {"model": stem, "framework": f"keras {keras.__version__}, tensorflow "
                 f"{tf.__version__}", "seed": seed, "pretrained": False,
                 "preprocessing": (f"tf.image.resize: shorter side {resize} bilinear, centre "
                                   f"crop {crop}, keras.applications.{module}.preprocess_input, "
                                   "NHWC"),
                 "logits": stats, "images": images}
    (folder / "reference_keras.json").write_text(json.dumps(reference, indent=2) + "\n")
    t_end = time.monotonic()
    print(f"{stem}: {model.count_params() / 1e6:.1f}M parameters, {n_bn} BatchNorm layers "
          f"calibrated on {len(views)} images ({t_cal - t0:.1f} s); .keras "
          f"{path.stat().st_size / 2**20:.1f} MiB; total {t_end - t0:.1f} s")
    print(f"  logits on {len(evaluation)} photos: min {stats['min']:.3f} max {stats['max']:.3f} "
          f"std {stats['std']:.3f}, median top-1 margin {stats['median_top1_margin']:.4f}, "
          f"{stats['distinct_top1']} distinct top-1; preprocessing vs preprocess_input "
          f"{worst:.1e}")
    return {"name": stem, "seconds": t_end - t0, "logits": stats}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--models", default=",".join(ARCHITECTURES),
                    help=f"comma-separated architectures (default {','.join(ARCHITECTURES)})")
    ap.add_argument("--seed", type=int, default=0, help="keras seed of the initial weights")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown or not names:
        die(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(ARCHITECTURES)}")
    try:
        import keras
        import numpy as np
        import tensorflow as tf
    except ImportError as e:
        die(f"cannot import {e.name}: run this with the TensorFlow venv's Python "
            "(.deps/venv-tf, made by scripts/setup)")
    photos, classes = write_shared_files(args.out)
    t0 = time.monotonic()
    results = [export_model(n, args.out, args.seed, photos, classes, (np, tf, keras))
               for n in names]
    print(f"wrote {args.out}/: {', '.join(r['name'] for r in results)} (.keras, .spec.json, "
          f"reference_keras.json each) in {time.monotonic() - t0:.1f} s")
    return results


if __name__ == "__main__":
    main()
