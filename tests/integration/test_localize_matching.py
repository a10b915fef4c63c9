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
                    "--json", *extra, expect_rc=None)
    report = json.loads(result.stdout)
    # 3: a layer diverges, 0: none does.
    assert result.returncode == (3 if report["jump"] else 0), result.describe()
    return report, result


def check_bias_fault_located(report, what):
    """Most of A's layers matched structurally, only the last one (the classifier) differs, and it
    is the first jump."""
    a_count = report["a"]["tensors"]
    layers = report["layers"]
    counts = report["match_counts"]
    structural = sum(n for method, n in counts.items()
                     if method.startswith(("structure", "output")))
    assert structural >= 0.8 * a_count, (what, counts, report["only_a"])
    assert report["unmatched"] == {"a": len(report["only_a"]), "b": len(report["only_b"])}
    for layer in layers:
        assert layer["match"] in ("name", "structure", "output") or layer["match"].startswith(
            ("structure+", "output+"))
        assert layer["comparable"], layer
    # Every layer but the classifier agrees: the round trip is exact up to the MatMul.
    assert max(layer["rel_l2"] for layer in layers[:-1]) < 1e-5, what
    jump = report["jump"]
    assert jump is not None, what
    assert jump["position"] == layers[-1]["position"] == a_count - 1, (what, jump)
    assert jump["op_a"] == "Gemm" and jump["op_b"] in ("MatMul", "Gemm"), jump
    # The classifier is the model output: paired by the output rule.
    assert jump["match"] == "output" and jump["name_b"] != jump["name"], jump
    assert jump["rule"] == "growth" and jump["above_threshold"], jump
    return jump


def test_tiny_model_round_trip(dl, models, tmp_path):
    (image,) = write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    report, result = localize(dl, models.tiny, image)
    assert report["a"]["env"] == "ort:opt=disable,device=cpu,threads=1"
    assert report["b"]["env"].startswith("ort@onnx>tflite>onnx:opt=disable")
    # c, r, g, f, logits: every one of A's five tensors has a counterpart in B; B's extra tensor
    # is the input's NHWC->NCHW transpose, whose shape (3 channels) no tensor of A has.
    assert report["match_counts"] == {"structure": 4, "output": 1}, report["match_counts"]
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
                  "--b", B_ENV, expect_rc=3).stdout
    assert "matched 5 layers: 1 by output, 4 by structure; only in A: 0, only in B: 1" in text, text
    assert "B layer" in text and "PartitionedCall:0" in text, text
    assert "first jump: layer 4 'logits' (Gemm / MatMul) = B's 'PartitionedCall:0' (output)" \
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
    # The parameters: the Pads folded into the next Convs give the same effective padding, so
    # the only difference left is the cause, the classifier's lost bias.
    assert [d["what"] for d in report["parameter_differences"]] == ["bias missing in B"], \
        report["parameter_differences"]
    assert report["cause"][0]["max_abs"] == pytest.approx(0.334, abs=1e-3)


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


# Cross-conversion parameter comparison (docs/LOCALIZE.md, the cause): the round trip's ONNX file is
# compared with A's through the layer matching, since no node or tensor name survives it.

def pair_of(report, output):
    return next(p for p in report["parameter_pairs"] if p["output"] == output)


