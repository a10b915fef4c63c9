"""Every engine worker against the worker protocol (docs/PROTOCOL.md), one test body per check run
for each entry of ENGINES (docs/PROTOCOL.md, "Conformance suite"):

- `--describe` prints one JSON object of the documented schema (fields, types, knobs), with the
  engine's name, formats, knobs and a version of the engine's form; without a mode the worker
  prints its usage and exits 2;
- `--serve` starts with the ready event of protocol 1; `quit`, or the end of its input, ends it
  with exit code 0 and nothing more on its output;
- a request that is not a JSON object, or an unknown op, is an error at stage `protocol`;
- capture and run before any load are errors, and the worker goes on;
- a missing file, random bytes, an empty file and a truncated model are `load` errors naming the
  path; none is a crash, and none leaves a model behind;
- `loaded` and `result` replies have the fields and types the protocol lists, for every
  combination of first/warmup/repeat the campaign sends; a tensor of another shape than the
  spec's is a `run` error naming both shapes;
- on tiny fixed-seed models, the output agrees with the float64 reference engine's on the same
  model (its ONNX source or twin) within the engine's tolerance.

Adding an engine means adding one Engine to ENGINES (and, if its artifacts are made in a new way,
one make_<kind> method to Models). A worker that was not built is skipped with the reason; so is
a check whose tools (TVM's compiler, onnx2torch, the TensorFlow venv, the reference worker) are
missing.
Engine-specific behaviour (knob semantics, engine messages, capture) stays in test_<engine>_*.py.
By hand: see tests/integration/conftest.py.
"""
import base64
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, describe_worker, env_path, onnxruntime_output,
                             output_of, worker_path)


@dataclass(frozen=True)
class Engine:
    """One worker and what the suite expects of it."""
    name: str  # the framework: the worker is deltann-worker-<name>
    why_missing: str  # what usually leaves it unbuilt, for the skip
    env: str  # the canonical environment every check loads with
    formats: list  # --describe's formats
    knobs: dict  # knob name -> (its values as --describe lists them (None: any), its default)
    version: str  # regular expression --describe's version matches in full
    artifacts: str  # how its models are made (Models.make_<kind>): onnx, tvm, torchscript, tflite
    # Bound on |output - oracle| as a fraction of the oracle's largest |output|. None: the
    # engine reads no model file, so load errors and agreement do not apply.
    tolerance: float = None
    folder: str = "DELTANN_BUILD_DIR"  # the variable naming the folder the worker is in

    def worker(self):
        if self.folder == "DELTANN_BUILD_DIR":
            return worker_path(self.name, self.why_missing)
        path = env_path(self.folder, f"folder of deltann-worker-{self.name}") / \
            f"deltann-worker-{self.name}"
        if not path.is_file():
            pytest.skip(f"{path} was not built ({self.why_missing})")
        return path


# Float32 engines against the float64 reference: the difference is the engine's own rounding,
# measured at most 7.6e-7 of the largest |output| on these models (Arm NN on prob1001; 2.3e-7 or
# less for the others, docs/PROTOCOL.md). 1e-4 leaves room for other summation orders and still
# catches a wrong kernel, whose error is of the order of the output itself.
FLOAT32 = 1e-4
THREADS = ([], "1")  # a knob whose values are any positive integer, 1 by default
BATCH = ([], "1")  # images per engine call: any positive integer, 1 by default

