"""Helpers shared by deltann's pytest suites (tests/integration and tests/e2e): finding inputs
named by environment variables, running the `deltann` binary, driving an engine worker over the
worker protocol (docs/PROTOCOL.md), reading the campaign database (schema in docs/STORAGE.md),
making small test images, and the tiny TFLite models that the LiteRT and Arm NN suites share.

Each suite's conftest.py imports from here the fixtures it shares with the other suite (so that
pytest finds them) and defines its own. This folder must be on PYTHONPATH: ctest
(tests/CMakeLists.txt) puts it there; by hand, add tests/pylib to PYTHONPATH.
"""
import base64
import hashlib
import json
import os
import queue
import shutil
import sqlite3
import struct
import subprocess
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Every run of the binary gets at most this long unless a suite or test says otherwise, so that
# a deadlock shows up as a failed test rather than a stuck suite.
DEFAULT_TIMEOUT_S = 180


# --- inputs named by the environment ----------------------------------------------------------

def env_path(name, what):
    """The path in environment variable `name`, or a skip naming what is missing."""
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set ({what}); run the suite through ctest or set it by hand")
    path = Path(value)
    if not path.exists():
        pytest.skip(f"{name}={value} does not exist ({what})")
    return path


@pytest.fixture(scope="session")
def deltann_bin():
    return env_path("DELTANN_BIN", "the deltann binary")


# --- running the binary -----------------------------------------------------------------------

@dataclass
class RunResult:
    args: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self):
        """Text for assertion messages: the command and what it printed."""
        return (f"command: {' '.join(self.args)}\nexit code: {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")


class Deltann:
    """Runs the deltann binary with a private preprocessing cache.

    The environment of every run is the test process's own, without DELTANN_WORKER_DIR (so the
    engines next to the binary are used unless a test asks otherwise), plus DELTANN_CACHE and,
    when `demo_dir` is given, DELTANN_DEMO_DIR. `timeout` is how long a run may take when the
    call does not say.
    """

    def __init__(self, binary, cache_dir, demo_dir=None, timeout=DEFAULT_TIMEOUT_S):
        self.binary = Path(binary)
        self.cache_dir = Path(cache_dir)
        self.demo_dir = Path(demo_dir) if demo_dir is not None else None
        self.timeout = timeout

    def environment(self, extra=None):
        env = dict(os.environ)
        env.pop("DELTANN_WORKER_DIR", None)
        env["DELTANN_CACHE"] = str(self.cache_dir)
        if self.demo_dir is not None:
            env["DELTANN_DEMO_DIR"] = str(self.demo_dir)
        env.update(extra or {})
        return env

    def command(self, args):
        return [str(self.binary)] + [str(a) for a in args]

    def run(self, *args, env=None, cwd=None, timeout=None, expect_rc=0):
        """Runs `deltann ARGS...` to completion, for at most `timeout` seconds (None: the
        runner's own). With expect_rc set (the default 0), fails the test when the exit code
        differs; pass expect_rc=None to check it yourself."""
        command = self.command(args)
        start = time.monotonic()
        proc = subprocess.run(command, env=self.environment(env), cwd=cwd, capture_output=True,
                              text=True, timeout=self.timeout if timeout is None else timeout)
        result = RunResult(command, proc.returncode, proc.stdout, proc.stderr,
                           time.monotonic() - start)
        if expect_rc is not None:
            assert result.returncode == expect_rc, result.describe()
        return result

    def start(self, *args, env=None, cwd=None):
        """Starts `deltann ARGS...` in its own process group and returns the Popen; output goes
        to files so that the pipes can never fill up."""
        command = self.command(args)
        log_dir = Path(cwd) if cwd else self.cache_dir
        stdout = open(log_dir / "deltann.stdout", "w")
        stderr = open(log_dir / "deltann.stderr", "w")
        try:
            return subprocess.Popen(command, env=self.environment(env), cwd=cwd, stdout=stdout,
                                    stderr=stderr, start_new_session=True)
        finally:
            stdout.close()
            stderr.close()


# --- engine workers over the worker protocol (docs/PROTOCOL.md) ----------------------------------

# How long a worker may take over one reply before the test fails (rather than hangs).
REPLY_TIMEOUT_S = 120


def worker_path(engine, why_missing):
    """DELTANN_BUILD_DIR/deltann-worker-ENGINE, or a skip saying why there is none: the variable
    is unset, or the worker was not built (`why_missing`: what usually causes that)."""
    build = env_path("DELTANN_BUILD_DIR", f"the build folder holding deltann-worker-{engine}")
    path = build / f"deltann-worker-{engine}"
    if not path.is_file():
        pytest.skip(f"{path} was not built ({why_missing})")
    return path


