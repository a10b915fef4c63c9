"""The study-model exporter (python/deltann_tools/export_study_models.py) on MobileNetV2, the
smallest of the three: files, spec schema, bit-identical weights for the same seed, realistic
logits after BatchNorm calibration, and ONNX Runtime agreeing with PyTorch. Takes ~20 s."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

NAME = "mobilenet_v2"


def run_exporter(source_dir, out, *extra):
    # deltann_tools is on PYTHONPATH (python/), as for every test.
    proc = subprocess.run([sys.executable, "-m", "deltann_tools.export_study_models", "--out",
                           str(out), *extra],
                          capture_output=True, text=True, timeout=300)
    return proc


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(source_dir, tmp_path_factory):
    """assets-like folders of two exports with seed 0 and one with seed 1."""
    for module in ("torch", "torchvision", "onnx", "onnxruntime", "PIL"):
        pytest.importorskip(module, reason=f"the exporter needs {module}")
    runs = {}
    for tag, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path_factory.mktemp(f"study_{tag}")
        proc = run_exporter(source_dir, out, "--models", NAME, "--seed", str(seed))
        assert proc.returncode == 0, f"exporter failed:\n{proc.stdout}\n{proc.stderr}"
        runs[tag] = (out, proc.stdout)
    return runs


def test_files_and_images(exported):
    out, stdout = exported["a"]
    folder = out / NAME
    for f in (f"{NAME}.pth", f"{NAME}.onnx", f"{NAME}.spec.json", "reference_pytorch.json"):
        assert (folder / f).is_file() and (folder / f).stat().st_size > 0, f
    assert len((out / "classes.txt").read_text().splitlines()) == 1000
    entries = [line.split("#")[0].split() for line in (out / "images.txt").read_text().splitlines()]
    entries = [e for e in entries if e]
    assert len(entries) == 9
    for path, label in entries:
        assert (out / path).is_file(), path
        assert 0 <= int(label) < 1000
    assert "logits on 9 photos" in stdout and "ONNX (opset" in stdout


def test_spec_schema(exported):
    out, _ = exported["a"]
    spec = json.loads((out / NAME / f"{NAME}.spec.json").read_text())
    assert spec["name"] == NAME
    assert "NOT pretrained" in spec["source"]
    i = spec["input"]
    assert i["name"] == "input" and i["shape"] == [1, 3, 224, 224]
    assert (i["layout"], i["channel_order"], i["dtype"]) == ("NCHW", "RGB", "float32")
    assert (i["resize"], i["crop"], i["interpolation"]) == (256, 224, "bilinear")
    assert i["scale"] == pytest.approx(1 / 255)
    assert i["mean"] == [0.485, 0.456, 0.406] and i["std"] == [0.229, 0.224, 0.225]
    o = spec["output"]
    assert (o["name"], o["classes"], o["label_offset"], o["kind"]) == ("logits", 1000, 0, "logits")
    assert (out / NAME / o["class_names"]).resolve() == (out / "classes.txt").resolve()
    src = spec["sources"]["pytorch"]
    assert src == {"file": f"{NAME}.pth", "architecture": NAME}
    assert (out / NAME / src["file"]).is_file()
    w = spec["weights"]
    assert w["seed"] == 0 and w["pretrained"] is False and "BatchNorm" in w["calibration"]
    assert len(w["state_sha256"]) == 64


def test_same_seed_same_weights(exported):
    (a, _), (b, _), (c, _) = exported["a"], exported["b"], exported["c"]
    pth, onnx_file = f"{NAME}/{NAME}.pth", f"{NAME}/{NAME}.onnx"
    assert sha256(a / pth) == sha256(b / pth)
    assert sha256(a / onnx_file) == sha256(b / onnx_file)
    spec = lambda d: json.loads((d / NAME / f"{NAME}.spec.json").read_text())  # noqa: E731
    assert spec(a)["weights"]["state_sha256"] == spec(b)["weights"]["state_sha256"]
    # Another seed gives other weights.
    assert spec(c)["weights"]["seed"] == 1
    assert spec(a)["weights"]["state_sha256"] != spec(c)["weights"]["state_sha256"]
    assert sha256(a / pth) != sha256(c / pth)


@pytest.fixture(scope="module")
def logits(exported):
    """PyTorch (rebuilt from the .pth through architectures.load) and ONNX Runtime logits on
    the 9 photos, preprocessed as the spec says."""
    import onnxruntime as ort
    import torch
    from deltann_tools import architectures
    from deltann_tools.export_study_models import load_view
    from PIL import Image

    out, _ = exported["a"]
    model = architectures.load(NAME, out / NAME / f"{NAME}.pth")
    sess = ort.InferenceSession(str(out / NAME / f"{NAME}.onnx"),
                                providers=["CPUExecutionProvider"])
    pt, ox = [], []
    for path in sorted((out / "images").iterdir()):
        x = load_view(path, 256, 224, np, Image)
        with torch.no_grad():
            pt.append(model(torch.from_numpy(x)).numpy()[0])
        ox.append(sess.run(["logits"], {"input": x})[0][0])
    return np.array(pt, np.float64), np.array(ox, np.float64)


def test_realistic_logits(logits):
    pt, _ = logits
    assert pt.shape == (9, 1000)
    assert np.isfinite(pt).all()
    assert np.abs(pt).max() < 1e4
    assert pt.std() > 1e-3  # not collapsed to a constant
    # Calibrated BatchNorm: the photos are told apart (not one output for every image).
    assert np.abs(pt - pt.mean(axis=0)).max() > 1e-3


def test_onnx_matches_pytorch(logits, exported):
    pt, ox = logits
    assert np.abs(ox - pt).max() <= 1e-3 * np.abs(pt).max()
    ref = json.loads((exported["a"][0] / NAME / "reference_pytorch.json").read_text())
    assert ref["onnx_rel_logit_diff"] <= 1e-3
    assert ref["logits"]["max_abs"] == pytest.approx(np.abs(pt).max(), rel=1e-5)


def test_unknown_model_is_refused(source_dir, tmp_path):
    proc = run_exporter(source_dir, tmp_path, "--models", "vgg16")
    assert proc.returncode != 0
    assert "unknown model" in proc.stderr and "mobilenet_v2" in proc.stderr


def test_deltann_runs_the_export(exported, deltann):
    """deltann accepts the spec (class names in ../classes.txt) and ONNX Runtime runs it."""
    out, _ = exported["a"]
    r = deltann.run("run", "--model", out / NAME / f"{NAME}.onnx", "--images",
                    out / "images.txt", "--db", out / "c.db", "--env", "ort:opt=all,threads=1",
                    "--warmup", "0", "--repeat", "1")
    assert "9 results written" in r.stdout + r.stderr, r.describe()
