"""The conversion steps that run in deltann's TensorFlow venv (.deps/venv-tf).

    onnx > tflite   onnx2tf (ONNX -> Keras/SavedModel, NCHW -> NHWC) + tf.lite.TFLiteConverter
    tflite > onnx   tf2onnx (TFLite flatbuffer -> ONNX, layout kept)

convert.py runs this file with venv-tf's Python, never imports it: TensorFlow, onnx2tf and
tf2onnx pin versions (numpy 1.26, onnx 1.19) that cannot live in the main venv's process. Its
PYTHONPATH is the folder of the deltann_tools package only (this module uses
deltann_tools.environment, which needs nothing beyond the standard library).

    convert_tf.py --versions
    convert_tf.py --step onnx>tflite --in IN --spec SPEC.json --out TMP_OUT --knobs quantize=none
                  --result RESULT.json

The step runs in the current directory, which convert.py makes a private temporary folder
(onnx2tf writes beside itself). The result (output spec, notes, convert_s) or the error
sentence goes to RESULT.json; stdout and stderr are the tools' chatter, which convert.py keeps.
"""
import argparse
import copy
import json
import os
import sys
import time
from typing import Any

from deltann_tools.environment import EnvironmentStringError, parse_knobs

Spec = dict[str, Any]  # a model spec (JSON object)
Knobs = dict[str, str]
# The output's spec, notes on what the step did, seconds spent converting.
StepResult = tuple[Spec, list[str], float]

# Distributions whose versions --versions reports (importlib.metadata; nothing is imported).
PACKAGES = ["tensorflow", "onnx2tf", "tf2onnx", "ai-edge-litert", "onnx", "onnxruntime", "numpy"]
ONNX_OPSET = 13

# onnx2tf runs every model once in ONNX Runtime on sample images before converting, and
# downloads those images from GitHub unless this file is in the working directory. deltann
# never downloads at run time, so the step writes its own sample (seeded noise in [0, 1],
# the range of onnx2tf's images; only the checks of its dummy run see the values).
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


class StepError(Exception):
    """A step failed; the message says why in one sentence."""


def versions() -> dict[str, str | None]:
    from importlib import metadata
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _interpreter(path: str) -> Any:
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=path)
    interp.allocate_tensors()
    return interp


def tflite_io(path: str) -> tuple[list[Any], list[Any], dict[str, int]]:
    """(inputs, outputs, weight dtypes count) of a .tflite, read back with LiteRT's interpreter."""
    interp = _interpreter(path)
    ins = [(d["name"], [int(x) for x in d["shape"]]) for d in interp.get_input_details()]
    outs = [(d["name"], [int(x) for x in d["shape"]]) for d in interp.get_output_details()]
    io_index = {d["index"] for d in interp.get_input_details() + interp.get_output_details()}
    dtypes: dict[str, int] = {}
    for t in interp.get_tensor_details():
        if t["index"] not in io_index:
            name = getattr(t["dtype"], "__name__", str(t["dtype"]))
            dtypes[name] = dtypes.get(name, 0) + 1
    return ins, outs, dtypes


def _only(items: list[Any], what: str, path: str) -> Any:
    if len(items) != 1:
        raise StepError(f"{path} has {len(items)} {what}s ({[n for n, _ in items]}); deltann "
                        f"needs exactly one image {what}")
    return items[0]


def _onnx_inputs(proto: Any) -> list[Any]:
    init = {i.name for i in proto.graph.initializer}
    result = []
    for v in proto.graph.input:
        if v.name in init:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in v.type.tensor_type.shape.dim]
        result.append((v.name, dims))
    return result


def _save_archive(tf: Any, tf_keras: Any, model: Any, folder: str) -> None:
    """The Keras model as a SavedModel whose serving signature keeps the ONNX tensor names.

    onnx2tf can write the SavedModel itself, but then it also converts to float32 and float16
    .tflite files on its own, doubling the time; we ask it for the model only and export it the
    way its --output_signaturedefs mode does."""
    archive = tf_keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default", fn=lambda *inputs: model(inputs),
        input_signature=[tf.TensorSpec(t.shape, t.dtype, t.name) for t in model.inputs])
    archive.write_out(folder)


