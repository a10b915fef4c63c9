"""Fixtures for deltann's integration tests.

ctest (tests/CMakeLists.txt) sets the environment; to run by hand:

    DELTANN_BIN=$PWD/build/x/deltann DELTANN_TEST_WORKERS=$PWD/build/x/test-workers \
    DELTANN_SOURCE_DIR=$PWD PYTHONPATH=python:tests/pylib \
    .deps/venv/bin/python -m pytest tests/integration

The helpers and the fixtures shared with tests/e2e live in tests/pylib/deltann_testlib.py.

A test whose input is missing (variable unset, binary not built) is skipped with the reason.
"""
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from deltann_testlib import Deltann, env_path
from deltann_testlib import deltann_bin  # noqa: F401  (a fixture: pytest finds it here)


@pytest.fixture(scope="session")
def source_dir():
    return env_path("DELTANN_SOURCE_DIR", "the deltann source tree")


@pytest.fixture(scope="session")
def test_workers():
    """Folder holding only deltann-worker-testing, the engine that fails on demand."""
    folder = env_path("DELTANN_TEST_WORKERS", "folder of deltann-worker-testing")
    if not (folder / "deltann-worker-testing").is_file():
        pytest.skip(f"{folder} has no deltann-worker-testing (build that target)")
    return folder


@dataclass
class GeneratedModels:
    dir: Path

    @property
    def tiny(self):
        return self.dir / "tiny_classifier.onnx"

    @property
    def label_flip(self):
        return self.dir / "label_flip.onnx"

    @property
    def wrong_shape(self):
        return self.dir / "wrong_shape.onnx"


@pytest.fixture(scope="session")
def models(source_dir, tmp_path_factory):
    """The tiny generated models, made once per session by make_test_models.py."""
    pytest.importorskip("onnx", reason="make_test_models.py needs the onnx package")
    pytest.importorskip("onnxruntime", reason="make_test_models.py needs onnxruntime")
    out = tmp_path_factory.mktemp("models")
    # deltann_testmodels is in tests/pylib, on PYTHONPATH like deltann_testlib.
    proc = subprocess.run([sys.executable, "-m", "deltann_testmodels.make_test_models", "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"make_test_models.py failed:\n{proc.stdout}\n{proc.stderr}"
    return GeneratedModels(out)


@pytest.fixture
def deltann(deltann_bin, tmp_path):
    """Runs deltann with a preprocessing cache private to the test (tmp_path/cache)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    return Deltann(deltann_bin, cache)
