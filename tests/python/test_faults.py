"""tests/pylib/deltann_faults.py on small in-memory graphs: which Convs `positions()` picks, and
that the padding and operator faults work on a PyTorch-style graph (padding in the Conv's own
`pads`, a Relu after it) without changing any tensor's shape; and on the demo model, that the
picked positions are the ones the localize and repair tests name.

By hand: PYTHONPATH=python:tests/pylib .deps/venv/bin/python -m pytest -q tests/python
"""
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from deltann_faults import POSITIONS, inject, positions
from onnx import TensorProto, helper, numpy_helper, shape_inference


def conv(name, x, kernel, pads, bias=True, channels=4):
    """A Conv node and its initialisers (weights [channels, channels, k, k], optional bias)."""
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((channels, channels, kernel, kernel))
        .astype(np.float32), f"{name}.w")
    inits = [w]
    inputs = [x, w.name]
    if bias:
        b = numpy_helper.from_array(np.ones(channels, np.float32), f"{name}.b")
        inits.append(b)
        inputs.append(b.name)
    node = helper.make_node("Conv", inputs, [f"{name}_out"], name=name,
                            kernel_shape=[kernel, kernel], pads=pads)
    return node, inits


def torch_style_model():
    """x -> c0 (3x3, pads 1) -> Relu -> c1 (1x1) -> Relu -> c2 (3x3, pads 1) -> Relu
    -> c3 (3x3, no bias) -> Relu -> c4 (3x3, pads 1) -> Relu -> c5 (3x3, pads 1) -> Add."""
    layers = [("c0", 3, [1, 1, 1, 1], True, "Relu"), ("c1", 1, [0, 0, 0, 0], True, "Relu"),
              ("c2", 3, [1, 1, 1, 1], True, "Relu"), ("c3", 3, [1, 1, 1, 1], False, "Relu"),
              ("c4", 3, [1, 1, 1, 1], True, "Relu"), ("c5", 3, [1, 1, 1, 1], True, None)]
    nodes, inits, x = [], [], "x"
    for name, kernel, pads, bias, act in layers:
        node, params = conv(name, x, kernel, pads, bias)
        nodes.append(node)
        inits += params
        x = node.output[0]
        if act:
            nodes.append(helper.make_node(act, [x], [f"{name}_act"], name=f"{name}_relu"))
            x = f"{name}_act"
    nodes.append(helper.make_node("Add", [x, x], ["y"], name="add"))
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def shapes(model):
    inferred = shape_inference.infer_shapes(model)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in inferred.graph.value_info}


def test_positions_are_the_convs_every_kind_can_change():
    # c1 is 1x1, c3 has no bias, c5 feeds an Add: only c0, c2 and c4 qualify.
    assert positions(torch_style_model()) == {"early": "c0", "middle": "c2", "late": "c4"}


def test_padding_moves_the_convs_own_pads_and_keeps_every_shape():
    model = torch_style_model()
    fault = inject(model, "padding", "middle")
    changed = next(n for n in fault.model.graph.node if n.name == "c2")
    assert list(next(a.ints for a in changed.attribute if a.name == "pads")) == [2, 2, 0, 0]
    assert (fault.node, fault.jump, fault.kind) == ("c2", "c2_out", "padding-shifted")
    assert shapes(fault.model) == shapes(model)
    onnx.checker.check_model(fault.model)


def test_op_replaced_turns_the_relu_into_a_leaky_relu():
    fault = inject(torch_style_model(), "op_replaced", "late")
    act = next(n for n in fault.model.graph.node if n.name == "c4_relu")
    assert act.op_type == "LeakyRelu"
    assert (fault.jump, fault.details) == ("c4_act", {"op_a": "Relu", "op_b": "LeakyRelu"})


def test_clip_bound_needs_a_clip():
    with pytest.raises(ValueError, match="no Clip reads c0_out"):
        inject(torch_style_model(), "clip_bound", "early")


def test_a_model_without_such_a_conv_is_refused():
    node, inits = conv("only", "x", 1, [0, 0, 0, 0])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4, 8, 8])], [helper.make_tensor_value_info(
            "only_out", TensorProto.FLOAT, None)], inits)
    with pytest.raises(ValueError, match="no Conv with a bias"):
        positions(helper.make_model(graph))


def test_the_demo_models_positions_are_the_named_ones():
    path = Path(os.environ.get("DELTANN_DEMO_DIR", "assets/demo")) / "efficientnet-lite0.onnx"
    if not path.is_file():
        pytest.skip(f"{path} missing (run scripts/setup)")
    assert positions(onnx.load(str(path))) == POSITIONS
