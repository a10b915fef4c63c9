"""The conversion steps that run in deltann's TensorFlow venv (.deps/venv-tf).

    onnx > tflite   onnx2tf (ONNX -> Keras/SavedModel, NCHW -> NHWC) + tf.lite.TFLiteConverter
    tflite > onnx   tf2onnx (TFLite flatbuffer -> ONNX, layout kept)
    keras > tflite  tf.lite.TFLiteConverter (from the Keras model's SavedModel)
    keras > onnx    tf2onnx (from the Keras model's SavedModel, layout kept)
    onnx > keras    onnx2tf (ONNX -> Keras model, NCHW -> NHWC), saved as a .keras file

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

from deltann_tools import keras_files
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


def _check_tf2onnx_output(proto: Any, path: str) -> None:
    """Refuses what tf2onnx wrote when it is not a plain, valid ONNX model."""
    import onnx
    foreign = sorted({f"{n.domain}:{n.op_type}" for n in proto.graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:
        # tf2onnx converts with continue_on_error: ops it cannot map stay as TensorFlow/TFLite ops.
        raise StepError(f"tf2onnx left ops it could not convert: {', '.join(foreign)}")
    try:
        onnx.checker.check_model(onnx.load(path))
    except Exception as e:
        raise StepError(f"tf2onnx wrote an invalid ONNX model: {type(e).__name__}: {e}") from e


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


def onnx_to_keras_model(src: str, spec: Spec) -> tuple[Any, Any, str, str, list[int]]:
    """onnx2tf's Keras (tf_keras) model of the ONNX file `src`: (model, ONNX proto, ONNX input
    name, the spec's layout, the spec's input shape)."""
    import numpy as np
    import onnx
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
    # onnx2tf simplifies its input with onnxsim *in place* (`onnxsim IN IN`), so it is given a
    # copy in the working folder, never the user's file or a cached artifact. onnx2tf also needs
    # static shapes: the copy has the symbolic dimensions (a dynamic batch, say) pinned to the
    # spec's.
    if None in in_dims:
        dims = proto.graph.input[[v.name for v in proto.graph.input].index(in_name)] \
            .type.tensor_type.shape.dim
        for d, s in zip(dims, shape, strict=True):
            d.ClearField("dim_param")
            d.dim_value = s
    src = os.path.abspath("onnx2tf_input.onnx")
    onnx.save(proto, src)

    rs = np.random.RandomState(0)
    np.save(ONNX2TF_SAMPLE, rs.rand(20, 128, 128, 3).astype(np.float32))

    import onnx2tf
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
    return model, proto, in_name, layout, shape


def layout_note(tool: str, in_name: str, layout: str, shape: list[int],
                new_shape: list[int]) -> tuple[str, str]:
    """(the converted input's layout, a note on it) when `tool` turned the spec's input `shape`
    into `new_shape`: the same, or the NCHW shape's channels-last form."""
    if layout == "NCHW" and new_shape == [shape[0], shape[2], shape[3], shape[1]]:
        return "NHWC", (f"{tool} turned the NCHW input {in_name!r} {shape} into NHWC "
                        f"{new_shape} (channels-last throughout the graph)")
    if new_shape != shape:
        raise StepError(f"the converted input has shape {new_shape}, which is neither the "
                        f"spec's {layout} shape {shape} nor its channels-last form")
    return layout, f"{tool} kept the {layout} input {new_shape}"


def tflite_converter_settings(tf: Any, converter: Any, quantize: str) -> None:
    """Builtin ops only, and the `quantize` knob's optimisation."""
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


def quantize_note(quantize: str, dtypes: dict[str, int]) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(dtypes.items()))
    return {
        "none": "quantize=none: float32 weights and arithmetic",
        "dynamic": "quantize=dynamic: dynamic-range quantisation (Optimize.DEFAULT, no "
                   f"representative dataset): {dtypes.get('int8', 0)} int8 weight tensors",
        "float16": "quantize=float16: weights stored as float16 "
                   f"({dtypes.get('float16', 0)} tensors), dequantised to float32 at load",
    }[quantize] + f"; tensors by type: {kinds}"