ENGINES = [
    Engine(name="ort", why_missing="ONNX Runtime not found at configure time",
           env="ort:opt=all,device=cpu,threads=1", formats=["onnx"],
           knobs={"opt": (["disable", "basic", "extended", "all"], "all"),
                  "device": (["cpu"], "cpu"), "threads": THREADS,
                  "disable": (None, "none"),  # every optimiser's name: ENVIRONMENTS.md
                  "batch": BATCH},
           version=r"\d+\.\d+\.\d+", artifacts="onnx", tolerance=FLOAT32),
    Engine(name="opencv", why_missing="OpenCV's dnn module or libonnx-dev not found at "
                                      "configure time",
           env="opencv:opt=on,device=cpu,threads=1", formats=["onnx"],
           knobs={"opt": (["off", "on"], "on"),
                  "device": (["cpu", "opencl", "opencl_fp16"], "cpu"),
                  "threads": THREADS, "batch": BATCH,
                  "isa": (["native", "avx2", "avx", "sse4_2"], "native")},
           version=r"\d+\.\d+\.\d+", artifacts="onnx", tolerance=FLOAT32),
    Engine(name="openvino", why_missing="the openvino wheel was not found at configure time",
           env="openvino:opt=default,device=cpu,precision=f32,threads=1,hint=latency",
           formats=["onnx", "tflite"],
           knobs={"opt": (["default"], "default"), "device": (["cpu", "gpu", "npu"], "cpu"),
                  "precision": (["f32", "bf16", "f16"], "f32"), "threads": THREADS,
                  "hint": (["latency", "throughput"], "latency"), "batch": BATCH},
           version=r"\d+\.\d+\.\d+", artifacts="onnx", tolerance=FLOAT32),
    # The tiny ONNX model built by the project's build tool (build_tvm.py) at opt=3, the level
    # conftest.py's tiny_tvm is built at.
    Engine(name="tvm", why_missing="TVM not found at configure time",
           env="tvm:opt=3,device=cpu,threads=1", formats=["tvm-so"],
           knobs={"opt": (["0", "1", "2", "3", "4"], "3"), "device": (["cpu"], "cpu"),
                  "threads": THREADS},
           version=r"\d+\.\d+\.\d+.*", artifacts="tvm", tolerance=FLOAT32),
    # The tiny ONNX model converted by the project's onnx>torchscript step (convert.py).
    Engine(name="libtorch", why_missing="LibTorch not found at configure time",
           env="libtorch:opt=freeze,device=cpu,threads=1", formats=["torchscript"],
           knobs={"opt": (["none", "freeze", "optimize_for_inference"], "none"),
                  "device": (["cpu", "cuda"], "cpu"), "threads": THREADS,
                  "isa": (["native", "avx512", "avx2", "baseline"], "native")},
           version=r"\d+\.\d+\.\d+.*", artifacts="torchscript", tolerance=FLOAT32),
    # LiteRT, a Python worker: the TFLite models of make_tflite_test_models.py, against the
    # reference on their tf2onnx twins.
    Engine(name="tflite", why_missing="no TensorFlow venv with ai-edge-litert at configure time; "
                                      "see docs/TFLITE.md",
           env="tflite:opt=xnnpack,device=cpu,threads=1", formats=["tflite"],
           knobs={"opt": (["none", "xnnpack"], "xnnpack"), "device": (["cpu"], "cpu"),
                  "threads": THREADS},
           version=r"\d+\.\d+\.\d+.*", artifacts="tflite", tolerance=FLOAT32),
    # Debian's Arm NN 22 (libarmnn22) on its CpuRef backend, single-threaded.
    Engine(name="armnn", why_missing="Arm NN not found at configure time",
           env="armnn:opt=default,device=cpu,precision=fp32,threads=1", formats=["tflite"],
           knobs={"opt": (["default"], "default"), "device": (["cpu"], "cpu"),
                  "precision": (["fp32", "fp16"], "fp32"), "threads": (["1"], "1")},
           version=r"22\.\d+\.\d+", artifacts="tflite", tolerance=FLOAT32),
    # The oracle itself, against ONNX Runtime's Python API (float32: the bound is ONNX Runtime's
    # rounding, as for the engines above). Its version counts the operators it implements.
    Engine(name="reference", why_missing="libonnx-dev's ONNX CMake package was not found at "
                                         "configure time",
           env="reference:opt=none,device=cpu,threads=1", formats=["onnx"],
           knobs={"opt": (["none"], "none"), "device": (["cpu"], "cpu"),
                  "threads": (["1"], "1")},
           version=r"deltann float64 ([4-9]\d|\d{3,}) ops", artifacts="onnx", tolerance=FLOAT32),
    # The test-only engine (src/backends/testing) ignores its artifact, so it has no load errors
    # and no numbers to compare; it speaks the protocol through the same worker loop.
    Engine(name="testing", why_missing="build the deltann-worker-testing target",
           env="testing:opt=none,device=cpu,threads=1,fault=none,at=run,after=2",
           formats=["any"],
           knobs={"opt": (["none"], "none"), "device": (["cpu"], "cpu"), "threads": THREADS,
                  "fault": (["none", "segv", "abort", "hang", "exit", "error"], "none"),
                  "at": (["load", "first", "run"], "run"), "after": ([], "2"),
                  "batch": BATCH},
           version=r"1", artifacts="onnx", folder="DELTANN_TEST_WORKERS"),
]
REFERENCE = next(e for e in ENGINES if e.name == "reference")


