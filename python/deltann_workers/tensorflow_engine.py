"""The `tensorflow` engine: Keras models (`.keras` files) and SavedModel folders run by TensorFlow.

A Python worker (TensorFlow's supported interface is Python) run with the TensorFlow venv's Python
through the launcher cmake/engines/tensorflow.cmake generates:

    deltann-worker-tensorflow --describe | --serve

Knobs (docs/TENSORFLOW.md):
- `xla` (off, on): the model's call wrapped in `tf.function(jit_compile=False)` (TensorFlow's graph
  executor with Grappler) or `tf.function(jit_compile=True)` (the whole graph compiled by XLA);
- `onednn` (off, on): TensorFlow's oneDNN kernels, chosen by `TF_ENABLE_ONEDNN_OPTS`, which
  TensorFlow reads once when it is imported; so the worker imports TensorFlow at its first load,
  after setting the variable, and checks TensorFlow's own answer (`IsMklEnabled`) against the knob;
- `threads`: TensorFlow's intra-op thread pool; the inter-op pool is 1 (one op at a time), so that
  `threads=N` means N cores as for the other engines. Like `onednn`, fixed for the life of the
  process once TensorFlow has started: a later load asking for another value is refused (the
  campaign runs each variant in a worker of its own);
- `device` (cpu): GPUs are hidden from TensorFlow before it is imported.

Layout: the spec's input shape and layout must be the model's (Keras models are normally NHWC,
`[1, H, W, 3]`); the campaign's preprocessing writes the tensor in the spec's layout, and the worker
never transposes. A model input of another shape is a load error naming both and the spec's layout.
"""
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from deltann_tools import keras_files
from deltann_tools.environment import Environment
from deltann_workers import worker
from deltann_workers.worker import EngineError, shape_text

SWITCH = ["off", "on"]
DEFAULTS = {"xla": "off", "onednn": "on"}


def package_version(name: str) -> str:
    """A distribution's version from its metadata, without importing it (keeps --describe fast)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def engine_settings(env: Environment) -> dict[str, Any]:
    """The knobs of a resolved environment, checked, so that a bad value is a clear error even when
    the worker is driven by hand."""
    settings: dict[str, Any] = {}
    for name in ("xla", "onednn"):
        value = env.knob(name)
        if value not in SWITCH:
            raise EngineError(f"environment '{env.text}': {name}={value} is not valid; "
                              f"valid: {', '.join(SWITCH)}")
        settings[name] = value == "on"
    settings["threads"] = env.positive_int("threads")
    device = env.knob("device")
    if device != "cpu":
        raise EngineError(f"environment '{env.text}': device={device} is not available; the "
                          "tensorflow engine runs on: cpu")
    return settings


def switch_text(value: bool | None) -> str:
    return "on" if value else "off"


class Runtime:
    """TensorFlow, imported once per process with the oneDNN and thread settings of the first
    load; later loads must ask for the same (they cannot be changed once TensorFlow started)."""

    def __init__(self) -> None:
        self.onednn: bool | None = None
        self.threads: int | None = None
        self.tf: Any = None

    def start(self, onednn: bool, threads: int) -> Any:
        if self.tf is not None:
            for name, have, want in (("onednn", switch_text(self.onednn), switch_text(onednn)),
                                     ("threads", str(self.threads), str(threads))):
                if have != want:
                    raise EngineError(
                        f"{name}={want}: this worker started TensorFlow with {name}={have}, "
                        "which cannot change in a running process; use a worker of its own for "
                        "each setting (a campaign does)")
            return self.tf
        # Read by TensorFlow when it is imported, and only then.
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
        # device=cpu: no GPU is initialised at all (hiding them later would be too late).
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        from tensorflow.python.util import _pywrap_util_port

        active = bool(_pywrap_util_port.IsMklEnabled())
        if active != onednn:
            raise EngineError(f"onednn={switch_text(onednn)} was asked for, but TensorFlow "
                              f"reports oneDNN {switch_text(active)} after "
                              f"TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}")
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        got = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
        if got != (threads, 1):
            raise EngineError(f"threads={threads}: TensorFlow reports intra-op {got[0]}, "
                              f"inter-op {got[1]} threads")
        self.tf, self.onednn, self.threads = tf, onednn, threads
        # The campaign keeps the worker's log: say what was verified.
        print(f"tensorflow {tf.__version__}: oneDNN {switch_text(active)} (IsMklEnabled), "
              f"intra-op threads {got[0]}, inter-op threads {got[1]}", file=sys.stderr)
        return tf


def only(items: list[Any], what: str, path: Path) -> Any:
    if len(items) != 1:
        raise EngineError(f"{path} has {len(items)} {what}s; the tensorflow engine takes models "
                          f"with one image input")
    return items[0]


class TensorFlowSession:
    """One loaded model: a traced tf.function over it at the spec's input shape."""

    def __init__(self, tf: Any, path: Path, xla: bool, spec: dict[str, Any]) -> None:
        self.tf = tf
        spec_input = spec.get("input", {}) or {}
        spec_shape = spec_input.get("shape", [1, 3, 224, 224])
        if not isinstance(spec_shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in spec_shape):
            raise EngineError(f"spec input shape {spec_shape!r} is not a list of positive integers")
        self.shape = tuple(spec_shape)
        layout = spec_input.get("layout", "NCHW")
        wanted_output = (spec.get("output", {}) or {}).get("name", "")
        if path.is_dir():
            call, model_shape, self.input_name, self.how = self.saved_model(path)
        else:
            call, model_shape, self.input_name, self.how = self.keras_model(path)
        if len(model_shape) != len(spec_shape) or any(
                m not in (None, -1, s) for m, s in zip(model_shape, spec_shape, strict=True)):
            shown = shape_text([-1 if d is None else d for d in model_shape])
            raise EngineError(f"model input '{self.input_name}' has shape {shown} but the spec "
                              f"says {shape_text(spec_shape)} ({layout})")
        signature = tf.TensorSpec(self.shape, tf.float32, name=self.input_name)
        self.function = tf.function(call, jit_compile=xla, input_signature=[signature],
                                    autograph=False)
        # Trace now (part of the load); XLA compiles at the first run (first_ns shows it).
        outputs = self.function.get_concrete_function().structured_outputs
        self.output_key = self.pick_output(outputs, wanted_output)
        self.input = None
        self.result = None

    def keras_model(self, path: Path) -> tuple[Any, list, str, str]:
        if path.suffix != ".keras":
            raise EngineError(f"{path}: the tensorflow engine loads .keras files and SavedModel "
                              "folders, not this")
        try:
            model, how = keras_files.load_keras(path)
            name, shape = keras_files.single_input(model, path)
        except keras_files.KerasFileError as e:
            raise EngineError(str(e)) from None
        return (lambda x: model(x, training=False)), shape, name, how

    def saved_model(self, path: Path) -> tuple[Any, list, str, str]:
        if not (path / "saved_model.pb").is_file():
            raise EngineError(f"{path}: a folder without saved_model.pb is not a SavedModel")
        try:
            loaded = self.tf.saved_model.load(str(path))
        except Exception as e:  # noqa: BLE001
            raise EngineError(f"{path}: TensorFlow cannot load the SavedModel: "
                              f"{type(e).__name__}: {e}") from None
        signature = loaded.signatures.get("serving_default")
        if signature is None:
            raise EngineError(f"{path}: the SavedModel has no 'serving_default' signature")
        _, kwargs = signature.structured_input_signature
        name, spec = only(list(kwargs.items()), "input", path)
        shape = [None if d is None else int(d) for d in spec.shape]
        self.keep_alive = loaded  # the signature's variables live as long as this object
        return (lambda x: signature(**{name: x})), shape, name, \
            "tf.saved_model.load (signature serving_default)"

    @staticmethod
    def pick_output(outputs: Any, wanted: str) -> Any:
        """The key of the output to send: None for a single tensor, else a name or an index."""
        if isinstance(outputs, dict):
            keys = list(outputs)
            if wanted in outputs:
                return wanted
            if not wanted and keys:
                return keys[0]
            raise EngineError(f"model has no output named '{wanted}'; it has: {', '.join(keys)}")
        if isinstance(outputs, (list, tuple)):
            names = [getattr(t, "name", "") or "" for t in outputs]
            for i, name in enumerate(names):
                if wanted and name.split(":")[0].split("/")[0] == wanted:
                    return i
            return 0
        return None

    def set_input(self, tensor: np.ndarray) -> None:
        if tuple(tensor.shape) != self.shape:
            raise EngineError(f"input tensor has shape {shape_text(tensor.shape)} but model input "
                              f"'{self.input_name}' takes {shape_text(self.shape)}")
        # A TensorFlow tensor made outside the clock: run() passes it as it is.
        self.input = self.tf.constant(tensor)

    def run(self) -> None:
        # On the CPU the call returns once the output is computed (eager execution is synchronous).
        self.result = self.function(self.input)

    def output(self) -> np.ndarray:
        if self.result is None:
            raise EngineError("no output yet")
        value = self.result if self.output_key is None else self.result[self.output_key]
        return np.asarray(value.numpy(), dtype=np.float32).ravel()


