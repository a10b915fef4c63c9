#!/usr/bin/env python3
"""Export the published DeltaNN study's architectures (MobileNetV2, ResNet-101, InceptionV3) as
seeded random models with calibrated BatchNorm statistics, as ONNX plus their PyTorch originals.

Usage: PYTHONPATH=python python -m deltann_tools.export_study_models --out assets/study
           [--models mobilenet_v2,resnet101,inception_v3] [--seed 0] [--opset N] [--threads 1]

No pretrained weights for these architectures are available offline, so each model gets
fixed-seed initial weights (torch.manual_seed(seed) before architectures.build), then its
BatchNorm running statistics are set from one forward pass, BatchNorm layers in train mode, over
real photos (the demo's 9 photos, each as a centre crop, its mirror image and a zoomed crop: 27
images) preprocessed at the model's input size. Without that step a randomly initialised network
in eval mode lets activations grow layer after layer (InceptionV3's logits reached 1e9), which
hides or exaggerates the numeric differences between engines. The labels such a model predicts are
meaningless (accuracy is not a finding), but differences between engines running it are real.

Written per model into <out>/<name>/: <name>.pth (state_dict), <name>.onnx (fixed batch 1, input
"input", output "logits"), <name>.spec.json (torchvision preprocessing; a `pytorch` source naming
the .pth and the architecture), reference_pytorch.json (PyTorch's logits statistics and top-5 on
the photos). Shared: <out>/classes.txt, <out>/images/ and <out>/images.txt (the demo photos and
their ImageNet labels). The same seed gives bit-identical weights (the spec records a SHA-256 of
the state_dict's tensors); the export is checked with onnx.checker and against ONNX Runtime.
"""
import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from deltann_tools import architectures
from deltann_tools.export_demo import CLASSES_SRC, PHOTOS, copy_maybe_gz

# torchvision's preprocessing for its ImageNet weights (transforms of the *_Weights enums).
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
MODELS = {
    # name: (resize, crop)
    "mobilenet_v2": (256, 224),
    "resnet101": (256, 224),
    "inception_v3": (342, 299),
}
# ONNX opset of the export: 13, except MobileNetV2 at 10. Its ReLU6 becomes Clip, and from opset
# 11 on Clip takes min/max as inputs, which OpenCV 4.6's ONNX importer rejects ("Node [Clip]
# parse error"; export_demo.py has the same constraint). At opset 10 Clip has min/max attributes
# and the model loads in ONNX Runtime, OpenCV and TVM. ResNet-101 and InceptionV3 have no Clip.
DEFAULT_OPSET = 13
OPSET_OVERRIDES = {"mobilenet_v2": 10}
# Sanity limits on PyTorch's logits over the photos after calibration.
MAX_ABS_LOGIT = 1e4
MIN_LOGIT_STD = 1e-4
# ONNX Runtime vs PyTorch: max |diff| relative to the largest |logit|.
MAX_REL_DIFF = 1e-3

CALIBRATION = ("BatchNorm running statistics from one forward pass (BatchNorm layers in train "
               "mode, everything else in eval mode, momentum=None) over {n} real photos: the "
               "{p} demo photos each as a centre crop, its mirror image and a centre crop after "
               "resizing the shorter side to 1.5x the crop size")


def die(msg: str) -> NoReturn:
    sys.exit(f"export_study_models: error: {msg}")


def need(module: str, hint: str) -> Any:
    try:
        return __import__(module)
    except ImportError as e:
        die(f"cannot import {module} ({e}); {hint}")


def load_view(path: Path, resize: int, crop: int, np: Any, Image: Any,
              flip: bool = False) -> Any:
    """PIL version of the spec's preprocessing: shorter side -> resize (bilinear), centre crop,
    x / 255, (x - mean) / std, RGB, NCHW (1x3xHxW). deltann preprocesses with OpenCV (no
    antialiasing when downscaling), so its tensors differ slightly from these."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = resize / min(w, h)
    img = img.resize((max(resize, round(w * s)), max(resize, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def state_sha256(state: dict[str, Any], np: Any) -> str:
    """SHA-256 over a state_dict's names, dtypes, shapes and bytes, in key order: equal for
    bit-identical weights whatever the container file looks like."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes() if t.dim() else np.array(t.item()).tobytes())
    return h.hexdigest()


