"""`deltann precision` (docs/PRECISION.md) on the demo model's quantised chain: the TFLite
converter's dynamic-range quantisation (`tflite@onnx>tflite:quantize=dynamic`) changes the top-1
label of a few corrupted demo photos against the float conversion. The search must find a set of
layers that, kept in float, gives every label back, smaller than all quantised layers, and write
that model; the candidate writer must give exactly the float model with every layer kept and
exactly the quantised one with none.

The module shares one artifact cache, so each conversion runs once (about a minute on two cores
with the search). Skipped with the reason where the tflite engine is not built or the demo
assets are missing.
"""
import json
import subprocess

import pytest

from deltann_testlib import Deltann, assert_one_minimal, photos_and_flipping

QUANTISED = "tflite@onnx>tflite:quantize=dynamic"
FLOAT = "tflite@onnx>tflite"
# Two corrupted photos whose label the int8 weights change (measured with onnx2tf 1.29 and
# TensorFlow 2.19; the test checks that they still do before it relies on them).
FLIPPING = ["apple-e86879de__snow-2.png", "orange-152c20d2__impulse_noise-2.png"]


@pytest.fixture(scope="module")
def dl(deltann_bin, tmp_path_factory):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    engines = {b["name"] for b in json.loads(proc.stdout)}
    if "tflite" not in engines:
        pytest.skip("the tflite engine is not built here")
    deltann = Deltann(deltann_bin, tmp_path_factory.mktemp("precision-cache"), timeout=600)
    deltann.engines = engines
    return deltann


@pytest.fixture(scope="module")
def image_list(demo_folder, tmp_path_factory):
    """The nine demo photos (their labels agree) and the two that flip, as a list file."""
    listing = tmp_path_factory.mktemp("precision-images") / "images.txt"
    return listing, photos_and_flipping(demo_folder, FLIPPING, listing)


@pytest.fixture(scope="module")
def search(dl, demo_folder, image_list, tmp_path_factory):
    listing, _ = image_list
    out = tmp_path_factory.mktemp("precision-out") / "kept.tflite"
    run = dl.run("precision", "--model", demo_folder / "efficientnet-lite0.onnx", "--a", FLOAT,
                 "--b", QUANTISED, "--image-set", listing, "-o", out, "--json")
    return json.loads(run.stdout), out, run


def test_found_layers_restore_the_labels(search, image_list):
    report, out, run = search
    _, n = image_list
    assert report["images"] == n
    assert report["agree_before"] < n, "the int8 weights no longer change these labels"
    flipped = {d["image"].rsplit("/", 1)[-1] for d in report["disagree_before"]}
    assert flipped <= set(FLIPPING), report["disagree_before"]
    assert report["outcome"] == "minimal", run.describe()
    assert report["agree_after"] == n and report["disagree_after"] == []
    kept = report["kept_in_float"]
    assert 0 < len(kept) < report["reduced_layers"]
    assert report["reduced_layers_after"] == report["reduced_layers"] - len(kept)
    # Float weights are four times the int8 ones: the model grows, but stays below the float one.
    assert report["size_before"] < report["size_after"] < 2 * report["size_before"]
    assert out.stat().st_size == report["size_after"]
    # Every candidate is recorded; the first two are B itself and every layer in float.
    candidates = report["candidates"]
    assert report["candidate_runs"] == len(candidates)
    assert candidates[0]["kept"] == [] and candidates[0]["agree"] == report["agree_before"]
    assert len(candidates[1]["kept"]) == report["reduced_layers"] and candidates[1]["restored"]
    found = sorted(layer["op_index"] for layer in kept)
    assert next(c for c in candidates if c["kept"] == found)["restored"]
    assert_one_minimal(found, candidates)


def test_written_model_has_the_found_layers_in_float(search, tf_python, source_dir):
    report, out, _ = search
    listing = tool(tf_python, source_dir, "--quantised", out, "--float", report["float_artifact"])
    left = {layer["op_index"] for layer in listing["layers"]}
    assert len(left) == report["reduced_layers_after"]
    assert not left & {layer["op_index"] for layer in report["kept_in_float"]}


def test_candidates_compute_as_float_and_as_quantised(search, tf_python, source_dir, tmp_path):
    """All layers kept gives the float model's output bit for bit, none the quantised one's:
    keeping a layer in float switches its kernel and nothing else."""
    report, _, _ = search
    q, f = report["b_artifact"], report["float_artifact"]
    every = ",".join(str(layer["op_index"]) for layer in
                     tool(tf_python, source_dir, "--quantised", q, "--float", f)["layers"])
    tool(tf_python, source_dir, "--quantised", q, "--float", f, "--keep", every,
         "--out", tmp_path / "all.tflite")
    tool(tf_python, source_dir, "--quantised", q, "--float", f, "--keep", "",
         "--out", tmp_path / "none.tflite")
    script = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
def run(path, x):
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])
q, f, all_, none = sys.argv[1:]
x = np.random.RandomState(0).randn(1, 224, 224, 3).astype(np.float32)
assert np.abs(run(q, x) - run(f, x)).max() > 1e-3, "the quantised model computes as the float"
assert np.array_equal(run(all_, x), run(f, x)), "every layer kept is not the float model"
assert np.array_equal(run(none, x), run(q, x)), "no layer kept is not the quantised model"
"""
    proc = subprocess.run([str(tf_python), "-c", script, q, f, str(tmp_path / "all.tflite"),
                           str(tmp_path / "none.tflite")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_text_report(dl, demo_folder, image_list, search, tmp_path):
    listing, n = image_list
    text = dl.run("precision", "--model", demo_folder / "efficientnet-lite0.onnx", "--a", FLOAT,
                  "--b", QUANTISED, "--image-set", listing, "-o", tmp_path / "k.tflite").stdout
    report = search[0]
    assert f"labels agreeing with A after: {n}/{n}" in text, text
    assert f"kept in float: {len(report['kept_in_float'])} of {report['reduced_layers']}" in text
    assert f"{report['candidate_runs']} candidate runs" in text


def test_unquantised_or_other_engines_are_refused(dl, demo_folder, image_list, tmp_path):
    listing, _ = image_list
    model = demo_folder / "efficientnet-lite0.onnx"
    run = dl.run("precision", "--model", model, "--a", FLOAT, "--b", FLOAT, "--image-set", listing,
                 "-o", tmp_path / "k.tflite", expect_rc=1)
    assert "is not quantised (quantize=none)" in run.stderr, run.describe()
    if "ort" in dl.engines:
        run = dl.run("precision", "--model", model, "--a", FLOAT, "--b", "ort", "--image-set",
                     listing, "-o", tmp_path / "k.tflite", expect_rc=1)
        assert "works on a quantised TFLite conversion" in run.stderr, run.describe()
    run = dl.run("precision", "--model", model, "--a", FLOAT, "--b", QUANTISED, "--image-set",
                 listing, expect_rc=2)
    assert "-o OUT are required" in run.stderr
    assert not (tmp_path / "k.tflite").exists()


def tool(tf_python, source_dir, *args):
    proc = subprocess.run([str(tf_python), "-I", str(source_dir / "python" / "deltann_tools" /
                                                     "precision_tflite.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
