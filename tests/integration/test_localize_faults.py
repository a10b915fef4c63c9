"""`deltann localize` on models with one known injected fault: a copy of a small convolutional
network with one layer changed -- its padding, a BatchNorm epsilon, int8-quantised weights, or its
activation replaced -- runs as environment B (`--b-model`) against the original as A. Localisation
must name the changed layer as the first layer where the two runs part, report every layer before
it as identical (the same engine, the same settings, the same input), and name the cause: the
changed attribute, operator or weights of that layer's node.

Skipped with the reason where ONNX Runtime is not built or cannot capture.
"""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deltann_testlib import write_random_images

ENV = "ort:opt=disable,threads=1"
SIZE = 16


def conv(name, x, w, pads=(1, 1, 1, 1)):
    return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_out"], name=name,
                            kernel_shape=[3, 3], pads=list(pads))


def network(rs):
    """conv1 > relu1 > conv2 > bn2 > relu2 > conv3 > relu3 > gap > fc: every node has a named
    output, so the tensors of A and B match by name."""
    def w(*shape, scale=0.3):
        return rs.standard_normal(shape).astype(np.float32) * scale

    inits = {"conv1_w": w(8, 3, 3, 3), "conv1_b": w(8), "conv2_w": w(8, 8, 3, 3),
             "conv2_b": w(8), "bn2_scale": 1 + w(8, scale=0.1), "bn2_bias": w(8, scale=0.1),
             "bn2_mean": w(8, scale=0.1),
             # small variances make the epsilon matter, as in real networks' late layers
             "bn2_var": np.abs(w(8, scale=0.01)).astype(np.float32) + 1e-4,
             "conv3_w": w(8, 8, 3, 3), "conv3_b": w(8), "fc_w": w(10, 8), "fc_b": w(10)}
    nodes = [
        conv("conv1", "input", "conv1_w"),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        conv("conv2", "relu1_out", "conv2_w"),
        helper.make_node("BatchNormalization",
                         ["conv2_out", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"],
                         ["bn2_out"], name="bn2", epsilon=1e-5),
        helper.make_node("Relu", ["bn2_out"], ["relu2_out"], name="relu2"),
        conv("conv3", "relu2_out", "conv3_w"),
        helper.make_node("Relu", ["conv3_out"], ["relu3_out"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["relu3_out"], ["gap_out"], name="gap"),
        helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flat", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "faults",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def set_attribute(n, name, value):
    for a in n.attribute:
        if a.name == name:
            n.attribute.remove(a)
            break
    n.attribute.append(helper.make_attribute(name, value))


def quantise_initialiser(model, name):
    """Symmetric per-tensor int8 rounding of one weight tensor, stored back as float."""
    init = next(i for i in model.graph.initializer if i.name == name)
    w = numpy_helper.to_array(init)
    scale = np.abs(w).max() / 127
    init.CopyFrom(numpy_helper.from_array((np.round(w / scale) * scale).astype(np.float32), name))


# What `localize --b-model` must name as the cause at the jump layer, per fault, and its kind.
CAUSES = {"padding": ("attribute pads", "[1,1,1,1]", "[2,2,0,0]", "padding-shifted"),
          "bn_epsilon": ("attribute epsilon", "1e-05", "0.01", "epsilon-changed"),
          "quantised_weights": ("weights conv3_w (input 1)", None, None, "quantised"),
          "activation": ("op", "Relu", "LeakyRelu", "op-replaced")}


def inject(model, fault):
    """The faulty copy and the tensor where the fault first shows."""
    faulty = onnx.ModelProto()
    faulty.CopyFrom(model)
    if fault == "padding":  # same output size, content shifted by one pixel
        set_attribute(node(faulty, "conv2"), "pads", [2, 2, 0, 0])
        return faulty, "conv2_out"
    if fault == "bn_epsilon":
        set_attribute(node(faulty, "bn2"), "epsilon", 1e-2)
        return faulty, "bn2_out"
    if fault == "quantised_weights":
        quantise_initialiser(faulty, "conv3_w")
        return faulty, "conv3_out"
    if fault == "activation":
        relu = node(faulty, "relu1")
        relu.op_type = "LeakyRelu"
        relu.attribute.append(helper.make_attribute("alpha", 0.1))
        return faulty, "relu1_out"
    raise ValueError(fault)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    model = network(np.random.default_rng(11))
    path = folder / "net.onnx"
    onnx.save(model, str(path))
    (folder / "net.spec.json").write_text(json.dumps({
        "name": "faults",
        "input": {"name": "input", "shape": [1, 3, SIZE, SIZE], "layout": "NCHW",
                  "resize": SIZE, "crop": SIZE},
        "output": {"name": "logits", "classes": 10, "label_offset": 0, "kind": "logits"}}))
    image = write_random_images(folder / "images", [(24, 20)], seed=5)[0]
    return model, path, image


@pytest.mark.parametrize("fault", ["padding", "bn_epsilon", "quantised_weights", "activation"])
def test_localize_names_the_faulty_layer(deltann, original, tmp_path, fault):
    model, path, image = original
    faulty, expected = inject(model, fault)
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(faulty, str(faulty_path))
    result = deltann.run("localize", "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                         "--b-model", faulty_path, "--json", expect_rc=None)
    if result.returncode != 0 and "cannot capture" in result.stderr:
        pytest.skip(f"ONNX Runtime cannot capture here: {result.stderr.strip()}")
    assert result.returncode == 3, result.describe()  # A and B diverge
    assert f"the first jump at '{expected}'" in result.stderr, result.describe()
    report = json.loads(result.stdout)
    assert report["jump"] is not None, report
    assert report["jump"]["name"] == expected, (fault, report["jump"])
    layers = report["layers"]
    names = [layer["name"] for layer in layers]
    assert expected in names and "logits" in names
    for layer in layers[:names.index(expected)]:
        assert layer["max_abs"] == 0, (fault, layer)
    assert layers[names.index("logits")]["above_threshold"], (fault, layers[-1])
    # The cause: the parameters of the jump layer's own node that differ between the two files,
    # and nothing else anywhere in the model.
    what, a, b, kind = CAUSES[fault]
    cause = {c["what"]: c for c in report["cause"]}
    assert what in cause, (fault, report["cause"])
    assert cause[what]["kind"] == kind, (fault, cause[what])
    assert all(c["output"] == expected for c in report["parameter_differences"]), report
    if a is not None:
        assert (cause[what]["a"], cause[what]["b"]) == (a, b), cause[what]
    if fault == "quantised_weights":
        assert "quantised" in cause[what]["note"] and cause[what]["max_abs"] > 0
        assert cause[what]["details"]["bits"] == 8, cause[what]
        assert cause[what]["details"]["granularity"] == "per-tensor", cause[what]
    if fault == "padding":
        assert cause[what]["details"]["shift"] == [1, 1], cause[what]


def test_identical_models_agree_everywhere(deltann, original):
    _, path, image = original
    result = deltann.run("localize", "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                         "--b-model", path, "--json")
    report = json.loads(result.stdout)
    assert report["jump"] is None and report["above_threshold"] == 0
    assert report["matched"] >= 9 and all(layer["max_abs"] == 0 for layer in report["layers"])


def test_b_spec_without_b_model_is_a_usage_error(deltann, original):
    _, path, image = original
    result = deltann.run("localize", "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                         "--b-spec", "x.json", expect_rc=2)
    assert "--b-spec needs --b-model" in result.stderr
