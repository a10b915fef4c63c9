"""One change of a known kind injected into a copy of an ONNX model (written for the demo model,
EfficientNet-Lite0, opset 10; `positions()` finds the three positions in any model with Convs,
such as the study models of scripts/study-models), for `deltann localize --b-model` and
`deltann repair`: which node changes, which tensor is then the first to diverge, and which kind of
change (docs/LOCALIZE.md, "Kinds of change") localize must name as the cause.

Shared by tests/integration/test_localize_cause_kinds.py, tests/integration/test_repair.py,
bench/localize_kinds.py and bench/fault_suite.py.
"""
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

# The demo model's three positions (what positions() picks there): the stem Conv (3x3,
# [32,3,3,3]), a middle depthwise Conv (3x3, [480,1,3,3]) and the last depthwise Conv (3x3,
# [1152,1,3,3]); each has a Pad before it and a Clip (ReLU6) after it.
POSITIONS = {"early": "/_conv_stem/Conv", "middle": "/_blocks.7/_depthwise_conv/Conv",
             "late": "/_blocks.15/_depthwise_conv/Conv"}
# The activations a position's Conv may feed (op_replaced turns it into a LeakyRelu).
ACTIVATIONS = ("Clip", "Relu")


@dataclass
class Fault:
    model: onnx.ModelProto  # the changed copy
    node: str  # the changed node
    jump: str  # the tensor where the change first shows: the node's output
    kind: str  # the kind localize must name
    details: dict  # details the cause must hold (a subset)


def _ints(node, name, default=()):
    return list(next((a.ints for a in node.attribute if a.name == name), default))


def _every_kind_applies(model, conv):
    """Whether every kind of KINDS can change `conv` without changing any tensor's shape: a bias
    (missing), a square kernel larger than 1x1 (flip, transpose), padding on both spatial axes,
    by a Pad before it or its own `pads` (padding), and one reader, an activation (clip_bound
    needs a Clip, op_replaced either)."""
    if conv.op_type != "Conv" or len(conv.input) < 3 or not conv.input[2]:
        return False
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    shape = weights.get(conv.input[1])
    if shape is None or len(shape) != 4 or shape[2] != shape[3] or shape[2] < 2:
        return False
    readers = [n for n in model.graph.node if conv.output[0] in n.input]
    if len(readers) != 1 or readers[0].op_type not in ACTIVATIONS:
        return False
    producer = next((n for n in model.graph.node if conv.input[0] in n.output), None)
    if producer is not None and producer.op_type == "Pad":
        return True
    pads = _ints(conv, "pads", [0, 0, 0, 0])
    return all(pads[axis] + pads[axis + 2] > 0 for axis in (0, 1))