def each_engine(function):
    return pytest.mark.parametrize("engine", ENGINES, ids=[e.name for e in ENGINES])(function)


def reads_models(engine):
    if engine.tolerance is None:
        pytest.skip(f"{engine.name} reads no model file: no load to fail, no output to compare")


# --- the models each engine runs --------------------------------------------------------------

@dataclass
class Subject:
    """One tiny model as an engine runs it, and the ONNX model the oracle runs in its place."""
    name: str
    artifact: Path
    spec: dict
    oracle_model: Path
    oracle_spec: dict = field(default=None)

    def __post_init__(self):
        if self.oracle_spec is None:
            self.oracle_spec = self.spec

    def input(self, seed):
        """A fixed-seed input of the spec's shape, in the range its preprocessing gives pixels
        (these specs subtract no mean): 0..255 times the spec's scale."""
        shape = self.spec["input"]["shape"]
        x = np.random.default_rng(seed).uniform(0, 255, shape) * self.spec["input"]["scale"]
        return x.astype(np.float32)


def spec_of(model):
    return json.loads(Path(model).with_suffix(".spec.json").read_text())


class Models:
    """The tiny models of each kind of artifact, made the first time a test asks for them."""

    def __init__(self, request):
        self.request = request
        self.made = {}

    def get(self, kind):
        if kind not in self.made:
            self.made[kind] = getattr(self, f"make_{kind}")()
        return self.made[kind]

    def onnx_sources(self):
        generated = self.request.getfixturevalue("models")
        return [generated.tiny, generated.label_flip]

    def make_onnx(self):
        return [Subject(m.stem, m, spec_of(m), m) for m in self.onnx_sources()]

    # TVM and LibTorch run the tiny model only: their artifacts take a build or a conversion, and
    # they are shared with the capture suite (conftest.py's tiny_tvm, tiny_torchscript).
    def make_tvm(self):
        generated = self.request.getfixturevalue("models")
        library = self.request.getfixturevalue("tiny_tvm")
        return [Subject("tiny_classifier", library, spec_of(generated.tiny), generated.tiny)]

    def make_torchscript(self):
        generated = self.request.getfixturevalue("models")
        artifact, spec = self.request.getfixturevalue("tiny_torchscript")
        return [Subject("tiny_classifier", artifact, spec, generated.tiny, spec_of(generated.tiny))]

    def make_tflite(self):
        made = self.request.getfixturevalue("tflite_models")
        subjects = []
        for name in ("tiny", "prob1001"):
            spec = made.spec(name)
            # The tf2onnx twin names its tensors by the TFLite tensor names.
            twin = json.loads(json.dumps(spec))
            twin["input"]["name"] = made.manifest[name]["onnx"]["input"]
            twin["output"]["name"] = made.manifest[name]["onnx"]["output"]
            subjects.append(Subject(name, made.path(name), spec, made.path(name, ".onnx"), twin))
        return subjects


@pytest.fixture(scope="module")
def conformance_models(request):
    return Models(request)


@pytest.fixture
def subjects(engine, conformance_models):
    return conformance_models.get(engine.artifacts)


# --- describe ---------------------------------------------------------------------------------

