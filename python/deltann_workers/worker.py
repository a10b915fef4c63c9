"""The worker protocol (docs/PROTOCOL.md, version 1) for engines driven from Python.

This is the Python twin of src/run/worker.cpp and must behave the same way: the campaign cannot
tell a Python worker from a C++ one. An engine provides two small objects:

- an Engine with `describe()` (the `--describe` dictionary: name, version, description, devices,
  formats, knobs), `load(request)` returning a Session, and optionally `check(request)`, run
  before `load` and outside its clock (for example to vet an untrusted model file);
- a Session with `set_input(array)`, `run()` and `output()` (a 1-D float32 numpy array), and
  optionally `capture()` (a list of CapturedTensor, in execution order, the graph's output last)
  with `capture_mode()` (how it captured and what that changed) for the `capture` op; a Session
  without them answers `capture` with an error, as a C++ engine without Session::capture() does.

`load` and the engine calls may raise any exception: the reply is an error event with the stage and
the message, and the worker stays usable. `EngineError` is for messages that are complete as they
are; any other exception's message is prefixed with its type, since the type often is the clue
("KeyError: 'x'").
"""
import base64
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

# A load request's environment, parsed as everywhere else in deltann's Python; engines read its
# knobs (`request.env.knob("opt")`).
from deltann_tools.environment import Environment, EnvironmentStringError, parse_environment

PROTOCOL_VERSION = 1

# JSON has no infinity: a difference that is infinite (NaN on one side only, Inf against a finite
# value, outputs of different lengths) is sent as this, like the C++ worker does.
INFINITE_DIFFERENCE = 1e308


class EngineError(Exception):
    """An error whose message says what went wrong and where, ready for the error reply."""


@dataclass
class CapturedTensor:
    """One intermediate tensor of a capture (include/deltann/backend.h's CapturedTensor): its
    name, the operator that produced it, its shape as the engine holds it and its values (any
    numeric array; written as float64)."""

    name: str
    op: str
    shape: list
    values: np.ndarray


@dataclass
class LoadRequest:
    """What a `load` request carries: the artifact path, the environment and the model spec (the
    JSON object of a *.spec.json, as a dictionary)."""

    artifact: str
    env: Environment
    spec: dict


def read_npy(path: str) -> np.ndarray:
    """The input tensor of a `run` request: a little-endian float32 C-order .npy, as the
    preprocessing cache writes it (the C++ reader accepts nothing else either)."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EngineError(f"cannot open tensor file {path}") from None
    except (ValueError, OSError, EOFError) as e:
        raise EngineError(f"{path} is not a readable NumPy .npy file: {e}") from None
    if array.dtype != np.dtype("<f4"):
        raise EngineError(f"{path}: only little-endian float32 C-order tensors are supported "
                          f"(it holds {array.dtype.str})")
    if not array.flags.c_contiguous:
        raise EngineError(f"{path}: only little-endian float32 C-order tensors are supported "
                          "(it is in Fortran order)")
    return array


def shape_text(shape: Sequence[int]) -> str:
    """How every message names a shape, "[1,3,224,224]", as the C++ side writes it."""
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def encode_floats(values: np.ndarray) -> str:
    """base64 of the little-endian float32 bytes, so NaN and Inf arrive bit-exact."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over two outputs, with the C++ worker's rules: NaN on both sides is equal,
    on one side infinite; equal infinities are equal; lengths that differ are infinite."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return INFINITE_DIFFERENCE
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if np.any(nan_a != nan_b):
        return INFINITE_DIFFERENCE
    keep = ~nan_a & (a != b)
    if not np.any(keep):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        worst = float(np.max(np.abs(a[keep] - b[keep])))
    return min(INFINITE_DIFFERENCE, worst)


