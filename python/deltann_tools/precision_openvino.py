"""Keeps chosen layers in f32 under OpenVINO's reduced inference precision (docs/PRECISION.md).

Runs with the project venv's Python (the openvino wheel):

    precision_openvino.py --model B.onnx --precision bf16
        lists the layers (convolutions and matrix products) that run in bf16 when the CPU plugin
        compiles B with inference_precision=bf16 and that can be kept in f32
    precision_openvino.py --model B.onnx --precision bf16 --keep 3,5,49 --out OUT.xml
        writes B as OpenVINO IR (OUT.xml and OUT.bin) with layers 3, 5 and 49 marked to stay f32

OpenVINO's inference precision is one setting for the whole model; a node keeps its original
precision when its runtime information holds the `precise` attribute (what
`ov::disable_fp16_compression` sets, and the IR stores as <attribute name="precise" version="0"/>).
The CPU plugin honours it for bf16 as for f16, but the attribute is not copied when a
transformation replaces the node, and two of the plugin's own transformations replace exactly the
layers that matter: a zero Pad before a convolution is folded into it (a new convolution), and a
MatMul with constant weights becomes a FullyConnected node. So the written model is first made to
need neither: zero Pads are folded into the convolution's pads here (the same arithmetic), and a
kept MatMul with constant 2-D weights is written as the 1x1 convolution it equals, between two
reshapes. A kept layer's mark also goes to the nodes computed from its output up to the next layer
(bias, activation, residual Add, pooling, reshape): the plugin fuses them into the layer's kernel,
and a kernel in f32 whose fused Add is left to bf16 fails to compile.

The listing compiles B with every layer marked and keeps only the layers that then run in f32
(the others are named under "not_keepable"), so every candidate written afterwards marks layers
that are known to be honoured. Answers with one JSON line on standard output; an error is one line
on standard error and exit status 1.
"""
import argparse
import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from typing import Any, NoReturn

# The layers: the operators that carry a model's weights and most of its arithmetic.
LAYER_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData",
               "GroupConvolutionBackpropData", "MatMul")
PRECISIONS = {"bf16": "bf16", "f16": "f16"}


class PrecisionError(Exception):
    pass


def openvino() -> Any:
    import openvino as ov

    return ov


def last_line(e: Exception) -> str:
    """OpenVINO's exceptions carry the source locations of each frame; the last line says what."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__


def read(path: str) -> Any:
    ov = openvino()
    try:
        return ov.Core().read_model(path)
    except RuntimeError as e:
        raise PrecisionError(f"{path}: OpenVINO cannot read it ({last_line(e)})") from None


def constant(output: Any) -> Any:
    """The value behind `output` when it is a Constant node, else None."""
    node = output.get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def fold_zero_pads(model: Any) -> int:
    """Folds each constant-zero Pad on the spatial axes that feeds only a convolution's data input
    into that convolution's pads; the number folded."""
    import numpy as np
    import openvino.opset13 as ops

    folded = 0
    for pad in [op for op in model.get_ordered_ops() if op.get_type_name() == "Pad"]:
        if pad.get_attributes().get("pad_mode") != "constant":
            continue
        begin, end = constant(pad.input_value(1)), constant(pad.input_value(2))
        value = constant(pad.input_value(3)) if pad.get_input_size() > 3 else np.zeros(1)
        if begin is None or end is None or value is None or np.any(value != 0):
            continue
        if len(begin) < 3 or np.any(begin[:2] != 0) or np.any(end[:2] != 0) \
                or np.any(begin < 0) or np.any(end < 0):
            continue
        targets = list(pad.output(0).get_target_inputs())
        if len(targets) != 1 or targets[0].get_index() != 0:
            continue
        conv = targets[0].get_node()
        kind = conv.get_type_name()
        if kind not in ("Convolution", "GroupConvolution"):
            continue
        attrs = conv.get_attributes()
        if attrs.get("auto_pad", "explicit") not in ("explicit", "notset"):
            continue
        pads_begin = [int(a) + int(b) for a, b in zip(attrs["pads_begin"], begin[2:], strict=True)]
        pads_end = [int(a) + int(b) for a, b in zip(attrs["pads_end"], end[2:], strict=True)]
        make = ops.convolution if kind == "Convolution" else ops.group_convolution
        replacement = make(pad.input_value(0), conv.input_value(1), attrs["strides"], pads_begin,
                           pads_end, attrs["dilations"], "explicit")
        replacement.set_friendly_name(conv.get_friendly_name())
        conv.output(0).replace(replacement.output(0))
        folded += 1
    return folded