def describe_worker(binary):
    """What `WORKER --describe` prints, parsed; fails the test when it exits non-zero."""
    proc = subprocess.run([str(binary), "--describe"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def output_of(reply):
    """The float32 output of a `result` reply as a numpy array; fails the test on other replies."""
    assert reply["event"] == "result", reply
    return np.frombuffer(base64.b64decode(reply["output"]), dtype="<f4")


class WorkerClient:
    """One `WORKER --serve` process, driven one request at a time; starting it waits for the
    ready event.

    Replies are read by a thread, so that a hung worker fails the test after `timeout` seconds
    instead of stalling the suite; its standard error is kept for assertion messages. As a
    context manager: leaving the block normally quits the worker and checks that it exits 0,
    leaving it by an exception kills it.
    """

    def __init__(self, binary, timeout=REPLY_TIMEOUT_S, env=None):
        # `env`: `NAME=value` entries on top of this process's environment, as the campaign
        # starts a worker whose knobs ask for them (a knob's `environment` in --describe).
        environment = dict(os.environ)
        environment.update(entry.split("=", 1) for entry in env or [])
        # errors="replace": engine logs may hold bytes that are not UTF-8 (a frontend quoting a
        # corrupt file).
        self.proc = subprocess.Popen([str(binary), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors="replace", env=environment)
        self.timeout = timeout
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True,
                         args=(self.proc.stdout, self.lines.put, True)).start()
        threading.Thread(target=self._pump, daemon=True,
                         args=(self.proc.stderr, self.stderr.append, False)).start()
        try:
            assert self.reply() == {"event": "ready", "protocol": 1}
        except BaseException:
            self.kill()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.kill()

    @staticmethod
    def _pump(stream, sink, mark_end):
        for line in stream:
            sink(line)
        if mark_end:
            sink("")  # the worker closed its output

    def log(self):
        """The end of what the worker wrote to standard error so far."""
        return "".join(self.stderr)[-2000:]

    def reply(self):
        """The next reply, parsed; fails the test when none comes in time or the worker ends."""
        try:
            line = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"no reply within {self.timeout} s; log: {self.log()}")
        assert line, f"worker closed its output (exit {self.proc.wait(timeout=10)}): {self.log()}"
        return json.loads(line)

    def request(self, message):
        """Sends one request (a dict, or a raw line as text) and returns the reply, whatever its
        event."""
        assert self.proc.stdin is not None  # opened with stdin=PIPE
        self.proc.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def load(self, artifact, env, spec):
        return self.request({"op": "load", "artifact": str(artifact), "env": env, "spec": spec})

    def run(self, tensor, first=True, warmup=1, repeat=3, image=None):
        """Runs the loaded model on a .npy tensor; `image` (by default the file's stem) names the
        image in the reply."""
        image = Path(tensor).stem if image is None else image
        return self.request({"op": "run", "image": image, "tensor": str(tensor), "first": first,
                             "warmup": warmup, "repeat": repeat})

    def close(self):
        """Asks the worker to quit and checks that it exits 0."""
        assert self.proc.stdin is not None  # opened with stdin=PIPE
        self.proc.stdin.write('{"op":"quit"}\n')
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=30) == 0, self.log()

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def onnxruntime_output(model, x, input_name="input", threads=1):
    """Output 0 of an ONNX model run by ONNX Runtime's Python API (CPU) on `x`, flattened;
    skips without onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: x})[0].ravel()


# --- the campaign database --------------------------------------------------------------------

def query(db, sql, params=()):
    """Rows of one read-only query, as sqlite3.Row (columns by name)."""
    with closing(sqlite3.connect(str(db), timeout=30)) as con:
        con.row_factory = sqlite3.Row
        return con.execute(sql, params).fetchall()


def variants_by_env(db):
    return {row["env"]: row for row in query(db, "SELECT * FROM variants ORDER BY id")}


def images_by_key(db):
    return {row["key"]: row for row in query(db, "SELECT * FROM images ORDER BY id")}


def results_of(db, variant_id):
    """{image_id: row} of one variant's results."""
    rows = query(db, "SELECT * FROM results WHERE variant_id = ? ORDER BY image_id", (variant_id,))
    return {row["image_id"]: row for row in rows}


def failures_of(db, variant_id):
    return query(db, "SELECT * FROM failures WHERE variant_id = ? ORDER BY id", (variant_id,))


def top_ids(result_row):
    return json.loads(result_row["top_ids"])


def floats(blob):
    """A float32 blob (top_scores, output) as a numpy array; empty for NULL."""
    return np.frombuffer(blob or b"", dtype="<f4")


def int64s(blob):
    """An int64 blob (samples_ns) as a numpy array."""
    return np.frombuffer(blob or b"", dtype="<i8")


