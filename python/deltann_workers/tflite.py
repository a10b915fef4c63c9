"""The `tflite` engine: TFLite flatbuffers run by LiteRT's interpreter (the ai-edge-litert wheel).

A Python worker because the wheel ships libLiteRt.so without its headers (docs/TFLITE.md). It runs
with the TensorFlow venv's Python through the launcher cmake/engines/tflite.cmake generates:

    deltann-worker-tflite --describe | --serve

Knobs: `opt` (none: LiteRT's builtin kernels with no default delegate; xnnpack: LiteRT's default,
the XNNPACK delegate taking every op it supports), `threads` (the interpreter's num_threads) and
`device` (cpu). A model whose input or output is int8/uint8 is quantised and dequantised here with
the tensor's own scale and zero point, outside the clock, so the campaign always exchanges float32.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

# The package is found through sys.path: the launcher puts python/ there, the trial child gets
# it through PYTHONPATH.
from deltann_tools.environment import Environment
from deltann_workers import worker
from deltann_workers.worker import EngineError, shape_text

OPT_VALUES = ["none", "xnnpack"]  # least optimised first, as every engine lists them
DEFAULT_OPT = "xnnpack"
QUANTISED_TYPES = (np.int8, np.uint8)

# Where this package lives, so that the trial load (below) can import it in a fresh interpreter.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def litert_version() -> str:
    """ai-edge-litert's version, without importing the interpreter (keeps --describe fast)."""
    import ai_edge_litert

    return ai_edge_litert.__version__


def resolver_for(opt: str) -> Any:
    """LiteRT's op resolver for the `opt` knob. AUTO is what the Python API does by default: the
    builtin kernels plus the default delegate (XNNPACK); BUILTIN_WITHOUT_DEFAULT_DELEGATES keeps
    the same kernels but never hands the graph to XNNPACK."""
    from ai_edge_litert.interpreter import OpResolverType

    if opt == "none":
        return OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if opt == "xnnpack":
        return OpResolverType.AUTO
    raise EngineError(f"opt={opt} is not a tflite optimisation; valid: {', '.join(OPT_VALUES)}")


def engine_settings(env: Environment) -> tuple[str, int]:
    """(opt, threads) of a resolved environment, checked, so that a bad value is a clear error
    even when the worker is driven by hand."""
    opt = env.knob("opt")
    resolver_for(opt)
    threads = env.positive_int("threads")
    device = env.knob("device")
    if device != "cpu":
        raise EngineError(f"environment '{env.text}': device={device} is not available; "
                          "the tflite engine runs on: cpu")
    return opt, threads


def make_interpreter(path: str, opt: str, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_path=str(path), num_threads=threads,
                           experimental_op_resolver_type=resolver_for(opt))
    except (ValueError, RuntimeError) as e:
        # LiteRT often raises with an empty message; its reason went to stderr (kept by the
        # campaign), so say what was attempted.
        raise EngineError(f"{path}: LiteRT cannot read it as a TFLite model"
                          f"{': ' + str(e) if str(e) else ''}") from None


def signature_aliases(interpreter: Any, kind: str) -> dict[str, str]:
    """{signature name: tensor name} for the model's inputs or outputs: a converter names the
    tensors (`serving_default_image:0`) after the names a spec is more likely to use (`image`)."""
    aliases: dict[str, str] = {}
    main = {d["name"]: d["index"] for d in getattr(interpreter, f"get_{kind}_details")()}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        for alias, details in getattr(runner, f"get_{kind}_details")().items():
            if main.get(details["name"]) == details["index"]:
                aliases.setdefault(alias, details["name"])
    return aliases


def pick_tensor(interpreter: Any, kind: str, wanted: str | None) -> dict[str, Any]:
    """The details of the input or output `wanted` names (a tensor or signature name), or of the
    first one when the spec names none."""
    details = getattr(interpreter, f"get_{kind}_details")()
    if not details:
        raise EngineError(f"model has no {kind}")
    if not wanted:
        return details[0]
    aliases = signature_aliases(interpreter, kind)
    name = aliases.get(wanted, wanted)
    for d in details:
        if d["name"] == name:
            return d
    known = ", ".join(d["name"] + "".join(f" (signature name '{a}')" for a, t in aliases.items()
                                          if t == d["name"]) for d in details)
    raise EngineError(f"model has no {kind} named '{wanted}'; it has: {known}")


