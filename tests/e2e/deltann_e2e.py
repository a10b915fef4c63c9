"""Helpers for deltann's end-to-end tests: running the binary and reading its campaign database
(schema in docs/STORAGE.md). The fixtures that use them live in conftest.py next to this file."""
import hashlib
import os
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RunResult:
    args: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self):
        return (f"command: {' '.join(self.args)}\nexit code: {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")


class Deltann:
    """Runs the deltann binary with the engines next to it and a given preprocessing cache."""

    def __init__(self, binary, cache_dir, demo_dir):
        self.binary = Path(binary)
        self.cache_dir = Path(cache_dir)
        self.demo_dir = Path(demo_dir)

    def run(self, *args, cwd=None, timeout=300, expect_rc=0):
        command = [str(self.binary)] + [str(a) for a in args]
        env = dict(os.environ)
        env.pop("DELTANN_WORKER_DIR", None)
        env["DELTANN_CACHE"] = str(self.cache_dir)
        env["DELTANN_DEMO_DIR"] = str(self.demo_dir)
        start = time.monotonic()
        proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
        result = RunResult(command, proc.returncode, proc.stdout, proc.stderr,
                           time.monotonic() - start)
        if expect_rc is not None:
            assert result.returncode == expect_rc, result.describe()
        return result


# --- reading the campaign database (docs/STORAGE.md) ------------------------------------------

def query(db, sql, params=()):
    with closing(sqlite3.connect(str(db), timeout=30)) as con:
        con.row_factory = sqlite3.Row
        return con.execute(sql, params).fetchall()


def floats(blob):
    return np.frombuffer(blob or b"", dtype="<f4")


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cached_tensor(cache_dir, image_sha256):
    matches = sorted(Path(cache_dir).glob(f"tensors/*/{image_sha256}.npy"))
    assert len(matches) == 1, f"expected one cached tensor for {image_sha256}, found {matches}"
    return np.load(matches[0])


def read_list_file(path):
    """[(relative image path, label)] of a `path label  # comment` list file."""
    entries = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            image, label = line.rsplit(None, 1)
            entries.append((image, int(label)))
    return entries