DESCRIBE_FIELDS = {"name": str, "version": str, "description": str, "devices": list,
                   "formats": list, "knobs": list}
KNOB_FIELDS = {"name": str, "values": list, "default": str, "help": str}
KNOB_OPTIONAL = {"subset": bool, "omit_default": bool, "unavailable": dict, "integer": bool,
                 "environment": dict}


def check_knob(knob):
    for name, kind in KNOB_FIELDS.items():
        assert isinstance(knob.get(name), kind), (name, knob)
    for name, kind in KNOB_OPTIONAL.items():
        assert name not in knob or isinstance(knob[name], kind), (name, knob)
    assert set(knob) <= set(KNOB_FIELDS) | set(KNOB_OPTIONAL), knob
    values = knob["values"]
    assert all(isinstance(v, str) and v for v in values), knob
    if not values:  # a positive integer
        assert knob["default"].isdigit() and int(knob["default"]) >= 1, knob
    elif knob.get("subset"):  # a '+'-joined set of values, or none
        assert knob["default"] == "none" or set(knob["default"].split("+")) <= set(values), knob
    else:
        assert knob["default"] in values, knob
    for value, reason in knob.get("unavailable", {}).items():
        assert value in values and value != knob["default"], knob
        assert isinstance(reason, str) and reason, knob
    # `environment`: per value, the NAME=value entries the worker must start with.
    for value, entries in knob.get("environment", {}).items():
        assert value in values, knob
        assert entries and all(isinstance(e, str) and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", e)
                               for e in entries), knob


def check_each(each, knobs):
    """`each`: {knob: {by: other knob, members: {value of `by`: [values of knob]}}}."""
    for name, table in each.items():
        assert set(table) == {"by", "members"}, table
        assert name in knobs and table["by"] in knobs, (name, table)
        for value, members in table["members"].items():
            assert value in knobs[table["by"]]["values"], (name, value)
            assert set(members) <= set(knobs[name]["values"]), (name, value)