def onnx_to_tflite(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    import numpy as np
    import onnx
    quantize = knobs.get("quantize", "none")
    try:
        proto = onnx.load(src)
        onnx.checker.check_model(proto)
    except Exception as e:
        raise StepError(f"{src} is not a valid ONNX model: {type(e).__name__}: {e}") from e
    in_name, in_dims = _only(_onnx_inputs(proto), "input", src)
    layout = spec.get("input", {}).get("layout", "NCHW")
    shape = [int(d) for d in spec["input"]["shape"]]
    if len(in_dims) != 4 or any(d not in (None, s) for d, s in zip(in_dims, shape, strict=False)):
        raise StepError(f"{src}'s input {in_name!r} has shape {in_dims}, which does not fit the "
                        f"spec's {layout} shape {shape}")
    if None in in_dims:
        # onnx2tf needs static shapes: pin the symbolic dimensions (a dynamic batch, say) to
        # the spec's, in a copy of the model in the working folder.
        dims = proto.graph.input[[v.name for v in proto.graph.input].index(in_name)] \
            .type.tensor_type.shape.dim
        for d, s in zip(dims, shape, strict=True):
            d.ClearField("dim_param")
            d.dim_value = s
        src = os.path.abspath("static_shape.onnx")
        onnx.save(proto, src)

    rs = np.random.RandomState(0)
    np.save(ONNX2TF_SAMPLE, rs.rand(20, 128, 128, 3).astype(np.float32))

    import onnx2tf
    import tensorflow as tf
    import tf_keras
    start = time.perf_counter()
    kwargs = dict(input_onnx_file_path=src, output_folder_path="onnx2tf_out",
                  disable_model_save=True, non_verbose=True, verbosity="warn")
    if layout == "NHWC":
        # Already channels-last (e.g. an ONNX file that came from TFLite): keep it so. onnx2tf
        # matches the name after its own clean-up, which turns ':' into '__'.
        kwargs["keep_nwc_or_nhwc_or_ndhwc_input_names"] = [in_name.replace(":", "__")]
    try:
        model = onnx2tf.convert(**kwargs)
    except SystemExit as e:  # onnx2tf calls sys.exit(1) on some unsupported graphs
        raise StepError(
            f"onnx2tf gave up (exit {e.code}); the tail of its output says where") from e
    except Exception as e:
        raise StepError(f"onnx2tf failed: {type(e).__name__}: {e}") from e
    if model is None:
        raise StepError("onnx2tf returned no model; the tail of its output says why")
    try:
        _save_archive(tf, tf_keras, model, "saved_model")
    except Exception as e:
        raise StepError(f"exporting onnx2tf's Keras model as a SavedModel failed: "
                        f"{type(e).__name__}: {e}") from e

    converter = tf.lite.TFLiteConverter.from_saved_model("saved_model")
    # Builtin ops only: a model that needs TensorFlow (Flex) ops would not run in a plain
    # LiteRT interpreter, so it should fail here, at conversion, with the op named.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "dynamic":
        # Dynamic-range quantisation: no representative dataset, so only the weights become
        # int8 (tensors of 1024+ elements); kernels dequantise or run hybrid at inference.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    try:
        flatbuffer = converter.convert()
    except Exception as e:
        raise StepError(f"tf.lite.TFLiteConverter failed: {type(e).__name__}: {e}") from e
    with open(tmp_out, "wb") as f:
        f.write(flatbuffer)
    convert_s = time.perf_counter() - start

    ins, outs, dtypes = tflite_io(tmp_out)
    (tin, tin_shape), (tout, _) = _only(ins, "input", tmp_out), _only(outs, "output", tmp_out)
    out = copy.deepcopy(spec)
    out["input"]["name"], out["input"]["shape"] = tin, tin_shape
    out["output"]["name"] = tout
    notes = []
    if layout == "NCHW" and tin_shape == [shape[0], shape[2], shape[3], shape[1]]:
        out["input"]["layout"] = "NHWC"
        notes.append(f"onnx2tf {onnx2tf.__version__} turned the NCHW input {in_name!r} "
                     f"{shape} into NHWC {tin_shape} (channels-last throughout the graph)")
    elif tin_shape != shape:
        raise StepError(f"the converted input {tin!r} has shape {tin_shape}, which is neither "
                        f"the spec's {layout} shape {shape} nor its channels-last form")
    else:
        notes.append(f"onnx2tf {onnx2tf.__version__} kept the {layout} input {tin_shape}")
    notes.append(f"TFLite names: input {tin!r}, output {tout!r} (ONNX: {in_name!r}, "
                 f"{proto.graph.output[0].name!r})")
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(dtypes.items()))
    notes.append({
        "none": "quantize=none: float32 weights and arithmetic",
        "dynamic": "quantize=dynamic: dynamic-range quantisation (Optimize.DEFAULT, no "
                   f"representative dataset): {dtypes.get('int8', 0)} int8 weight tensors",
        "float16": "quantize=float16: weights stored as float16 "
                   f"({dtypes.get('float16', 0)} tensors), dequantised to float32 at load",
    }[quantize] + f"; tensors by type: {kinds}")
    return out, notes, convert_s


