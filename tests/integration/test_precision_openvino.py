"""`deltann precision` (docs/PRECISION.md) with OpenVINO at bf16: `openvino:precision=bf16` changes
the top-1 label of a few corrupted demo photos against `openvino` in f32. The search must find a
set of layers that, marked to stay f32, gives every label back, smaller than all layers, and write
that model as OpenVINO IR; with every layer marked the written model must compute as f32, with
none exactly as B.

Skipped with the reason where the openvino engine is not built, the CPU has no bf16 support
(OpenVINO's CPU plugin offers bf16 only with AVX512_BF16 or AMX) or the demo assets are missing.
"""
import json
import subprocess
import sys

import pytest

from deltann_testlib import Deltann, assert_one_minimal, photos_and_flipping

F32 = "openvino"
BF16 = "openvino:precision=bf16"
# Two corrupted photos whose label bf16 changes (measured with OpenVINO 2026.4 on a CPU with
# AVX512_BF16; the test checks that they still do before it relies on them).
FLIPPING = ["apple-e86879de__snow-2.png", "orange-152c20d2__gaussian_noise-2.png"]


def cpu_has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture(scope="module")
def dl(deltann_bin, tmp_path_factory):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if "openvino" not in {b["name"] for b in json.loads(proc.stdout)}:
        pytest.skip("the openvino engine is not built here")
    if not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 support in OpenVINO (AVX512_BF16 or AMX)")
    return Deltann(deltann_bin, tmp_path_factory.mktemp("precision-ov-cache"), timeout=600)


@pytest.fixture(scope="module")
def image_list(demo_folder, tmp_path_factory):
    """The nine demo photos and the two that flip under bf16, as a list file."""
    listing = tmp_path_factory.mktemp("precision-ov-images") / "images.txt"
    return listing, photos_and_flipping(demo_folder, FLIPPING, listing)


@pytest.fixture(scope="module")
def search(dl, demo_folder, image_list, tmp_path_factory):
    listing, _ = image_list
    out = tmp_path_factory.mktemp("precision-ov-out") / "kept.xml"
    run = dl.run("precision", "--model", demo_folder / "efficientnet-lite0.onnx", "--a", F32,
                 "--b", BF16, "--image-set", listing, "-o", out, "--json")
    return json.loads(run.stdout), out, run


def test_found_layers_restore_the_labels(search, image_list):
    report, out, run = search
    _, n = image_list
    assert report["reduced_precision"] == "bf16" and report["float"] is None
    assert report["agree_before"] < n, "bf16 no longer changes these labels"
    flipped = {d["image"].rsplit("/", 1)[-1] for d in report["disagree_before"]}
    assert flipped <= set(FLIPPING), report["disagree_before"]
    assert report["outcome"] == "minimal", run.describe()
    assert report["agree_after"] == n and report["disagree_after"] == []
    # Every convolution and the classifier can be kept: the written model avoids the plugin's
    # rewrites that would drop the mark (docs/PRECISION.md).
    assert report["not_keepable"] == []
    assert report["reduced_layers"] == 50
    kept = report["kept_in_float"]
    assert 0 < len(kept) < report["reduced_layers"]
    assert report["reduced_layers_after"] == report["reduced_layers"] - len(kept)
    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert out.stat().st_size + out.with_suffix(".bin").stat().st_size == report["size_after"]
    candidates = report["candidates"]
    assert candidates[0]["kept"] == [] and candidates[0]["agree"] == report["agree_before"]
    assert len(candidates[1]["kept"]) == report["reduced_layers"] and candidates[1]["restored"]
    found = sorted(layer["op_index"] for layer in kept)
    assert_one_minimal(found, candidates)


RUN_SCRIPT = """
import json, sys
import numpy as np
import openvino as ov
core = ov.Core()
x = np.random.RandomState(0).randn(1, 3, 224, 224).astype(np.float32)
def run(path, precision):
    compiled = core.compile_model(core.read_model(path), "CPU",
                                  {"INFERENCE_PRECISION_HINT": precision})
    runs_in = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        for name in info["originalLayersNames"].astype(str).split(","):
            runs_in[name] = info["runtimePrecision"].astype(str)
    return compiled(x)[0], runs_in
model, every, none, written = sys.argv[1:5]
f32, _ = run(model, "f32")
bf16, _ = run(model, "bf16")
y_every, _ = run(every, "bf16")
y_none, _ = run(none, "bf16")
_, runs_in = run(written, "bf16")
print(json.dumps({"bf16": float(np.abs(bf16 - f32).max()),
                  "every": float(np.abs(y_every - f32).max()),
                  "none_vs_b": float(np.abs(y_none - bf16).max()), "runs_in": runs_in}))
"""


def test_candidates_compute_as_f32_and_as_bf16(search, source_dir, tmp_path):
    """Every layer marked computes as f32 (to float rounding: the folded pads and the classifier
    as a 1x1 convolution sum in another order), none marked exactly as B; the written model runs
    its kept layers in f32 and the others in bf16."""
    report, out, _ = search
    model = report["b_artifact"]
    listing = tool(source_dir, "--model", model, "--precision", "bf16")
    every = ",".join(str(layer["op_index"]) for layer in listing["layers"])
    tool(source_dir, "--model", model, "--precision", "bf16", "--keep", every,
         "--out", tmp_path / "every.xml")
    tool(source_dir, "--model", model, "--precision", "bf16", "--keep", "",
         "--out", tmp_path / "none.xml")
    proc = subprocess.run([sys.executable, "-c", RUN_SCRIPT, model, str(tmp_path / "every.xml"),
                           str(tmp_path / "none.xml"), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["bf16"] > 1e-3, "bf16 computes as f32"
    assert got["every"] < 1e-4, got["every"]
    assert got["none_vs_b"] == 0.0
    kept = {layer["name"] for layer in report["kept_in_float"]}
    for layer in listing["layers"]:
        if layer["name"] in kept:
            assert got["runs_in"][layer["name"]] == "f32", layer["name"]
        else:  # an unmarked MatMul becomes a FullyConnected node named after its bias Add
            assert got["runs_in"].get(layer["name"], "bf16") == "bf16", layer["name"]


def test_refusals(dl, demo_folder, image_list, tmp_path):
    listing, _ = image_list
    model = demo_folder / "efficientnet-lite0.onnx"
    run = dl.run("precision", "--model", model, "--a", F32, "--b", F32, "--image-set", listing,
                 "-o", tmp_path / "k.xml", expect_rc=1)
    assert "runs OpenVINO in f32" in run.stderr, run.describe()
    run = dl.run("precision", "--model", model, "--a", F32, "--b", BF16, "--image-set", listing,
                 "-o", tmp_path / "k.tflite", expect_rc=1)
    assert "is a .xml file" in run.stderr, run.describe()
    run = dl.run("precision", "--model", model, "--a", F32, "--b", BF16, "--float", F32,
                 "--image-set", listing, "-o", tmp_path / "k.xml", expect_rc=1)
    assert "OpenVINO keeps layers in f32 itself" in run.stderr, run.describe()
    assert not (tmp_path / "k.xml").exists()


def tool(source_dir, *args):
    proc = subprocess.run([sys.executable, "-I", str(source_dir / "python" / "deltann_tools" /
                                                     "precision_openvino.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