@each_engine
def test_describe_follows_the_schema(engine):
    proc = subprocess.run([str(engine.worker()), "--describe"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1, "--describe prints one line"
    info = json.loads(proc.stdout)
    for name, kind in DESCRIBE_FIELDS.items():
        assert isinstance(info.get(name), kind), (name, info)
    assert set(info) <= set(DESCRIBE_FIELDS) | {"each"}, sorted(info)
    assert info["name"] == engine.name and info["description"]
    assert re.fullmatch(engine.version, info["version"]), info["version"]
    assert info["formats"] == engine.formats
    knobs = {k["name"]: k for k in info["knobs"]}
    assert len(knobs) == len(info["knobs"]), "a knob is listed twice"
    assert list(knobs) == list(engine.knobs), "knobs and their order"
    for name, knob in knobs.items():
        check_knob(knob)
        values, default = engine.knobs[name]
        if values is not None:
            assert knob["values"] == values, (name, knob["values"])
        assert knob["default"] == default, (name, knob["default"])
    # devices: those available here, each one the device knob offers; the CPU always.
    assert "cpu" in info["devices"], info["devices"]
    assert set(info["devices"]) <= set(knobs["device"]["values"]), info["devices"]
    check_each(info.get("each", {}), knobs)


@each_engine
def test_without_a_mode_prints_usage(engine):
    proc = subprocess.run([str(engine.worker())], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert "--describe | --serve" in proc.stderr, proc.stderr
    assert proc.stdout == ""


# --- serving: start, stop, malformed requests ---------------------------------------------------

def serve(worker):
    return subprocess.Popen([str(worker), "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@each_engine
@pytest.mark.parametrize("how", ["quit", "end of input"])
def test_ready_then_stop_exits_zero(engine, how):
    proc = serve(engine.worker())
    try:
        stdout, stderr = proc.communicate('{"op":"quit"}\n' if how == "quit" else "", timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert [json.loads(line) for line in stdout.splitlines()] == \
        [{"event": "ready", "protocol": 1}], stdout


def check_error(reply, stage, *words):
    assert set(reply) == {"event", "stage", "message"}, reply
    assert reply["event"] == "error" and reply["stage"] == stage, reply
    assert isinstance(reply["message"], str) and reply["message"], reply
    for word in words:
        assert word in reply["message"], (word, reply)


@each_engine
def test_malformed_requests_are_protocol_errors(engine):
    with WorkerClient(engine.worker()) as w:
        for line in ("not json", "[1, 2]", "42", '"load"', '{"op": 5}', '{"op": "dance"}', "{}"):
            check_error(w.request(line), "protocol")
        check_error(w.request({"op": "load", "env": engine.env, "spec": {}}), "load", "artifact")


@each_engine
def test_capture_and_run_before_load_are_errors(engine, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    with WorkerClient(engine.worker()) as w:
        reply = w.request({"op": "capture", "tensor": str(tmp_path / "x.npy"),
                           "out_dir": str(tmp_path / "capture")})
        check_error(reply, "capture", "before a successful load")
        check_error(w.run(tmp_path / "x.npy"), "run", "before a successful load")
    assert not (tmp_path / "capture").exists()


# --- load errors --------------------------------------------------------------------------------

def not_models(artifact, folder):
    """{what: path} of files that are not a model, with the artifact's suffix."""
    data = Path(artifact).read_bytes()
    suffix = Path(artifact).suffix
    contents = {
        "random bytes": np.random.default_rng(3).integers(0, 256, 4096, np.uint8).tobytes(),
        "empty": b"",
        "truncated": data[: len(data) // 2],
    }
    paths = {"missing": folder / f"missing{suffix}"}
    for what, content in contents.items():
        path = folder / f"{what.replace(' ', '_')}{suffix}"
        path.write_bytes(content)
        paths[what] = path
    return paths


@each_engine
def test_files_that_are_not_models_are_load_errors(engine, subjects, tmp_path):
    reads_models(engine)
    subject = subjects[0]
    np.save(tmp_path / "x.npy", subject.input(seed=1))
    with WorkerClient(engine.worker()) as w:
        for what, path in not_models(subject.artifact, tmp_path).items():
            check_error(w.load(path, engine.env, subject.spec), "load", str(path))
            assert w.proc.poll() is None, what
            # A failed load leaves no model behind.
            check_error(w.run(tmp_path / "x.npy"), "run", "before a successful load")
        assert w.load(subject.artifact, engine.env, subject.spec)["event"] == "loaded"
        assert w.run(tmp_path / "x.npy")["event"] == "result"


# --- loaded and result replies ------------------------------------------------------------------

def check_loaded(reply, version):
    # `hardware`: what the engine reports it runs on (names to strings), where it reports it.
    assert set(reply) - {"hardware"} == {"event", "load_ns", "engine_version"}, reply
    hardware = reply.get("hardware", {})
    assert isinstance(hardware, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in hardware.items()), reply
    assert reply["event"] == "loaded"
    assert isinstance(reply["load_ns"], int) and reply["load_ns"] >= 0, reply
    assert reply["engine_version"] == version, reply


def check_result(reply, image, first, runs, repeat, outputs):
    """A result reply for one run request (runs: how many times the model ran)."""
    expected = {"event", "image", "samples_ns", "output"}
    expected |= {"first_ns"} if first else set()
    expected |= {"repeat_max_abs_diff"} if runs > 1 else set()
    assert set(reply) == expected, reply
    assert reply["event"] == "result" and reply["image"] == image, reply
    if first:
        assert isinstance(reply["first_ns"], int) and reply["first_ns"] >= 0, reply
    samples = reply["samples_ns"]
    assert len(samples) == repeat, reply
    assert all(isinstance(s, int) and s >= 0 for s in samples), reply
    if runs > 1:
        # The same input gives the same output on every run (one thread, no randomness).
        assert isinstance(reply["repeat_max_abs_diff"], float), reply
        assert reply["repeat_max_abs_diff"] == 0.0, reply
    raw = base64.b64decode(reply["output"], validate=True)
    assert len(raw) == 4 * outputs, (len(raw), outputs)


@each_engine
def test_replies_have_the_protocol_fields(engine, subjects, tmp_path):
    version = describe_worker(engine.worker())["version"]
    subject = subjects[0]
    np.save(tmp_path / "x.npy", subject.input(seed=2))
    outputs = subject.spec["output"]["classes"] + subject.spec["output"]["label_offset"]
    with WorkerClient(engine.worker()) as w:
        check_loaded(w.load(subject.artifact, engine.env, subject.spec), version)
        # (first, warmup, repeat): the campaign's usual request, a first image alone, one
        # untimed run only (no repeats: nothing timed, nothing to compare), warm-up only.
        for first, warmup, repeat in ((True, 1, 3), (True, 0, 0), (False, 0, 0), (False, 2, 0),
                                      (False, 0, 2)):
            runs = max(1, int(first) + warmup + repeat)
            reply = w.run(tmp_path / "x.npy", first=first, warmup=warmup, repeat=repeat,
                          image=f"image {first} {warmup} {repeat}")
            check_result(reply, f"image {first} {warmup} {repeat}", first, runs, repeat, outputs)
        # Loading again replaces the model.
        check_loaded(w.load(subject.artifact, engine.env, subject.spec), version)
        check_result(w.run(tmp_path / "x.npy", image="again"), "again", True, 5, 3, outputs)


@each_engine
def test_tensor_of_another_shape_is_a_run_error(engine, subjects, tmp_path):
    subject = subjects[0]
    shape = subject.spec["input"]["shape"]
    other = [d + 1 if i == 2 else d for i, d in enumerate(shape)]
    np.save(tmp_path / "other.npy", np.zeros(other, np.float32))
    np.save(tmp_path / "x.npy", subject.input(seed=3))
    text = lambda s: "[" + ",".join(map(str, s)) + "]"  # noqa: E731  (how messages name shapes)
    with WorkerClient(engine.worker()) as w:
        assert w.load(subject.artifact, engine.env, subject.spec)["event"] == "loaded"
        check_error(w.run(tmp_path / "other.npy"), "run", text(other), text(shape))
        assert w.run(tmp_path / "x.npy")["event"] == "result"


# --- agreement with the reference engine ----------------------------------------------------------

def oracle_output(engine, subject, x, path):
    """The reference engine's output on the subject's ONNX model; for the reference engine
    itself, ONNX Runtime's Python API's (an implementation independent of deltann)."""
    if engine is REFERENCE:
        return onnxruntime_output(subject.oracle_model, x,
                                  input_name=subject.oracle_spec["input"]["name"])
    with WorkerClient(REFERENCE.worker()) as w:
        loaded = w.load(subject.oracle_model, REFERENCE.env, subject.oracle_spec)
        assert loaded["event"] == "loaded", loaded
        return output_of(w.run(path, warmup=0, repeat=1))


@each_engine
def test_output_agrees_with_the_reference(engine, subjects, tmp_path):
    reads_models(engine)
    for n, subject in enumerate(subjects):
        x = subject.input(seed=10 + n)
        np.save(tmp_path / f"{subject.name}.npy", x)
        with WorkerClient(engine.worker()) as w:
            loaded = w.load(subject.artifact, engine.env, subject.spec)
            assert loaded["event"] == "loaded", (subject.name, loaded)
            got = output_of(w.run(tmp_path / f"{subject.name}.npy"))
        want = oracle_output(engine, subject, x, tmp_path / f"{subject.name}.npy")
        assert got.shape == want.shape, (subject.name, got.shape, want.shape)
        scale = float(np.max(np.abs(want)))
        worst = float(np.max(np.abs(got.astype(np.float64) - want)))
        print(f"{engine.name} on {subject.name}: max |d| {worst:.3g} = {worst / scale:.3g} of "
              f"the largest |output| {scale:.3g}")
        assert worst <= engine.tolerance * scale, (subject.name, worst, scale)
