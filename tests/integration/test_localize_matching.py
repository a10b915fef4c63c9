"""Structural layer matching in `deltann localize` (docs/LOCALIZE.md, "Matching"): ONNX Runtime on
a model against ONNX Runtime on its tf2onnx round trip `ort@onnx>tflite>onnx`, whose tensor names
are all TFLite's. No name matches, so every pair comes from the structural alignment; the known
tf2onnx fault (the bias of the final FULLY_CONNECTED dropped, docs/CONVERSIONS.md) must be located
at the classifier layer as the first jump, with every layer before it in agreement.

Skipped with the reason where ONNX Runtime or the TFLite engine (whose venv holds the converters)
is not built. The module shares one artifact cache, so each conversion runs once.
"""
import json
import subprocess

import numpy as np
import pytest

from deltann_testlib import Deltann, env_path, write_random_images

A_ENV = "ort:opt=disable"
B_ENV = "ort@onnx>tflite>onnx:opt=disable"


@pytest.fixture(scope="module")
def engines(deltann_bin):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {b["name"] for b in json.loads(proc.stdout)}
    missing = {"ort", "tflite"} - names
    if missing:
        pytest.skip(f"engines not built here: {', '.join(sorted(missing))}")
    return names


@pytest.fixture(scope="module")
def dl(deltann_bin, tmp_path_factory, engines):
    cache = tmp_path_factory.mktemp("matching_cache")
    return Deltann(deltann_bin, cache, timeout=600)


def localize(dl, model, image, *extra):
    result = dl.run("localize", "--model", model, "--image", image, "--a", A_ENV, "--b", B_ENV,
                    "--json", *extra)
    return json.loads(result.stdout), result


def check_bias_fault_located(report, what):
    """Most of A's layers matched structurally, only the last one (the classifier) differs, and it
    is the first jump."""
    a_count = report["a"]["tensors"]
    layers = report["layers"]
    counts = report["match_counts"]
    structural = sum(n for method, n in counts.items() if method.startswith("structure"))
    assert structural >= 0.8 * a_count, (what, counts, report["only_a"])
    assert report["unmatched"] == {"a": len(report["only_a"]), "b": len(report["only_b"])}
    for layer in layers:
        assert layer["match"] in ("name", "structure") or layer["match"].startswith("structure+")
        assert layer["comparable"], layer
    # Every layer but the classifier agrees: the round trip is exact up to the MatMul.
    assert max(layer["rel_l2"] for layer in layers[:-1]) < 1e-5, what
    jump = report["jump"]
    assert jump is not None, what
    assert jump["position"] == layers[-1]["position"] == a_count - 1, (what, jump)
    assert jump["op_a"] == "Gemm" and jump["op_b"] in ("MatMul", "Gemm"), jump
    assert jump["match"].startswith("structure") and jump["name_b"] != jump["name"], jump
    assert jump["rule"] == "growth" and jump["above_threshold"], jump
    return jump


def test_tiny_model_round_trip(dl, models, tmp_path):
    (image,) = write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    report, result = localize(dl, models.tiny, image)
    assert report["a"]["env"] == "ort:opt=disable,device=cpu,threads=1"
    assert report["b"]["env"].startswith("ort@onnx>tflite>onnx:opt=disable")
    # c, r, g, f, logits: every one of A's five tensors has a counterpart in B; B's extra tensor
    # is the input's NHWC->NCHW transpose, whose shape (3 channels) no tensor of A has.
    assert report["match_counts"] == {"structure": 5}, report["match_counts"]
    assert report["only_a"] == [] and len(report["only_b"]) == 1
    assert [layer["name"] for layer in report["layers"]] == ["c", "r", "g", "f", "logits"]
    assert [layer["op_b"] for layer in report["layers"]] == \
        ["Conv", "Relu", "GlobalAveragePool", "Reshape", "MatMul"]
    jump = check_bias_fault_located(report, "tiny")
    assert jump["name"] == "logits"
    # The classifier's logits are shifted by exactly minus its bias.
    import onnx
    from onnx import numpy_helper
    bias = {i.name: numpy_helper.to_array(i)
            for i in onnx.load(str(models.tiny)).graph.initializer}["fc_b"].astype(np.float64)
    assert jump["max_abs"] == pytest.approx(np.abs(bias).max(), abs=1e-3)
    # The table shows B's names and how each layer was matched.
    text = dl.run("localize", "--model", models.tiny, "--image", image, "--a", A_ENV,
                  "--b", B_ENV).stdout
    assert "matched 5 layers: 5 by structure; only in A: 0, only in B: 1" in text, text
    assert "B layer" in text and "PartitionedCall:0" in text, text
    assert "first jump: layer 4 'logits' (Gemm / MatMul) = B's 'PartitionedCall:0' (structure)" \
        in text, text


def test_demo_model_round_trip(dl):
    """EfficientNet-Lite0: tf2onnx folds each of the 17 Pads into the Conv after it, so those stay
    unmatched; the other 94 of ONNX Runtime's 111 tensors pair structurally, identical up to the
    logits."""
    demo = env_path("DELTANN_DEMO_DIR", "the demo model made by scripts/setup")
    model = demo / "efficientnet-lite0.onnx"
    if not model.is_file():
        pytest.skip(f"{model} missing (run scripts/setup)")
    image = sorted((demo / "images").iterdir())[0]
    report, result = localize(dl, model, image)
    assert report["a"]["tensors"] == 111
    check_bias_fault_located(report, "demo")
    assert report["jump"]["name"] == "logits"
    assert report["matched"] >= 90, report["match_counts"]
    assert all("Pad" in name for name in report["only_a"]), report["only_a"]
    # Matched pairs run the same op (tf2onnx keeps ONNX's ops) except at the dropped bias.
    assert all(layer["op_a"] == layer["op_b"] for layer in report["layers"][:-1])


def test_litert_nhwc_capture_against_onnx_runtime(dl, models, tmp_path):
    """LiteRT holds the converted model's tensors NHWC and fuses the ReLU into CONV_2D: its fused
    output pairs with ONNX Runtime's Relu after the NHWC->NCHW transpose, and the two agree."""
    (image,) = write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    result = dl.run("localize", "--model", models.tiny, "--image", image, "--a", A_ENV,
                    "--b", "tflite@onnx>tflite:opt=none", "--json", expect_rc=None)
    if result.returncode != 0 and "cannot capture" in result.stderr:
        pytest.skip("this build's LiteRT worker cannot capture")
    assert result.returncode == 0, result.describe()
    report = json.loads(result.stdout)
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert by_name["r"]["match"] == "structure+nchw<-nhwc", report["layers"]
    assert by_name["r"]["shape_b"] == [1, 8, 8, 4] and by_name["r"]["op_b"] == "CONV_2D"
    assert "logits" in by_name and "c" in report["only_a"]  # the pre-activation Conv is fused
    assert max(layer["rel_l2"] for layer in report["layers"]) < 1e-5
    assert report["jump"] is None