class Server:
    """Answers the requests of one `--serve` session; holds the engine and its loaded model."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.session = None
        self.input_shape = None  # the spec's, of the loaded model

    def handle(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to one request, or None when the campaign asked the worker to stop."""
        op = request.get("op", "")
        if op == "quit":
            return None
        if op == "load":
            return self.load(request)
        if op == "run":
            return self.run(request)
        if op == "capture":
            return self.capture(request)
        return {"event": "error", "stage": "protocol", "message": f"unknown op '{op}'"}

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        spec = field_of(request, "spec")
        if not isinstance(spec, dict):
            raise EngineError("load request: 'spec' is not a JSON object")
        load = LoadRequest(str(field_of(request, "artifact")),
                           parse_environment(field_of(request, "env")), spec)
        # A model that failed to load leaves no model behind: a later run must not silently use
        # the previous one.
        self.session = None
        check = getattr(self.engine, "check", None)
        if check is not None:
            check(load)
        start = time.perf_counter_ns()
        session = self.engine.load(load)
        load_ns = time.perf_counter_ns() - start
        self.session = session
        self.input_shape = (spec.get("input") or {}).get("shape")
        return {"event": "loaded", "load_ns": load_ns,
                "engine_version": self.engine.describe()["version"]}

    def read_bound_tensor(self, request: dict[str, Any]) -> np.ndarray:
        """The request's tensor, refused unless it has the spec's shape (as the C++ worker does):
        the load checked that shape against the model."""
        path = str(field_of(request, "tensor"))
        tensor = read_npy(path)
        if self.input_shape is not None and list(tensor.shape) != list(self.input_shape):
            raise EngineError(f"input tensor {path} has shape {shape_text(tensor.shape)} but the "
                              f"model was loaded for the spec's {shape_text(self.input_shape)}")
        return tensor

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Timing as in src/run/worker.cpp: the first inference alone (`first_ns`), `warmup`
        untimed runs, then `repeat` runs each timed on its own. Only Session.run() is inside the
        clock; binding the input and reading the output are not."""
        if self.session is None:
            raise EngineError("run requested before a successful load")
        session = self.session
        tensor = self.read_bound_tensor(request)
        session.set_input(tensor)
        result = {"event": "result", "image": field_of(request, "image")}
        # The first run's output is kept (outside the clock) and compared with the last one, so
        # an engine that is not deterministic on one input shows up.
        first_output = None
        runs = 0

        def after_run() -> None:
            nonlocal first_output, runs
            runs += 1
            if runs == 1:
                first_output = np.array(session.output(), dtype=np.float32, copy=True)

        clock = time.perf_counter_ns
        if request.get("first", False):
            start = clock()
            session.run()
            result["first_ns"] = clock() - start
            after_run()
        for _ in range(count_of(request, "warmup", 0)):
            session.run()
            after_run()
        samples = []
        for _ in range(count_of(request, "repeat", 1)):
            start = clock()
            session.run()
            samples.append(clock() - start)
            after_run()
        if runs == 0:
            session.run()
            after_run()
        output = np.asarray(session.output(), dtype=np.float32).ravel()
        if runs > 1:
            result["repeat_max_abs_diff"] = max_abs_difference(first_output, output)
        result["samples_ns"] = samples
        result["output"] = encode_floats(output)
        return result


    def capture(self, request: dict[str, Any]) -> dict[str, Any]:
        """As src/run/worker.cpp: binds the tensor, runs Session.capture() once (untimed) and
        writes every tensor as DIR/NNNN.npy (float64, C order) plus DIR/index.json."""
        if self.session is None:
            raise EngineError("capture requested before a successful load")
        capture = getattr(self.session, "capture", None)
        if capture is None:
            raise EngineError("this engine cannot capture intermediate tensors")
        tensor = self.read_bound_tensor(request)
        out_dir = Path(str(field_of(request, "out_dir")))
        self.session.set_input(tensor)
        tensors = capture()
        mode = self.session.capture_mode()
        out_dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, t in enumerate(tensors):
            shape = [int(d) for d in t.shape]
            values = np.asarray(t.values, dtype="<f8")
            if values.size != int(np.prod(shape, dtype=np.int64)):
                raise EngineError(f"captured tensor '{t.name}' has shape {shape} but "
                                  f"{values.size} values")
            file = f"{i:04d}.npy"
            np.save(out_dir / file, np.ascontiguousarray(values.reshape(shape)),
                    allow_pickle=False)
            entries.append({"index": i, "name": t.name, "op": t.op, "shape": shape,
                            "file": file})
        index = out_dir / "index.json"
        index.write_text(json.dumps({"mode": mode, "tensors": entries}, indent=1) + "\n")
        return {"event": "captured", "count": len(entries), "index": str(index), "mode": mode}


def field_of(request: dict[str, Any], name: str) -> Any:
    if name not in request:
        raise EngineError(f"{request.get('op', '')} request has no '{name}'")
    return request[name]


def count_of(request: dict[str, Any], name: str, default: int) -> int:
    value = request.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EngineError(f"run request: '{name}' must be a non-negative integer, got {value!r}")
    return value


def error_text(error: BaseException) -> str:
    # A malformed environment's message names the environment and the reason: complete as it is.
    if isinstance(error, (EngineError, EnvironmentStringError)):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def die_with_parent() -> None:
    """A worker must not outlive the campaign that started it (a killed deltann would otherwise
    leave a hung engine behind): ask the kernel to kill it when its parent dies (Linux only)."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def protocol_channel() -> TextIO:
    """A private copy of standard output for the replies. File descriptor 1 itself is pointed at
    standard error, so that anything an engine's native library or Python code prints ends up in
    the log the campaign keeps instead of corrupting the protocol."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", encoding="ascii", newline="\n")
    os.dup2(2, 1)
    return channel


def send(channel: TextIO, message: dict[str, Any]) -> None:
    # ensure_ascii keeps the line valid whatever bytes an engine put in a message.
    channel.write(json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n")
    channel.flush()


def serve(engine: Any, channel: TextIO, requests: Iterable[bytes]) -> None:
    """Answers `requests` (an iterator of byte lines) until `quit` or end of input."""
    send(channel, {"event": "ready", "protocol": PROTOCOL_VERSION})
    server = Server(engine)
    for raw in requests:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request must be a JSON object")
        except ValueError as e:
            send(channel, {"event": "error", "stage": "protocol",
                           "message": f"malformed request: {e}"})
            continue
        try:
            reply = server.handle(request)
        except Exception as e:  # noqa: BLE001  (every engine failure is a reply, never an exit)
            op = request.get("op", "")
            reply = {"event": "error", "stage": op if isinstance(op, str) else "",
                     "message": error_text(e)}
        if reply is None:
            break
        send(channel, reply)


def worker_main(argv: list[str], make_engine: Callable[[], Any]) -> int:
    """The body of a Python `deltann-worker-<framework>`: `--describe` prints the engine's
    description, `--serve` answers requests on standard input. Returns the exit code."""
    mode = argv[1] if len(argv) > 1 else ""
    if mode not in ("--describe", "--serve"):
        program = argv[0] if argv else "worker"
        print(f"usage: {program} --describe | --serve\n"
              "A deltann worker: runs one engine and speaks the worker protocol on stdin/stdout.",
              file=sys.stderr)
        return 2
    die_with_parent()
    channel = protocol_channel()
    try:
        engine = make_engine()
        if mode == "--describe":
            channel.write(json.dumps(engine.describe()) + "\n")
            channel.flush()
            return 0
    except Exception as e:  # noqa: BLE001  (reported like the C++ worker: message, exit 1)
        print(f"worker: {error_text(e)}", file=sys.stderr)
        return 1
    try:
        serve(engine, channel, iter(sys.stdin.buffer.readline, b""))
    except BrokenPipeError:
        # The campaign went away; nobody is left to tell.
        return 1
    return 0