class TensorFlowEngine:
    """The Engine of deltann_workers.worker for TensorFlow/Keras."""

    def __init__(self) -> None:
        self.runtime = Runtime()
        self.settings: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": "tensorflow",
            "version": package_version("tensorflow"),
            "description": (f"Keras models (.keras; Keras {package_version('keras')} or tf_keras "
                            f"{package_version('tf-keras')}) and SavedModels on TensorFlow, CPU"),
            "devices": ["cpu"],
            "formats": ["keras"],
            "knobs": [
                {"name": "xla", "values": SWITCH, "default": DEFAULTS["xla"], "subset": False,
                 "help": "off: tf.function graph execution; on: jit_compile=True (XLA)"},
                {"name": "onednn", "values": SWITCH, "default": DEFAULTS["onednn"],
                 "subset": False,
                 "help": "TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS, verified at load)"},
                {"name": "device", "values": ["cpu"], "default": "cpu", "subset": False,
                 "help": "TensorFlow runs on the CPU (GPUs hidden)"},
                {"name": "threads", "values": [], "default": "1", "subset": False,
                 "help": "intra-op threads (inter-op: 1)"},
            ],
        }

    def check(self, request: worker.LoadRequest) -> None:
        """Outside the load clock: the settings, the file, and TensorFlow's start (importing it
        takes seconds and is no part of loading a model)."""
        self.settings = engine_settings(request.env)
        path = Path(request.artifact)
        if not path.exists():
            raise EngineError(f"{path}: no such model file or folder")
        if not os.access(path, os.R_OK):
            raise EngineError(f"{path}: not readable")
        if path.is_file():
            try:
                keras_files.keras_version_of(path)
            except keras_files.KerasFileError as e:
                raise EngineError(str(e)) from None
        self.runtime.start(self.settings["onednn"], self.settings["threads"])

    def load(self, request: worker.LoadRequest) -> TensorFlowSession:
        tf = self.runtime.tf
        return TensorFlowSession(tf, Path(request.artifact), self.settings["xla"], request.spec)


def main(argv: list[str] | None = None) -> int:
    return worker.worker_main(sys.argv if argv is None else argv, TensorFlowEngine)


if __name__ == "__main__":
    sys.exit(main())