def test_round_trip_cause_is_the_dropped_bias(dl, models, tmp_path):
    (image,) = write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    report, _ = localize(dl, models.tiny, image)
    assert report["jump"]["name"] == "logits"
    # Without --b-model, B's converted artifact is the second file.
    assert report["parameters_from"].endswith(".onnx") and "b_model" not in report
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64)
             for i in onnx.load(str(models.tiny)).graph.initializer}
    cause = {c["what"]: c for c in report["cause"]}
    assert list(cause) == ["bias missing in B"], report["cause"]
    bias = cause["bias missing in B"]
    assert bias["output"] == "logits" and bias["output_b"] == report["jump"]["name_b"]
    assert bias["max_abs"] == pytest.approx(np.abs(inits["fc_b"]).max(), rel=1e-6)
    assert "fc_b" in bias["a"]
    # Nothing else differs: the Conv's weights and bias survive exactly, in ONNX's OIHW order,
    # and the classifier's weights are the same values transposed (Gemm transB=1 -> MatMul).
    assert report["parameter_differences"] == report["cause"]
    conv = pair_of(report, "c")
    assert conv["status"] == "same" and conv["op_b"] == "Conv", conv
    weights = {t["a"]: t for t in conv["tensors"]}
    assert weights["conv_w"]["max_abs"] == 0 and weights["conv_w"]["layout"] == "same", conv
    assert weights["conv_b"]["max_abs"] == 0, conv
    fc = pair_of(report, "logits")
    assert fc["status"] == "differs" and fc["op_a"] == "Gemm" and fc["op_b"] == "MatMul", fc
    weights = {t["a"]: t for t in fc["tensors"]}
    assert weights["fc_w"]["layout"] == "transposed" and weights["fc_w"]["max_abs"] == 0, fc
    assert weights["fc_b"]["b"] == "" and weights["fc_b"]["note"] == "bias missing in B", fc
    assert all(pair_of(report, name)["status"] == "same" for name in ("c", "r", "g", "f"))
    text = dl.run("localize", "--model", models.tiny, "--image", image, "--a", A_ENV,
                  "--b", B_ENV, expect_rc=3).stdout
    assert "parameter differences between the two model files (B's: " in text, text
    assert " > " in text and "(logits) ~ B's " in text and "bias missing in B" in text, text


def quantisable_model(folder, spec):
    """Like the tiny classifier but with weights of 1024 elements or more (conv2: 32x16x3x3, fc:
    40x32), which TFLite's dynamic-range quantisation stores as int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rs = np.random.RandomState(7)
    inits = {"conv1_w": rs.randn(16, 3, 3, 3) * 0.3, "conv1_b": rs.randn(16) * 0.1,
             "conv2_w": rs.randn(32, 16, 3, 3) * 0.1, "conv2_b": rs.randn(32) * 0.1,
             "fc_w": rs.randn(40, 32) * 0.3, "fc_b": rs.randn(40) * 0.1}
    nodes = [
        helper.make_node("Conv", ["input", "conv1_w", "conv1_b"], ["c1"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2_w", "conv2_b"], ["c2"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "quantisable",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 40])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / "quantisable.onnx"
    onnx.save(model, str(path))
    spec = dict(spec, name="quantisable")
    spec["output"] = dict(spec["output"], classes=40)
    (folder / "quantisable.spec.json").write_text(json.dumps(spec))
    return path


def test_quantised_round_trip_reports_int8_weights(dl, models, tmp_path):
    spec = json.loads(models.tiny.with_suffix(".spec.json").read_text())
    model = quantisable_model(tmp_path, spec)
    (image,) = write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    result = dl.run("localize", "--model", model, "--image", image, "--a", A_ENV,
                    "--b", "ort@onnx>tflite>onnx:opt=disable,quantize=dynamic", "--json",
                    expect_rc=3)
    report = json.loads(result.stdout)
    assert report["jump"] is not None, report["layers"]
    int8 = [d for d in report["parameter_differences"]
            if "int8 weights (DequantizeLinear)" in d["note"]]
    # Both large weights are int8 in B (the per-channel scales leave thousands of distinct values,
    # so the DequantizeLinear, not a count, says so); the first jump is the quantised Conv.
    assert report["jump"]["name"] == "c2", report["jump"]
    assert {d["output"] for d in int8} == {"c2", "logits"}, report["parameter_differences"]
    for d in int8:
        assert d["max_abs"] > 0 and d["what"].startswith("weights "), d
        assert d["node_b"] and d["output_b"], d
    conv2 = {t["a"]: t for t in pair_of(report, "c2")["tensors"]}
    assert conv2["conv2_w"]["note"] == "int8 weights (DequantizeLinear)", conv2
    assert 0 < conv2["conv2_w"]["max_abs"] < 0.01, conv2
    # The small first Conv stays float32 and identical.
    conv1 = pair_of(report, "c1")
    assert conv1["status"] == "same", conv1