def calibrate(model: Any, batch: Any, torch: Any) -> int:
    """Sets every BatchNorm layer's running statistics to the cumulative statistics of `batch`."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        die("model has no BatchNorm layer to calibrate")
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: after one pass, that pass's statistics
        m.train()
    with torch.no_grad():
        model(batch)
    for m in bns:
        m.momentum = 0.1  # torchvision's default, so the state_dict looks like any other
    model.eval()
    return len(bns)


def logit_stats(logits: Any, np: Any) -> dict[str, float]:
    """Statistics of PyTorch's logits (images x classes) on the photos."""
    srt = np.sort(logits, axis=1)
    return {
        "min": float(logits.min()), "max": float(logits.max()),
        "mean": float(logits.mean()), "std": float(logits.std()),
        "max_abs": float(np.abs(logits).max()),
        "mean_std_per_image": float(logits.std(axis=1).mean()),
        "median_top1_margin": float(np.median(srt[:, -1] - srt[:, -2])),
        "distinct_top1": len(set(np.argmax(logits, axis=1).tolist())),
    }


def checked_logit_stats(name: str, framework: str, logits: Any, np: Any) -> dict[str, float]:
    """logit_stats of a calibrated model's logits; stops the export when they are not finite,
    absurdly large or collapsed (the calibration failed)."""
    stats = logit_stats(logits, np)
    if not np.isfinite(logits).all():
        die(f"{name}: {framework} logits on the photos are not finite")
    if stats["max_abs"] > MAX_ABS_LOGIT:
        die(f"{name}: {framework} logits are absurd after calibration "
            f"(max |logit| {stats['max_abs']:.3g} > {MAX_ABS_LOGIT:g})")
    if stats["std"] < MIN_LOGIT_STD:
        die(f"{name}: {framework} logits have collapsed (std {stats['std']:.3g})")
    return stats