def overwrite_result(db, variant_id, image_id, samples_ns=None, output=None):
    """Replaces the timed samples (int64 nanoseconds) and/or the full output (float32; its count of
    NaN/Inf goes to `nonfinite`) of one stored result, so that the analysis of a real campaign can
    be checked on chosen numbers."""
    with closing(sqlite3.connect(str(db), timeout=30)) as con, con:
        if samples_ns is not None:
            con.execute("UPDATE results SET samples_ns = ? WHERE variant_id = ? AND image_id = ?",
                        (np.asarray(samples_ns, dtype="<i8").tobytes(), variant_id, image_id))
        if output is not None:
            output = np.asarray(output, dtype="<f4")
            con.execute("UPDATE results SET output = ?, nonfinite = ? "
                        "WHERE variant_id = ? AND image_id = ?",
                        (output.tobytes(), int(np.count_nonzero(~np.isfinite(output))),
                         variant_id, image_id))


def run_testing_engine_campaign(deltann, model, workers, folder, envs, images):
    """A real campaign of the test-only engine (src/backends/testing) over `images` random 8x8
    images, one timed run each; returns the database. Its outputs and timings are the engine's:
    overwrite_result puts chosen numbers in their place."""
    folder = Path(folder)
    write_random_images(folder / "images", [(8, 8)] * images, seed=5)
    db = folder / "campaign.db"
    args = ["run", "--model", model, "--images", folder / "images", "--db", db,
            "--repeat", 1, "--warmup", 0]
    for env in envs:
        args += ["--env", env]
    deltann.run(*args, env={"DELTANN_WORKER_DIR": str(workers)}, timeout=120)
    return db


def results_checksum(db):
    """Row count and SHA-256 over every column of every results row, in key order."""
    digest = hashlib.sha256()
    rows = query(db, "SELECT variant_id, image_id, top_ids, top_scores, output, samples_ns "
                     "FROM results ORDER BY variant_id, image_id")
    for row in rows:
        for value in row:
            digest.update(repr(value).encode() if not isinstance(value, bytes) else value)
            digest.update(b"|")
    return len(rows), digest.hexdigest()


# --- files, images and tensors ----------------------------------------------------------------

def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_list_file(path):
    """[(relative image path, label or None)] of a `path [label]  # comment` list file."""
    entries: list[tuple[str, int | None]] = []
    for line in Path(path).read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 1:
            entries.append((fields[0], None))
        elif fields:
            entries.append((" ".join(fields[:-1]), int(fields[-1])))
    return entries


def write_random_images(folder, sizes, seed, prefix="img", tints=None):
    """Writes one random RGB PNG per (width, height) in `sizes`, named PREFIX_NN.png so that
    their sorted order is their creation order. `tints`, one (r, g, b) gain in 0..1 per image,
    scales the channels (to steer a classifier towards different labels). Returns the paths."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    paths = []
    for n, (width, height) in enumerate(sizes, start=1):
        pixels = rs.randint(0, 256, size=(height, width, 3), dtype=np.uint8)
        if tints is not None:
            gain = np.asarray(tints[n - 1], dtype=np.float64)
            pixels = np.round(pixels * gain).astype(np.uint8)
        path = folder / f"{prefix}_{n:02d}.png"
        Image.fromarray(pixels, "RGB").save(path)
        paths.append(path)
    return paths


def cached_tensor(cache_dir, image_sha256):
    """The preprocessed tensor deltann cached for an image: DELTANN_CACHE/tensors/*/<sha>.npy.
    Each test has its own cache, so exactly one spec folder holds the image."""
    matches = sorted(Path(cache_dir).glob(f"tensors/*/{image_sha256}.npy"))
    assert len(matches) == 1, f"expected one cached tensor for {image_sha256}, found {matches}"
    return np.load(matches[0])


# --- tiny TFLite models (the LiteRT and Arm NN suites) ----------------------------------------

# What each model of deltann_testmodels/make_tflite_test_models.py outputs.
TFLITE_OUTPUTS = {
    "tiny": {"classes": 5, "label_offset": 0, "kind": "logits"},
    "tiny_quant": {"classes": 5, "label_offset": 0, "kind": "logits"},
    "prob1001": {"classes": 1000, "label_offset": 1, "kind": "probabilities"},
}


