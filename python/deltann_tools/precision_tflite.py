"""Keeps chosen layers of a dynamic-range-quantised TFLite model in float (docs/PRECISION.md).

Runs with the TensorFlow venv's Python (LiteRT's flatbuffer tools, no TensorFlow import):

    precision_tflite.py --quantised Q.tflite --float F.tflite
        lists the quantised layers: operators with a constant int8 weight
    precision_tflite.py --quantised Q.tflite --float F.tflite --keep 3,5,59 --out OUT.tflite
        writes Q with the int8 weights of operators 3, 5 and 59 replaced by F's float weights

Both models must be the same graph converted twice (the `onnx>tflite` step with quantize=dynamic
and quantize=none): the same operators in the same order, with weights of the same shapes. A
layer is kept in float by giving its weight tensor F's float32 data and no quantisation
parameters: TFLite's hybrid kernels choose, when the interpreter prepares the model, between the
int8-weight path and the float path by the weight's type, so that operator then computes exactly
as in F. Answers with one JSON line on standard output; an error is one line on standard error and
exit status 1.
"""
import argparse
import json
import os
import sys
from collections import Counter
from typing import Any, NoReturn


class PrecisionError(Exception):
    pass


def schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def read(path: str) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model(path)
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise PrecisionError(f"{path}: cannot be read as a TFLite model ({e})") from None
    if model is None or not model.subgraphs:
        raise PrecisionError(f"{path}: cannot be read as a TFLite model (no subgraph)")
    if len(model.subgraphs) > 1:
        raise PrecisionError(f"{path}: has {len(model.subgraphs)} subgraphs; only models with "
                             "one are supported")
    return model