def matmul_as_conv(model: Any, name: str) -> bool:
    """Rewrites the MatMul `name` with constant 2-D weights and a 2-D input as reshape, 1x1
    convolution, reshape (the same dot products); False when it is not of that form."""
    import numpy as np
    import openvino.opset13 as ops

    for mm in model.get_ordered_ops():
        if mm.get_type_name() != "MatMul" or mm.get_friendly_name() != name:
            continue
        weights = constant(mm.input_value(1))
        attrs = mm.get_attributes()
        shape = mm.input_value(0).get_partial_shape()
        if weights is None or weights.ndim != 2 or attrs["transpose_a"] or \
                shape.rank.is_dynamic or shape.rank.get_length() != 2:
            return False
        w = weights if attrs["transpose_b"] else weights.T
        k, c = w.shape
        x = ops.reshape(mm.input_value(0), ops.constant(np.array([0, c, 1, 1], np.int64)), True)
        conv = ops.convolution(x, ops.constant(np.ascontiguousarray(w.reshape(k, c, 1, 1))),
                               [1, 1], [0, 0], [0, 0], [1, 1])
        conv.set_friendly_name(name)
        y = ops.reshape(conv, ops.constant(np.array([0, k], np.int64)), True)
        mm.output(0).replace(y.output(0))
        return True
    return False


def unique_names(model: Any) -> None:
    """Gives every node a distinct friendly name: the IR marks layers by name."""
    seen: dict[str, int] = {}
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if name in seen:
            seen[name] += 1
            op.set_friendly_name(f"{name}#{seen[name]}")
        else:
            seen[name] = 0


def normalised(path: str) -> Any:
    model = read(path)
    fold_zero_pads(model)
    unique_names(model)
    return model


def layers_of(model: Any) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in LAYER_TYPES:
            continue
        weights = 0
        shape = op.get_input_partial_shape(1) if op.get_input_size() > 1 else None
        if shape is not None and shape.is_static:
            weights = 1
            for d in shape.to_shape():
                weights *= int(d)
        layers.append({"op_index": len(layers), "op": op.get_type_name(),
                       "name": op.get_friendly_name(), "weights": weights})
    return layers


def mark_precise(xml_path: str, names: set[str]) -> None:
    """Adds the `precise` attribute to the layers named and to every node computed from their
    outputs up to the next layer."""
    tree = ET.parse(xml_path)
    root = tree.getroot()
    by_id = {layer.get("id", ""): layer for layer in root.iter("layer")}
    consumers: dict[str, list[str]] = {}
    for edge in root.iter("edge"):
        consumers.setdefault(edge.get("from-layer", ""), []).append(edge.get("to-layer", ""))
    starts = [i for i, layer in by_id.items() if layer.get("name") in names]
    missing = names - {by_id[i].get("name") for i in starts}
    if missing:
        raise PrecisionError(f"layers not found in the written model: {sorted(missing)}")
    marked: set[str] = set()
    stack = list(starts)
    while stack:
        layer_id = stack.pop()
        if layer_id in marked:
            continue
        marked.add(layer_id)
        for to in consumers.get(layer_id, []):
            kind = by_id[to].get("type")
            if kind not in LAYER_TYPES and kind != "Result":
                stack.append(to)
    for layer_id in marked:
        layer = by_id[layer_id]
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.SubElement(layer, "rt_info")
        ET.SubElement(rt_info, "attribute", {"name": "precise", "version": "0"})
    tree.write(xml_path, xml_declaration=True, encoding="utf-8")