def tflite_to_onnx(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    import onnx
    with open(src, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        # LiteRT's own message for this quotes the bytes it found and is cut at the first NUL.
        raise StepError(f"{src} is not a TFLite flatbuffer (no 'TFL3' file identifier at "
                        "byte 4)")
    try:
        ins, outs, dtypes = tflite_io(src)
    except Exception as e:
        raise StepError(f"{src} is not a loadable TFLite model: {type(e).__name__}: {e}") from e
    _only(ins, "input", src)
    _only(outs, "output", src)

    import tf2onnx
    from tf2onnx import convert
    start = time.perf_counter()
    try:
        # No inputs_as_nchw: the ONNX graph keeps TFLite's (NHWC) layout, as the study did.
        proto, _ = convert.from_tflite(src, opset=ONNX_OPSET, output_path=tmp_out)
    except Exception as e:
        raise StepError(f"tf2onnx failed: {type(e).__name__}: {e}") from e
    convert_s = time.perf_counter() - start
    foreign = sorted({f"{n.domain}:{n.op_type}" for n in proto.graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:
        # tf2onnx converts with continue_on_error: ops it cannot map stay as TFLite ops.
        raise StepError(f"tf2onnx left ops it could not convert: {', '.join(foreign)}")
    try:
        onnx.checker.check_model(onnx.load(tmp_out))
    except Exception as e:
        raise StepError(f"tf2onnx wrote an invalid ONNX model: {type(e).__name__}: {e}") from e

    (in_name, in_dims), = _onnx_inputs(proto)
    out = copy.deepcopy(spec)
    out["input"]["name"] = in_name
    if all(isinstance(d, int) and d > 0 for d in in_dims):
        out["input"]["shape"] = in_dims
    out["output"]["name"] = proto.graph.output[0].name
    ops: dict[str, int] = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    notes = [f"tf2onnx {tf2onnx.__version__} at opset {ONNX_OPSET}; layout kept "
             f"({spec.get('input', {}).get('layout', 'NHWC')}, input {in_name!r} {in_dims}), "
             "no transposes added at the inputs"]
    if dtypes.get("int8", 0) or ops.get("DequantizeLinear", 0):
        notes.append(f"the TFLite model held {dtypes.get('int8', 0)} int8 tensors; tf2onnx "
                     f"turned them into {ops.get('DequantizeLinear', 0)} DequantizeLinear nodes "
                     "over int8 initialisers, so the ONNX model computes in float32 with the "
                     "quantised weights (silent dequantisation)")
    if dtypes.get("float16", 0):
        notes.append(f"the TFLite model held {dtypes['float16']} float16 tensors; tf2onnx casts "
                     f"them to float32 ({ops.get('Cast', 0)} Cast nodes)")
    return out, notes, convert_s


STEPS = {"onnx>tflite": onnx_to_tflite, "tflite>onnx": tflite_to_onnx}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="convert_tf", description=__doc__.split("\n")[0])
    ap.add_argument("--versions", action="store_true")
    ap.add_argument("--step", choices=sorted(STEPS))
    ap.add_argument("--in", dest="src")
    ap.add_argument("--spec")
    ap.add_argument("--out")
    ap.add_argument("--knobs", default="")
    ap.add_argument("--result")
    args = ap.parse_args(argv)
    if args.versions:
        print(json.dumps(versions()))
        return 0
    try:
        knobs = parse_knobs(args.knobs, f"--knobs {args.knobs!r}")
        with open(args.spec, encoding="utf-8") as f:
            spec = json.load(f)
        out, notes, convert_s = STEPS[args.step](os.path.abspath(args.src), spec,
                                                 os.path.abspath(args.out), knobs)
        result = {"spec": out, "notes": notes, "convert_s": round(convert_s, 3)}
        code = 0
    except (StepError, EnvironmentStringError) as e:
        result, code = {"error": str(e)}, 1
    except Exception as e:  # noqa: BLE001  (an unforeseen failure inside a tool: still one sentence)
        result, code = {"error": f"{type(e).__name__}: {e}"}, 1
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return code


if __name__ == "__main__":
    sys.exit(main())