def text(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def op_name(model: Any, op: Any) -> str:
    """The builtin operator's name, e.g. CONV_2D."""
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    for name, value in vars(schema().BuiltinOperator).items():
        if value == number and not name.startswith("_"):
            return name
    return f"BUILTIN_{number}"


def short_label(tensor_name: str) -> str:
    """A readable name for a layer from its output tensor's fused name ("a/Relu6;a/conv/conv;..."):
    the part naming the convolution or matrix product, without the model's outer scope."""
    parts = [p for p in tensor_name.split(";") if p]
    if not parts:
        return "?"
    main = next((p for p in parts if any(k in p.lower() for k in
                                         ("conv", "depthwise", "matmul", "dense", "fully"))),
                parts[0])
    pieces = main.split("/")
    return "/".join(pieces[1:]) if len(pieces) > 2 else main


def int8_weights(model: Any, op: Any) -> list[int]:
    """Positions of `op`'s inputs that are constant int8 tensors (its quantised weights)."""
    s = schema()
    graph = model.subgraphs[0]
    positions = []
    for k, t in enumerate(op.inputs):
        if t < 0:
            continue
        tensor = graph.tensors[t]
        if tensor.type == s.TensorType.INT8 and model.buffers[tensor.buffer].data is not None:
            positions.append(k)
    return positions


def quantised_layers(quantised: Any, floating: Any, q_path: str, f_path: str) -> list[dict]:
    """The operators of `quantised` with int8 weights, checked against `floating`."""
    s = schema()
    q_graph, f_graph = quantised.subgraphs[0], floating.subgraphs[0]
    if len(q_graph.operators) != len(f_graph.operators):
        raise PrecisionError(f"{q_path} and {f_path} are not the same graph: "
                             f"{len(q_graph.operators)} and {len(f_graph.operators)} operators")
    layers = []
    for i, (q_op, f_op) in enumerate(zip(q_graph.operators, f_graph.operators, strict=True)):
        name, f_name = op_name(quantised, q_op), op_name(floating, f_op)
        if name != f_name:
            raise PrecisionError(f"{q_path} and {f_path} are not the same graph: operator {i} "
                                 f"is {name} in one and {f_name} in the other")
        positions = int8_weights(quantised, q_op)
        if not positions or name == "DEQUANTIZE":
            continue
        weights, size = [], 0
        for k in positions:
            q_tensor = q_graph.tensors[q_op.inputs[k]]
            if k >= len(f_op.inputs) or f_op.inputs[k] < 0:
                raise PrecisionError(f"{f_path}: operator {i} ({name}) lacks input {k}")
            f_tensor = f_graph.tensors[f_op.inputs[k]]
            if f_tensor.type != s.TensorType.FLOAT32 or floating.buffers[f_tensor.buffer].data \
                    is None:
                raise PrecisionError(f"{f_path}: operator {i} ({name}) input {k} is no float32 "
                                     "constant; give the float conversion of the same model")
            if list(q_tensor.shape) != list(f_tensor.shape):
                raise PrecisionError(f"{q_path} and {f_path} are not the same graph: operator {i} "
                                     f"({name}) has weights of shape {list(q_tensor.shape)} and "
                                     f"{list(f_tensor.shape)}")
            weights.append(text(q_tensor.name))
            size += len(quantised.buffers[q_tensor.buffer].data)
        output = text(q_graph.tensors[q_op.outputs[0]].name) if len(q_op.outputs) else ""
        layers.append({"op_index": i, "op": name, "name": short_label(output), "output": output,
                       "weights": weights, "int8_bytes": size})
    return layers


def keep_in_float(quantised: Any, floating: Any, op_indices: list[int]) -> None:
    """Gives the int8 weights of the operators `op_indices` of `quantised` the float weights of
    `floating`, in place. A weight tensor or buffer that another operator also reads is copied
    first, so that only the chosen operators change."""
    from ai_edge_litert.tools import flatbuffer_utils  # noqa: F401 (imports the object API)

    s = schema()
    q_graph, f_graph = quantised.subgraphs[0], floating.subgraphs[0]
    keep = set(op_indices)
    readers = Counter(t for op in q_graph.operators for t in op.inputs if t >= 0)
    buffer_users = Counter(t.buffer for t in q_graph.tensors)
    for i in sorted(keep):
        q_op, f_op = q_graph.operators[i], f_graph.operators[i]
        for k in int8_weights(quantised, q_op):
            f_tensor = f_graph.tensors[f_op.inputs[k]]
            t = q_op.inputs[k]
            tensor = q_graph.tensors[t]
            if readers[t] > 1:  # shared with another operator: this one gets a copy
                tensor = s.TensorT()
                tensor.name, tensor.shape = q_graph.tensors[t].name, q_graph.tensors[t].shape
                q_graph.tensors.append(tensor)
                q_op.inputs[k] = len(q_graph.tensors) - 1
                readers[t] -= 1
            tensor.type = s.TensorType.FLOAT32
            tensor.quantization = None
            data = floating.buffers[f_tensor.buffer].data
            if buffer_users[tensor.buffer] > 1 or tensor.buffer == 0:
                buffer = s.BufferT()
                buffer.data = data
                buffer_users[tensor.buffer] -= 1
                quantised.buffers.append(buffer)
                tensor.buffer = len(quantised.buffers) - 1
            else:
                quantised.buffers[tensor.buffer].data = data


def parse_keep(value: str, layers: list[dict]) -> list[int]:
    allowed = {layer["op_index"] for layer in layers}
    indices = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        if not item.isdigit() or int(item) not in allowed:
            raise PrecisionError(f"--keep {value}: {item!r} is no quantised layer's operator "
                                 f"index (they are: {', '.join(map(str, sorted(allowed)))})")
        indices.append(int(item))
    return indices


def write(model: Any, path: str) -> int:
    from ai_edge_litert.tools import flatbuffer_utils

    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    temporary = path + ".part"
    with open(temporary, "wb") as out:
        out.write(data)
    os.replace(temporary, path)  # never a partial model under the final name
    return len(data)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"precision_tflite: error: {message} (see precision_tflite.py --help)",
              file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="precision_tflite", description=__doc__.split("\n")[0])
    ap.add_argument("--quantised", required=True, help="the dynamic-range-quantised .tflite")
    ap.add_argument("--float", dest="floating", required=True,
                    help="the float .tflite of the same graph")
    ap.add_argument("--keep", help="operator indices to keep in float, comma-separated")
    ap.add_argument("--out", help="where to write the model with those layers in float")
    args = ap.parse_args(argv)
    try:
        if (args.keep is None) != (args.out is None):
            raise PrecisionError("--keep and --out go together")
        quantised, floating = read(args.quantised), read(args.floating)
        layers = quantised_layers(quantised, floating, args.quantised, args.floating)
        if args.out is None:
            reply = {"layers": layers, "operators": len(quantised.subgraphs[0].operators),
                     "size": os.path.getsize(args.quantised)}
        else:
            keep = parse_keep(args.keep, layers)
            keep_in_float(quantised, floating, keep)
            size = write(quantised, args.out)
            reply = {"kept": sorted(set(keep)), "size": size,
                     "int8_layers": len(quantised_layers(quantised, floating, args.out,
                                                         args.floating))}
    except (PrecisionError, OSError) as e:
        print(" ".join(f"precision_tflite: error: {e}".split()), file=sys.stderr)
        return 1
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