def quantisation_of(details: dict[str, Any], what: str) -> tuple[float, int] | None:
    """(scale, zero point) of a quantised int8/uint8 model input or output; float32 gives None.
    Per-channel parameters on a model's input or output are refused: one image value would need
    a different scale per channel and no converter produces that."""
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return None
    if dtype not in [np.dtype(t) for t in QUANTISED_TYPES]:
        raise EngineError(f"model {what} '{details['name']}' is {dtype.name}; the tflite engine "
                          "takes float32, or int8/uint8 with quantisation parameters")
    params = details["quantization_parameters"]
    scales, zero_points = params["scales"], params["zero_points"]
    if len(scales) != 1 or len(zero_points) != 1:
        raise EngineError(f"model {what} '{details['name']}' is {dtype.name} with "
                          f"{len(scales)} quantisation scales; only per-tensor quantisation "
                          "(one scale, one zero point) is supported")
    scale = float(scales[0])
    if not np.isfinite(scale) or scale <= 0:
        raise EngineError(f"model {what} '{details['name']}' has an invalid quantisation "
                          f"scale {scale}")
    return scale, int(zero_points[0])


def quantise(values: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    """float32 -> int8/uint8 the way LiteRT's Quantize kernel does it: round half away from zero
    (C++ std::round, not numpy's half-to-even), add the zero point, clamp to the type's range."""
    scaled = np.asarray(values, dtype=np.float64) / scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    limits = np.iinfo(dtype)
    return np.clip(rounded + zero_point, limits.min, limits.max).astype(dtype)


def dequantise(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8/uint8 -> float32 as LiteRT's Dequantize kernel: scale * (q - zero point)."""
    return (scale * (np.asarray(values, dtype=np.float64) - zero_point)).astype(np.float32)


def capture_mode_text(opt: str) -> str:
    delegate = ("not the XNNPACK delegate the timed run uses (opt=xnnpack), whose fused "
                "partitions keep no intermediate tensors, so the captured run is not the timed one"
                if opt == "xnnpack" else "as the timed run (opt=none)")
    return ("tflite: every op's output tensor, read after one invoke of a second interpreter "
            "with experimental_preserve_all_tensors; LiteRT's builtin kernels, " + delegate +
            "; names are TFLite's tensor names (not ONNX names), op the TFLite builtin op; "
            "layout as TFLite holds it (NHWC for images); fusions done by the converter (a "
            "CONV_2D with its activation) stay fused; int8/uint8 tensors are dequantised with "
            "their own scale and zero point, float16 ones widened; other types are skipped")


def tensor_as_float64(value: Any, details: dict[str, Any]) -> np.ndarray | None:
    """A tensor's values as float64: floats widened, int8/uint8/int16 dequantised with the
    tensor's scale(s) and zero point(s) (per channel along quantized_dimension when there are
    several); None for a type that holds no real values (indices, shapes, booleans)."""
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float64)
    if value.dtype not in (np.int8, np.uint8, np.int16):
        return None
    params = details.get("quantization_parameters", {})
    scales = np.asarray(params.get("scales", []), dtype=np.float64)
    zero_points = np.asarray(params.get("zero_points", []), dtype=np.float64)
    if scales.size == 0:
        return None
    if zero_points.size == 0:
        zero_points = np.zeros_like(scales)
    if scales.size > 1:
        # Per-channel: broadcast along the quantised dimension.
        shape = [1] * value.ndim
        shape[int(params.get("quantized_dimension", 0))] = scales.size
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return scales * (value.astype(np.float64) - zero_points)


class LiteRtSession:
    """One loaded model: its interpreter with tensors allocated, and the chosen input/output."""

    def __init__(self, path: str, opt: str, threads: int, spec: dict[str, Any]) -> None:
        self.path, self.opt, self.threads = str(path), opt, threads
        self.bound_input: np.ndarray | None = None
        # Made by the first capture only: preserving every tensor costs memory and the timed
        # interpreter must stay exactly as loaded.
        self.capture_interpreter: Any = None
        self.interpreter = make_interpreter(path, opt, threads)
        spec_input = spec.get("input", {}) or {}
        spec_output = spec.get("output", {}) or {}
        self.input = pick_tensor(self.interpreter, "input", spec_input.get("name", ""))
        self.output_details = pick_tensor(self.interpreter, "output",
                                          spec_output.get("name", ""))
        self.input_quantisation = quantisation_of(self.input, "input")
        self.output_quantisation = quantisation_of(self.output_details, "output")
        self.shape = self.fit_input_shape(spec_input, spec_input.get("layout", "NCHW"))
        try:
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EngineError(f"{path}: LiteRT cannot prepare the model: {e}") from None
        self.input_dtype = np.dtype(self.input["dtype"])
        self.invoked = False

    def fit_input_shape(self, spec_input: dict[str, Any], layout: str) -> tuple[int, ...]:
        """Checks the model's input shape against the spec now, so that a mismatch is a load
        failure naming both shapes (and the spec's layout: an NCHW spec against an NHWC model is
        the usual slip). Dimensions the model leaves open (-1) are set to the spec's."""
        spec_shape = spec_input.get("shape", [1, 3, 224, 224])
        if not isinstance(spec_shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in spec_shape):
            raise EngineError(f"spec input shape {spec_shape!r} is not a list of positive integers")
        model_shape = [int(d) for d in self.input["shape_signature"]]
        if len(model_shape) != len(spec_shape) or any(
                m not in (-1, s) for m, s in zip(model_shape, spec_shape, strict=True)):
            raise EngineError(f"model input '{self.input['name']}' has shape "
                              f"{shape_text(model_shape)} but the spec says "
                              f"{shape_text(spec_shape)} ({layout})")
        if -1 in model_shape:
            self.interpreter.resize_input_tensor(self.input["index"], spec_shape, strict=True)
        return tuple(spec_shape)

    def set_input(self, tensor: np.ndarray) -> None:
        if tuple(tensor.shape) != self.shape:
            raise EngineError(f"input tensor has shape {shape_text(tensor.shape)} but model input "
                              f"'{self.input['name']}' takes {shape_text(self.shape)}")
        if self.input_quantisation is not None:
            tensor = quantise(tensor, self.input_dtype, *self.input_quantisation)
        self.interpreter.set_tensor(self.input["index"], tensor)
        self.bound_input = tensor

    def run(self) -> None:
        self.interpreter.invoke()
        self.invoked = True

    def output(self) -> np.ndarray:
        if not self.invoked:
            raise EngineError("no output yet")
        # get_tensor copies, so the value survives the next invoke.
        values = self.interpreter.get_tensor(self.output_details["index"]).ravel()
        if self.output_quantisation is not None:
            return dequantise(values, *self.output_quantisation)
        return values.astype(np.float32, copy=False)

    def capture_mode(self) -> str:
        return capture_mode_text(self.opt)

    def make_capture_interpreter(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # Builtin kernels: a delegate would compute its partition internally and leave the
        # preserved tensors of the ops it took unwritten.
        interpreter = Interpreter(
            model_path=self.path, num_threads=self.threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=True)
        if list(self.input["shape_signature"]) != list(self.shape):
            interpreter.resize_input_tensor(self.input["index"], list(self.shape), strict=True)
        interpreter.allocate_tensors()
        return interpreter

    def capture(self) -> list[worker.CapturedTensor]:
        if self.bound_input is None:
            raise EngineError("capture requested before an input was bound")
        if self.capture_interpreter is None:
            self.capture_interpreter = self.make_capture_interpreter()
        interpreter = self.capture_interpreter
        interpreter.set_tensor(self.input["index"], self.bound_input)
        interpreter.invoke()
        # Nodes are numbered in execution order (no delegate reorders them here).
        captured = []
        last_index = None
        for op in interpreter._get_ops_details():
            for index in op["outputs"]:
                if index < 0:
                    continue
                details = interpreter._get_tensor_details(int(index), 0)
                values = tensor_as_float64(interpreter.get_tensor(int(index)), details)
                if values is None:
                    continue
                captured.append(worker.CapturedTensor(details["name"], op["op_name"],
                                                      list(values.shape), values))
                last_index = int(index)
        output_index = self.output_details["index"]
        if last_index != output_index:
            # The chosen output is not the last op's: it is what the run returns, so it goes last.
            values = tensor_as_float64(interpreter.get_tensor(output_index),
                                       self.output_details)
            if values is None:
                raise EngineError(f"model output '{self.output_details['name']}' holds no real "
                                  "values to capture")
            captured.append(worker.CapturedTensor(self.output_details["name"], "output",
                                                  list(values.shape), values))
        return captured


class LiteRtEngine:
    """The Engine of deltann_workers.worker for LiteRT."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": "tflite",
            "version": litert_version(),
            "description": "TFLite flatbuffers on LiteRT's interpreter (ai-edge-litert), CPU",
            "devices": ["cpu"],
            "formats": ["tflite"],
            "knobs": [
                {"name": "opt", "values": OPT_VALUES, "default": DEFAULT_OPT, "subset": False,
                 "help": "none: builtin kernels without the default delegate; "
                         "xnnpack: the default XNNPACK delegate"},
                {"name": "device", "values": ["cpu"], "default": "cpu", "subset": False,
                 "help": "the interpreter runs on the CPU"},
                {"name": "threads", "values": [], "default": "1", "subset": False,
                 "help": "interpreter threads (num_threads)"},
            ],
        }

    def check(self, request: worker.LoadRequest) -> None:
        """Vets the model outside the load clock. LiteRT's Python API does not verify the
        flatbuffer, and a damaged file can crash the interpreter (a segmentation fault in
        InterpreterBuilder or a kernel), which would take this worker down with it. So the model
        is first loaded, prepared and run once in a throw-away child process; only a model that
        survives that is loaded here."""
        opt, threads = engine_settings(request.env)
        path = Path(request.artifact)
        if not path.is_file():
            raise EngineError(f"{path}: no such model file" if not path.exists()
                              else f"{path}: not a regular file")
        if not os.access(path, os.R_OK):
            raise EngineError(f"{path}: not readable")
        trial_load(path, opt, threads, request.spec)

    def load(self, request: worker.LoadRequest) -> LiteRtSession:
        opt, threads = engine_settings(request.env)
        return LiteRtSession(request.artifact, opt, threads, request.spec)


def trial_load(path: str | Path, opt: str, threads: int, spec: dict[str, Any]) -> None:
    """Runs `--trial-load` in a fresh Python; raises EngineError when that child fails or dies."""
    import json

    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    env.pop("PYTHONHOME", None)
    # -P and -s: nothing from the current folder or the user's site-packages shadows a module.
    command = [sys.executable, "-P", "-s", "-m", "deltann_workers.tflite", "--trial-load",
               str(path), opt, str(threads), json.dumps(spec)]
    child = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, errors="replace")
    # The child's log is the engine's log: keep it where the campaign collects it.
    sys.stderr.write(child.stderr)
    sys.stderr.flush()
    if child.returncode == 0:
        return
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        lines = [line for line in child.stderr.splitlines() if line.strip()]
        detail = f" (LiteRT said: {lines[-1][:300]})" if lines else ""
        raise EngineError(f"{path}: LiteRT crashed ({name}) reading or running the model; the "
                          f"file is damaged or not a TFLite model{detail}")
    # The child's last line is its error message (trial_main below).
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    raise EngineError(lines[-1] if lines else
                      f"{path}: trial load failed with exit code {child.returncode}")


def trial_main(path: str, opt: str, threads: str, spec_text: str) -> int:
    """The child of trial_load: load, prepare and run the model once on zeros. Exit 0 when it
    all worked; otherwise the last line on stderr says why."""
    import json
    import resource

    worker.die_with_parent()
    # A crash here is an expected outcome, not something to keep a core file of.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        session = LiteRtSession(path, opt, int(threads), json.loads(spec_text))
        session.set_input(np.zeros(session.shape, dtype=np.float32))
        session.run()
        session.output()
    except Exception as e:  # noqa: BLE001  (any failure is reported, as one line)
        print(worker.error_text(e).replace("\n", " "), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) == 6 and argv[1] == "--trial-load":
        return trial_main(*argv[2:])
    return worker.worker_main(argv, LiteRtEngine)


if __name__ == "__main__":
    sys.exit(main())