def positions(model):
    """early/middle/late -> Conv node name: the first, the median and the last Conv in graph order
    that every kind can change (`_every_kind_applies`)."""
    convs = [n.name for n in model.graph.node if _every_kind_applies(model, n)]
    if not convs:
        raise ValueError("no Conv with a bias, a square kernel > 1, padding and one activation "
                         "after it")
    return {"early": convs[0], "middle": convs[len(convs) // 2], "late": convs[-1]}


def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def _consumer(model, tensor, ops):
    found = next((n for n in model.graph.node if tensor in n.input and n.op_type in ops), None)
    if found is None:
        raise ValueError(f"no {' or '.join(ops)} reads {tensor}")
    return found


def _producer(model, tensor):
    return next((n for n in model.graph.node if tensor in n.output), None)


def _initializer(model, name):
    return next(i for i in model.graph.initializer if i.name == name)


def _set_weight(model, name, values):
    _initializer(model, name).CopyFrom(numpy_helper.from_array(values.astype(np.float32), name))


def _attribute(node, name, value):
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(helper.make_attribute(name, value))


def _bf16(w):
    """w rounded to bfloat16 (ties to even), back in float32."""
    bits = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def _int8(w, axis=None):
    """Symmetric int8 rounding, per tensor or per slice of `axis`, stored back as float."""
    if axis is None:
        scale = np.abs(w).max() / 127
    else:
        others = tuple(k for k in range(w.ndim) if k != axis)
        scale = np.abs(w).max(axis=others, keepdims=True) / 127
        scale[scale == 0] = 1  # an all-zero channel stays zero
    return np.round(w / scale) * scale


def _weights(model, conv, change):
    w_name = conv.input[1]
    w = numpy_helper.to_array(_initializer(model, w_name)).astype(np.float64)
    _set_weight(model, w_name, change(w))


def _shift_window(pads):
    """`pads` ([begin..., end...]) with each spatial axis's window moved by one pixel, the total
    (and so the output size) kept; towards the side that has padding to give."""
    rank = len(pads) // 2
    moved = list(pads)
    for axis in (rank - 2, rank - 1):
        if moved[rank + axis] > 0:
            moved[axis] += 1
            moved[rank + axis] -= 1
        else:
            moved[axis] -= 1
            moved[rank + axis] += 1
    return moved


# kind name -> (what it does to the model at a position, expected kind, expected details)
def inject(model, kind, position):
    """A copy of `model` with one change of `kind` at `position` (a key of positions(model))."""
    faulty = onnx.ModelProto()
    faulty.CopyFrom(model)
    conv = _node(faulty, positions(faulty)[position])
    rng = np.random.default_rng(7)
    conv_fault: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str, dict[str, Any]]] = {
        "zeroed": (lambda w: np.zeros_like(w), "zeroed", {}),
        "flip": (lambda w: w[:, :, :, ::-1], "rearranged", {"transform": "flip",
                                                           "flipped_axes": [3]}),
        "transpose": (lambda w: w.transpose(0, 1, 3, 2), "rearranged",
                      {"transform": "transpose", "perm": [0, 1, 3, 2]}),
        "channel_reorder": (lambda w: w[np.r_[1, 0, 2:w.shape[0]]], "rearranged",
                            {"transform": "reorder", "axis": 0, "description": "swaps (0 1)"}),
        "rescaled": (lambda w: w * 1.5, "rescaled", {}),
        "offset": (lambda w: w + 0.01, "offset", {}),
        "quantised_tensor": (_int8, "quantised", {"granularity": "per-tensor", "bits": 8}),
        "quantised_channel": (lambda w: _int8(w, axis=0), "quantised",
                              {"granularity": "per-channel", "axis": 0, "bits": 8}),
        "fp16": (lambda w: w.astype(np.float16), "precision-reduced", {"format": "fp16"}),
        "bf16": (_bf16, "precision-reduced", {"format": "bf16"}),
        "noise": (lambda w: w + rng.standard_normal(w.shape) * 0.01 * np.abs(w).max(),
                  "changed", {}),
    }
    if kind in conv_fault:
        change, expected, details = conv_fault[kind]
        _weights(faulty, conv, change)
        return Fault(faulty, conv.name, conv.output[0], expected, details)
    if kind == "missing":  # the Conv loses its bias input
        del conv.input[2]
        return Fault(faulty, conv.name, conv.output[0], "missing", {})
    if kind == "padding":  # the window moves by one pixel, same size: the Pad before the Conv's
        # (the demo model's) or else the Conv's own pads
        pad = _producer(faulty, conv.input[0])
        if pad is None or pad.op_type != "Pad":
            pad = conv
        _attribute(pad, "pads", _shift_window(_ints(pad, "pads")))
        return Fault(faulty, pad.name, pad.output[0], "padding-shifted", {"attribute": "pads"})
    if kind == "clip_bound":  # the ReLU6 after the Conv lets negatives through
        clip = _consumer(faulty, conv.output[0], ("Clip",))
        _attribute(clip, "min", -1.0)
        return Fault(faulty, clip.name, clip.output[0], "bounds-changed",
                     {"attribute": "min", "a": "0", "b": "-1"})
    if kind == "op_replaced":  # the activation after the Conv (ReLU6, ReLU) becomes a LeakyRelu
        act = _consumer(faulty, conv.output[0], ACTIVATIONS)
        op_a = act.op_type
        act.op_type = "LeakyRelu"
        del act.attribute[:]
        act.attribute.append(helper.make_attribute("alpha", 0.1))
        return Fault(faulty, act.name, act.output[0], "op-replaced",
                     {"op_a": op_a, "op_b": "LeakyRelu"})
    raise ValueError(kind)


KINDS = ["missing", "zeroed", "flip", "transpose", "channel_reorder", "rescaled", "offset",
         "quantised_tensor", "quantised_channel", "fp16", "bf16", "noise", "padding",
         "clip_bound", "op_replaced"]


def cause_matches(report, fault):
    """Whether localize's JSON names the fault: the first jump at the fault's tensor, and a cause
    of the expected kind whose details hold the expected ones. Returns (layer_right, kind_right)."""
    jump = report.get("jump")
    layer_right = jump is not None and jump["name"] == fault.jump
    kind_right = any(c.get("kind") == fault.kind and
                     all(c["details"].get(k) == v for k, v in fault.details.items())
                     for c in report.get("cause", []))
    return layer_right, kind_right
