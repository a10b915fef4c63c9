"""Helpers shared by deltann's pytest suites (tests/integration and tests/e2e): finding inputs
named by environment variables, running the `deltann` binary, reading its campaign database
(schema in docs/STORAGE.md) and making small test images.

Each suite's conftest.py imports from here the fixtures it shares with the other suite (so that
pytest finds them) and defines its own. This folder must be on PYTHONPATH: ctest
(tests/CMakeLists.txt) puts it there; by hand, add tests/pylib to PYTHONPATH.
"""
import hashlib
import json
import os
import sqlite3
import subprocess
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
    """[(relative image path, label)] of a `path label  # comment` list file."""
    entries = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            image, label = line.rsplit(None, 1)
            entries.append((image, int(label)))
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