@dataclass
class TfliteModels:
    """The models make_tflite_test_models.py wrote to `dir`, with its models.json (`manifest`:
    each model's input and output tensors and the input name of its tf2onnx twin)."""
    dir: Path
    manifest: dict

    def path(self, name, suffix=".tflite"):
        return self.dir / f"{name}{suffix}"

    def spec(self, name):
        """An NHWC spec for a model, naming its input and output by their signature names.
        Pixels are scaled to 0..1, the range the quantised model was calibrated for."""
        io = self.manifest[name]
        shape = io["input"]["shape"]
        return {
            "name": name,
            "input": {"name": io["input"]["signature"], "shape": shape, "layout": "NHWC",
                      "channel_order": "RGB", "resize": shape[1], "crop": shape[1],
                      "interpolation": "bilinear", "scale": 1.0 / 255.0,
                      "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
            "output": dict(TFLITE_OUTPUTS[name], name=io["output"]["signature"]),
        }

    def random_input(self, name, seed):
        """A float32 input of the model's shape, uniform in 0..1."""
        shape = self.manifest[name]["input"]["shape"]
        return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)

    def onnx_output(self, name, x):
        """The model's tf2onnx twin run by ONNX Runtime on `x`, flattened."""
        return onnxruntime_output(self.path(name, ".onnx"), x,
                                  input_name=self.manifest[name]["onnx"]["input"])


@pytest.fixture(scope="session")
def tflite_models(tf_python, source_dir, tmp_path_factory):
    """The tiny TFLite models (and their ONNX twins), made once per session by
    make_tflite_test_models.py under the TensorFlow venv's Python (the `tf_python` fixture of
    tests/integration/conftest.py)."""
    out = tmp_path_factory.mktemp("tflite_models")
    # The TensorFlow venv sees this folder only, none of the main venv's module path.
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent))
    env.pop("PYTHONHOME", None)
    proc = subprocess.run([str(tf_python), "-m", "deltann_testmodels.make_tflite_test_models",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, \
        f"make_tflite_test_models failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return TfliteModels(out, json.loads((out / "models.json").read_text()))


def damaged_tflite_copies(model, folder):
    """{what each tries: path} of broken variants of a valid .tflite file, written to `folder`
    (plus a missing file and the folder itself)."""
    data = Path(model).read_bytes()
    files = {
        "random bytes": np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated": data[: len(data) // 2],
        "empty": b"",
        # A root table offset far past the end: LiteRT does not verify the flatbuffer and reads
        # out of bounds (SIGSEGV in the trial load), so this is the crash path.
        "root offset out of range": struct.pack("<I", 0x7FFFFFF0) + data[4:],
        "every 7th byte inverted": bytes(b ^ 0xFF if i >= 16 and i % 7 == 2 else b
                                         for i, b in enumerate(data)),
    }
    paths = {}
    for n, (what, content) in enumerate(files.items()):
        path = folder / f"damaged_{n}.tflite"
        path.write_bytes(content)
        paths[what] = path
    paths["missing"] = folder / "missing.tflite"
    paths["a folder"] = folder
    return paths


def run_tflite_campaign(deltann_bin, worker, models, name, envs, sizes, work, spec=None):
    """`deltann run` on a copy of TFLite model NAME with its NHWC spec (models.spec's unless
    given) beside it, on random images, with the engines of the worker's folder
    (DELTANN_WORKER_DIR; under ctest that is the binary's own folder anyway). Returns the
    database, the RunResult and the preprocessing cache."""
    work.mkdir(parents=True, exist_ok=True)
    model = work / f"{name}.tflite"
    shutil.copyfile(models.path(name), model)
    (work / f"{name}.spec.json").write_text(json.dumps(spec or models.spec(name)))
    write_random_images(work / "images", sizes, seed=99)
    (work / "cache").mkdir(exist_ok=True)
    deltann = Deltann(deltann_bin, work / "cache")
    db = work / "campaign.db"
    args = ["run", "--model", model, "--images", work / "images", "--db", db, "--repeat", 2,
            "--warmup", 1]
    for env in envs:
        args += ["--env", env]
    run = deltann.run(*args, env={"DELTANN_WORKER_DIR": str(worker.parent)})
    return db, run, deltann.cache_dir


# --- `deltann precision` (tests/integration/test_precision*.py) ---

def photos_and_flipping(demo_folder, flipping, listing):
    """Writes `listing`: the demo photos and the expanded images `flipping` (whose labels the
    reduced precision changes); returns how many. Skips the test where they are missing."""
    expanded = demo_folder / "expanded"
    missing = [name for name in flipping if not (expanded / name).is_file()]
    if missing:
        pytest.skip(f"no {', '.join(missing)} in {expanded} (scripts/setup expands the demo)")
    photos = sorted(p for p in (demo_folder / "images").iterdir() if p.is_file())
    listing.write_text("".join(f"{p}\n" for p in photos + [expanded / n for n in flipping]))
    return len(photos) + len(flipping)


def assert_one_minimal(found, candidates):
    """Every set of the found layers with one fewer was tried and did not restore the labels."""
    for op in found:
        fewer = [i for i in found if i != op]
        tried = [c for c in candidates if c["kept"] == fewer]
        assert tried and not tried[0]["restored"], (op, fewer)