def export_model(name: str, out: Path, seed: int, opset: int, photos: list[tuple[Path, int]],
                 classes: list[str], modules: tuple[Any, ...]) -> dict[str, Any]:
    np, torch, onnx, ort, Image = modules
    resize, crop = MODELS[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    # Photos at the model's input size: the evaluation views (exactly the spec's preprocessing)
    # and the calibration batch (those plus a mirrored and a zoomed view of each).
    evaluation = [load_view(p, resize, crop, np, Image) for p, _ in photos]
    calib = (evaluation + [load_view(p, resize, crop, np, Image, flip=True) for p, _ in photos]
             + [load_view(p, int(crop * 1.5), crop, np, Image) for p, _ in photos])

    torch.manual_seed(seed)
    model = architectures.build(name)
    n_bn = calibrate(model, torch.from_numpy(np.concatenate(calib)), torch)
    t_cal = time.monotonic()

    state = model.state_dict()
    digest = state_sha256(state, np)
    pth = folder / f"{name}.pth"
    torch.save(state, str(pth))

    with torch.no_grad():
        logits = np.concatenate([model(torch.from_numpy(x)).numpy() for x in evaluation])
    stats = checked_logit_stats(name, "PyTorch", logits.astype(np.float64), np)

    onnx_path = folder / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(model, torch.from_numpy(evaluation[0]), str(onnx_path),
                          input_names=["input"], output_names=["logits"], opset_version=opset,
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    ort_logits = np.concatenate([sess.run(["logits"], {"input": x})[0] for x in evaluation])
    max_diff = float(np.abs(ort_logits.astype(np.float64) - logits).max())
    rel_diff = max_diff / max(stats["max_abs"], 1e-12)
    if not np.isfinite(ort_logits).all() or rel_diff > MAX_REL_DIFF:
        die(f"{name}: ONNX Runtime and PyTorch disagree (max |diff| {max_diff:.3g}, "
            f"{rel_diff:.3g} of max |logit|)")
    t_end = time.monotonic()

    calibration = CALIBRATION.format(n=len(calib), p=len(photos))
    spec = {
        "name": name,
        "source": (f"{architectures.ARCHITECTURES[name]}: seeded random weights (torch seed "
                   f"{seed}) with BatchNorm statistics calibrated on real photos; NOT pretrained, "
                   f"so predicted labels are meaningless for accuracy, but differences between "
                   f"engines running it are real"),
        "input": {
            "name": "input", "shape": [1, 3, crop, crop], "layout": "NCHW", "dtype": "float32",
            "channel_order": "RGB", "resize": resize, "crop": crop, "interpolation": "bilinear",
            "scale": 1.0 / 255.0, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
        },
        "output": {"name": "logits", "classes": 1000, "label_offset": 0, "kind": "logits",
                   "class_names": "../classes.txt"},
        "sources": {"pytorch": {"file": pth.name, "architecture": name}},
        "onnx_opset": opset,
        "weights": {"seed": seed, "calibration": calibration, "state_sha256": digest,
                    "pretrained": False},
    }
    (folder / f"{name}.spec.json").write_text(json.dumps(spec, indent=2) + "\n")

    images = []
    for (path, label), row in zip(photos, logits.astype(np.float64), strict=True):
        order = np.argsort(-row)[:5]
        images.append({"image": f"images/{path.name}", "label": label,
                       "top5": [{"class": int(c), "name": classes[c],
                                 "logit": round(float(row[c]), 5)} for c in order]})
    reference = {
        "model": name, "opset": opset, "framework": f"torch {torch.__version__}",
        "seed": seed, "state_sha256": digest, "pretrained": False,
        "preprocessing": (f"PIL: shorter side {resize} bilinear, centre crop {crop}, x/255, "
                          f"ImageNet mean/std, RGB, NCHW"),
        "logits": stats, "onnx_max_abs_logit_diff": max_diff,
        "onnx_rel_logit_diff": rel_diff, "images": images,
    }
    (folder / "reference_pytorch.json").write_text(json.dumps(reference, indent=2) + "\n")

    sizes = {p.name: p.stat().st_size for p in (pth, onnx_path)}
    print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{n_bn} BatchNorm layers calibrated on {len(calib)} images "
          f"({t_cal - t0:.1f} s); .pth {sizes[pth.name] / 2**20:.1f} MiB, "
          f".onnx {sizes[onnx_path.name] / 2**20:.1f} MiB; total {t_end - t0:.1f} s")
    print(f"  logits on {len(evaluation)} photos: min {stats['min']:.3f} max {stats['max']:.3f} "
          f"std {stats['std']:.3f} (per image {stats['mean_std_per_image']:.3f}), median top-1 "
          f"margin {stats['median_top1_margin']:.4f}, {stats['distinct_top1']} distinct top-1")
    print(f"  ONNX (opset {opset}) in ONNX Runtime vs PyTorch: max |diff| {max_diff:.2e} "
          f"({rel_diff:.1e} of max |logit|); state_dict sha256 {digest[:16]}")
    return {"name": name, "seconds": t_end - t0, "sha256": digest, "logits": stats,
            "onnx_max_abs_diff": max_diff, "sizes": sizes}


def write_shared_files(out: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """Writes what every study model shares into `out`: classes.txt, images/ (the demo photos)
    and images.txt. Returns the photos (path, ImageNet label) and the class names."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    copy_maybe_gz(CLASSES_SRC, out / "classes.txt")
    classes = (out / "classes.txt").read_text().splitlines()
    if len(classes) != 1000:
        die(f"classes.txt has {len(classes)} lines, expected 1000")
    lines = ["# <image relative to this file> <ImageNet class id>  # reason",
             "# The study models have random (BN-calibrated) weights: accuracy on these labels "
             "is meaningless."]
    photos = []
    for src, label, why in PHOTOS:
        dst = out / "images" / src.name
        copy_maybe_gz(src, dst)
        photos.append((dst, label))
        lines.append(f"images/{src.name} {label}  # {why}")
    (out / "images.txt").write_text("\n".join(lines) + "\n")
    return photos, classes


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated architectures (default {','.join(MODELS)})")
    ap.add_argument("--seed", type=int, default=0, help="torch seed of the initial weights")
    ap.add_argument("--opset", type=int, default=None,
                    help=f"ONNX opset of every export (default {DEFAULT_OPSET}, except "
                         f"{', '.join(f'{k} {v}' for k, v in OPSET_OVERRIDES.items())}: "
                         f"see OPSET_OVERRIDES)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and ONNX Runtime threads (default 1; results do not depend on it)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        die(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(MODELS)}")
    if args.threads < 1:
        die("--threads must be at least 1")

    np = need("numpy", "install python3-numpy")
    torch = need("torch", "install the Debian package python3-torch")
    need("torchvision", "install the Debian package python3-torchvision")
    onnx = need("onnx", "run scripts/setup (pip install onnx into .deps/venv)")
    ort = need("onnxruntime", "run scripts/setup (pip install onnxruntime into .deps/venv)")
    need("PIL", "install the Debian package python3-pil")
    from PIL import Image
    torch.set_num_threads(args.threads)

    out = args.out
    photos, classes = write_shared_files(out)

    t0 = time.monotonic()
    results = [export_model(n, out, args.seed,
                            args.opset or OPSET_OVERRIDES.get(n, DEFAULT_OPSET), photos, classes,
                            (np, torch, onnx, ort, Image)) for n in names]
    print(f"wrote {out}/: {', '.join(r['name'] for r in results)} "
          f"(.pth, .onnx, .spec.json, reference_pytorch.json each), classes.txt, images.txt, "
          f"images/ ({len(photos)}) in {time.monotonic() - t0:.1f} s")
    return results


if __name__ == "__main__":
    main()