def onnx_to_tflite(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    quantize = knobs.get("quantize", "none")
    import tensorflow as tf
    import tf_keras
    start = time.perf_counter()
    model, proto, in_name, layout, shape = onnx_to_keras_model(src, spec)
    import onnx2tf
    try:
        _save_archive(tf, tf_keras, model, "saved_model")
    except Exception as e:
        raise StepError(f"exporting onnx2tf's Keras model as a SavedModel failed: "
                        f"{type(e).__name__}: {e}") from e

    converter = tf.lite.TFLiteConverter.from_saved_model("saved_model")
    tflite_converter_settings(tf, converter, quantize)
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
    out["input"]["layout"], note = layout_note(f"onnx2tf {onnx2tf.__version__}", in_name, layout,
                                               shape, tin_shape)
    notes = [note, f"TFLite names: input {tin!r}, output {tout!r} (ONNX: {in_name!r}, "
                   f"{proto.graph.output[0].name!r})", quantize_note(quantize, dtypes)]
    return out, notes, convert_s


def tflite_to_onnx(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
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
    _check_tf2onnx_output(proto, tmp_out)

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


def keras_source(src: str, spec: Spec) -> tuple[Any, str, str, list[int]]:
    """(model, how it was read, its input name, the spec's input shape) of the `.keras` file
    `src`, whose input must take the spec's shape (open dimensions aside)."""
    try:
        model, how = keras_files.load_keras(src)
        name, dims = keras_files.single_input(model, src)
    except keras_files.KerasFileError as e:
        raise StepError(str(e)) from e
    shape = [int(d) for d in spec["input"]["shape"]]
    layout = spec.get("input", {}).get("layout", "NCHW")
    if len(dims) != len(shape) or any(d not in (None, s)
                                      for d, s in zip(dims, shape, strict=False)):
        raise StepError(f"{src}'s input {name!r} has shape {dims}, which does not fit the spec's "
                        f"{layout} shape {shape} (Keras models are usually NHWC)")
    return model, how, name, shape


def export_keras(tf: Any, model: Any, name: str, shape: list[int], folder: str) -> None:
    """The Keras model as a SavedModel at the spec's (static) input shape, with one endpoint
    `serving_default` whose input keeps the Keras input's name; the output is `output_0`."""
    archive = keras_files.export_archive_module(model).export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=lambda x: model(x, training=False),
                         input_signature=[tf.TensorSpec(shape, tf.float32, name=name)])
    try:
        archive.write_out(folder)
    except Exception as e:
        raise StepError(f"exporting the Keras model as a SavedModel failed: "
                        f"{type(e).__name__}: {e}") from e


def keras_to_tflite(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    quantize = knobs.get("quantize", "none")
    import tensorflow as tf
    start = time.perf_counter()
    model, how, name, shape = keras_source(src, spec)
    export_keras(tf, model, name, shape, "saved_model")
    converter = tf.lite.TFLiteConverter.from_saved_model("saved_model")
    tflite_converter_settings(tf, converter, quantize)
    try:
        flatbuffer = converter.convert()
    except Exception as e:
        raise StepError(f"tf.lite.TFLiteConverter failed: {type(e).__name__}: {e}") from e
    with open(tmp_out, "wb") as f:
        f.write(flatbuffer)
    convert_s = time.perf_counter() - start

    ins, outs, dtypes = tflite_io(tmp_out)
    (tin, tin_shape), (tout, _) = _only(ins, "input", tmp_out), _only(outs, "output", tmp_out)
    if tin_shape != shape:
        raise StepError(f"the TFLite input {tin!r} has shape {tin_shape}, not the spec's {shape}")
    out = copy.deepcopy(spec)
    out["input"]["name"], out["output"]["name"] = tin, tout
    layout = spec.get("input", {}).get("layout", "NCHW")
    notes = [f"read with {how}; exported as a SavedModel at the input shape {shape} and converted "
             f"by TFLiteConverter.from_saved_model; layout kept ({layout})",
             f"TFLite names: input {tin!r}, output {tout!r} (Keras input {name!r})",
             quantize_note(quantize, dtypes)]
    return out, notes, convert_s


def keras_to_onnx(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader
    start = time.perf_counter()
    model, how, name, shape = keras_source(src, spec)
    export_keras(tf, model, name, shape, "saved_model")
    try:
        # The SavedModel route (as tf2onnx's --saved-model) freezes every variable and constant
        # a tf_keras model from onnx2tf captures; tracing the Keras call directly leaves some of
        # those as extra graph inputs.
        graph_def, inputs, outputs, _, renames = tf_loader.from_saved_model(
            "saved_model", None, None, tag="serve", signatures=["serving_default"],
            return_initialized_tables=True, return_tensors_to_rename=True)
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, name=model.name, input_names=inputs, output_names=outputs,
            opset=ONNX_OPSET, tensors_to_rename=renames, output_path=tmp_out)
    except Exception as e:
        raise StepError(f"tf2onnx failed: {type(e).__name__}: {e}") from e
    convert_s = time.perf_counter() - start
    _check_tf2onnx_output(proto, tmp_out)
    (in_name, in_dims), = _onnx_inputs(proto)
    out = copy.deepcopy(spec)
    out["input"]["name"], out["output"]["name"] = in_name, proto.graph.output[0].name
    layout = spec.get("input", {}).get("layout", "NCHW")
    notes = [f"read with {how}; tf2onnx {tf2onnx.__version__} at opset {ONNX_OPSET} from the "
             f"model's SavedModel; layout kept ({layout}, input {in_name!r} {in_dims}), no "
             "transposes added at the inputs",
             f"ONNX names: input {in_name!r}, output {out['output']['name']!r}"]
    return out, notes, convert_s


def onnx_to_keras(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    start = time.perf_counter()
    model, proto, in_name, layout, shape = onnx_to_keras_model(src, spec)
    import onnx2tf
    try:
        model.save(tmp_out)
    except Exception as e:
        raise StepError(f"saving onnx2tf's Keras model as {os.path.basename(tmp_out)} failed: "
                        f"{type(e).__name__}: {e}") from e
    convert_s = time.perf_counter() - start
    try:
        version = keras_files.keras_version_of(tmp_out)
        name, dims = keras_files.single_input(model, tmp_out)
    except keras_files.KerasFileError as e:
        raise StepError(str(e)) from e
    if None in dims[1:]:
        raise StepError(f"onnx2tf's Keras model leaves its input's shape {dims} open")
    new_shape = [shape[0], *[int(d) for d in dims[1:] if d is not None]]
    out = copy.deepcopy(spec)
    out["input"]["layout"], note = layout_note(f"onnx2tf {onnx2tf.__version__}", in_name, layout,
                                               shape, new_shape)
    out["input"]["name"], out["input"]["shape"] = name, new_shape
    out["output"]["name"] = model.output_names[0]
    notes = [note, f"a tf_keras model saved as .keras (Keras {version} format: read by tf_keras, "
                   f"not Keras 3); names: input {name!r}, output {out['output']['name']!r} "
                   f"(ONNX: {in_name!r}, {proto.graph.output[0].name!r})"]
    return out, notes, convert_s


STEPS = {"onnx>tflite": onnx_to_tflite, "tflite>onnx": tflite_to_onnx,
         "keras>tflite": keras_to_tflite, "keras>onnx": keras_to_onnx,
         "onnx>keras": onnx_to_keras}


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
