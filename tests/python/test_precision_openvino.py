"""deltann_tools.precision_openvino on a tiny OpenVINO model built here: the graph rewrites that
keep the `precise` mark alive (a zero Pad folded into the convolution, a MatMul as a 1x1
convolution) compute what the original computes, and a kept layer's mark reaches the nodes fused
into it but stops at the next layer. Compiling needs no bf16: everything runs in f32 on any CPU.

By hand: PYTHONPATH=python .deps/venv/bin/python -m pytest -q tests/python
"""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset13")

from deltann_tools import precision_openvino as tool  # noqa: E402


def tiny_model(path):
    """input -> zero Pad -> Conv(3x3) -> Add(bias) -> Relu -> Conv(1x1) -> Add(residual) ->
    ReduceMean -> MatMul(constant weights) -> Add(bias), saved as IR at `path`."""
    rng = np.random.default_rng(0)
    x = ops.parameter([1, 3, 8, 8], np.float32, name="input")
    pad = ops.pad(x, ops.constant(np.array([0, 0, 1, 1], np.int64)),
                  ops.constant(np.array([0, 0, 1, 1], np.int64)), "constant",
                  ops.constant(np.float32(0)))
    conv1 = ops.convolution(pad, ops.constant(rng.standard_normal((4, 3, 3, 3), np.float32)),
                            [1, 1], [0, 0], [0, 0], [1, 1])
    conv1.set_friendly_name("conv1")
    bias1 = ops.add(conv1, ops.constant(rng.standard_normal((1, 4, 1, 1), np.float32)))
    bias1.set_friendly_name("bias1")
    relu = ops.relu(bias1)
    relu.set_friendly_name("relu1")
    conv2 = ops.convolution(relu, ops.constant(rng.standard_normal((4, 4, 1, 1), np.float32)),
                            [1, 1], [0, 0], [0, 0], [1, 1])
    conv2.set_friendly_name("conv2")
    residual = ops.add(conv2, relu)
    residual.set_friendly_name("residual")
    pooled = ops.reduce_mean(residual, ops.constant(np.array([2, 3], np.int64)), False)
    fc = ops.matmul(pooled, ops.constant(rng.standard_normal((5, 4), np.float32)), False, True)
    fc.set_friendly_name("fc")
    logits = ops.add(fc, ops.constant(rng.standard_normal((5,), np.float32)))
    logits.set_friendly_name("logits")
    ov.save_model(ov.Model([logits], [x], "tiny"), str(path), compress_to_fp16=False)
    return path


def infer(path, x):
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(x)[0]


def marked(path):
    root = ET.parse(path).getroot()
    return {layer.get("name") for layer in root.iter("layer")
            if layer.find("rt_info/attribute[@name='precise']") is not None}


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "tiny.xml")


def test_layers_are_the_convolutions_and_the_matmul_after_the_pad_is_folded(model):
    m = tool.normalised(str(model))
    assert tool.fold_zero_pads(m) == 0  # already folded by normalised()
    assert "Pad" not in {op.get_type_name() for op in m.get_ordered_ops()}
    layers = tool.layers_of(m)
    assert [(layer["name"], layer["op"]) for layer in layers] == [
        ("conv1", "Convolution"), ("conv2", "Convolution"), ("fc", "MatMul")]
    assert [layer["weights"] for layer in layers] == [108, 16, 20]


def test_written_candidates_compute_as_the_model(model, tmp_path):
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = infer(model, x)
    for keep in ([], ["conv1"], ["fc"], ["conv1", "conv2", "fc"]):
        out = tmp_path / f"kept-{len(keep)}-{'-'.join(keep)}.xml"
        tool.write(str(model), keep, str(out))
        np.testing.assert_allclose(infer(out, x), want, rtol=1e-5, atol=1e-5)


def test_a_kept_layers_mark_reaches_its_epilogue_and_stops_at_the_next_layer(model, tmp_path):
    out = tmp_path / "conv1.xml"
    tool.write(str(model), ["conv1"], str(out))
    got = marked(out)
    assert {"conv1", "bias1", "relu1", "residual"} <= got
    assert "conv2" not in got and "fc" not in got
    out = tmp_path / "fc.xml"
    tool.write(str(model), ["fc"], str(out))
    assert "fc" in marked(out) and "logits" in marked(out)
    # The kept MatMul is now a convolution (the plugin would turn a MatMul into a FullyConnected
    # node and drop the mark).
    root = ET.parse(out).getroot()
    types = {layer.get("name"): layer.get("type") for layer in root.iter("layer")}
    assert types["fc"] == "Convolution"


def test_unknown_layer_indices_and_outputs_are_refused(model, tmp_path):
    layers = tool.layers_of(tool.normalised(str(model)))
    with pytest.raises(tool.PrecisionError, match="no layer 7"):
        tool.parse_keep("0,7", layers)
    with pytest.raises(tool.PrecisionError, match="not a layer index"):
        tool.parse_keep("conv1", layers)
    with pytest.raises(tool.PrecisionError, match=r"must end in \.xml"):
        tool.write(str(model), ["conv1"], str(tmp_path / "out.onnx"))