def write(path: str, keep_names: list[str], out: str) -> int:
    """Writes B (normalised) as IR with `keep_names` marked; the size of .xml and .bin."""
    return write_model(normalised(path), keep_names, out)


def write_model(model: Any, keep_names: list[str], out: str) -> int:
    """write() of a model already normalised (it is changed: kept MatMuls become convolutions)."""
    ov = openvino()
    for name in keep_names:
        op = next(o for o in model.get_ordered_ops() if o.get_friendly_name() == name)
        if op.get_type_name() == "MatMul":
            matmul_as_conv(model, name)
    if not out.endswith(".xml"):
        raise PrecisionError(f"{out}: the output is OpenVINO IR and must end in .xml")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    ov.save_model(model, out, compress_to_fp16=False)
    mark_precise(out, set(keep_names))
    return os.path.getsize(out) + os.path.getsize(out[:-4] + ".bin")


def runtime_precisions(xml_path: str, precision: str) -> dict[str, str]:
    """Compiles the IR for the CPU with `precision` and gives each original layer name the
    precision its runtime node runs in."""
    ov = openvino()
    core = ov.Core()
    try:
        compiled = core.compile_model(core.read_model(xml_path), "CPU",
                                      {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]})
    except RuntimeError as e:
        raise PrecisionError(f"OpenVINO's CPU plugin cannot compile the model with every layer "
                             f"kept in f32 ({last_line(e)})") from None
    precisions: dict[str, str] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "originalLayersNames" not in info or "runtimePrecision" not in info:
            continue
        for name in str(info["originalLayersNames"].astype(str)).split(","):
            precisions[name] = str(info["runtimePrecision"].astype(str))
    return precisions


def listing(path: str, precision: str) -> dict[str, Any]:
    model = normalised(path)
    layers = layers_of(model)
    with tempfile.TemporaryDirectory() as scratch:
        probe = os.path.join(scratch, "all-kept.xml")
        write_model(model, [layer["name"] for layer in layers], probe)
        runs_in = runtime_precisions(probe, precision)
    keepable: list[dict[str, Any]] = []
    not_keepable: list[dict[str, Any]] = []
    for layer in layers:
        got = runs_in.get(layer["name"], "absent")
        (keepable if got == "f32" else not_keepable).append({**layer, "runs_in": got})
    return {"layers": keepable, "not_keepable": not_keepable, "operators": len(layers),
            "size": os.path.getsize(path)}


def parse_keep(text: str, layers: list[dict[str, Any]]) -> list[str]:
    names = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            i = int(part)
        except ValueError:
            raise PrecisionError(f"--keep: '{part}' is not a layer index") from None
        if not 0 <= i < len(layers):
            raise PrecisionError(f"--keep: no layer {i} (the model has {len(layers)})")
        names.append(layers[i]["name"])
    return names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"precision_openvino: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="precision_openvino", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="B's model (ONNX, or any format OpenVINO reads)")
    ap.add_argument("--precision", required=True, choices=sorted(PRECISIONS),
                    help="B's inference precision")
    ap.add_argument("--keep", help="layer indices (op_index of the listing) to keep in f32, "
                    "comma-separated")
    ap.add_argument("--out", help="where to write the model (OpenVINO IR, .xml)")
    args = ap.parse_args(argv)
    try:
        if (args.keep is None) != (args.out is None):
            raise PrecisionError("--keep and --out go together")
        if args.out is None:
            reply = listing(args.model, args.precision)
        else:
            model = normalised(args.model)  # read once: each candidate is one call
            layers = layers_of(model)
            names = parse_keep(args.keep, layers)
            size = write_model(model, names, args.out)
            reply = {"kept": sorted({layer["op_index"] for layer in layers
                                     if layer["name"] in set(names)}),
                     "size": size, "reduced_layers": len(layers) - len(set(names))}
    except (PrecisionError, OSError) as e:
        print(" ".join(f"precision_openvino: error: {e}".split()), file=sys.stderr)
        return 1
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
