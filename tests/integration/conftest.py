"""Fixtures for deltann's integration tests.

ctest (tests/CMakeLists.txt) sets the environment; to run by hand:

    DELTANN_BIN=$PWD/build/x/deltann DELTANN_TEST_WORKERS=$PWD/build/x/test-workers \
    DELTANN_SOURCE_DIR=$PWD PYTHONPATH=python:tests/pylib \
    .deps/venv/bin/python -m pytest tests/integration

The helpers and the fixtures shared with tests/e2e live in tests/pylib/deltann_testlib.py.

A test whose input is missing (variable unset, binary not built) is skipped with the reason.
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from deltann_testlib import Deltann, env_path
from deltann_testlib import deltann_bin  # noqa: F401  (a fixture: pytest finds it here)
# Imported here, not in each suite, so that the session makes the TFLite models once: a fixture
# imported into several modules is a separate fixture in each.
from deltann_testlib import tflite_models  # noqa: F401


def pytest_configure(config):
    # Tests too slow for the default suite (minutes on two cores): ctest runs them in
    # integration_long, under the label `long` (scripts/test --long).
    config.addinivalue_line("markers", "long: runs only in the long suite")


@pytest.fixture(scope="session")
def source_dir():
    return env_path("DELTANN_SOURCE_DIR", "the deltann source tree")


@pytest.fixture(scope="session")
def demo_folder(source_dir):
    """The demo assets made by scripts/setup (the model and its photos), as an absolute path:
    $DELTANN_DEMO_DIR, else assets/demo of the source tree; a skip saying so when they are
    missing."""
    folder = Path(os.environ.get("DELTANN_DEMO_DIR") or source_dir / "assets" / "demo").resolve()
    if not (folder / "efficientnet-lite0.onnx").is_file() or not (folder / "images.txt").is_file():
        pytest.skip(f"no demo model in {folder} (set DELTANN_DEMO_DIR; scripts/setup makes it)")
    return folder


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


@pytest.fixture(scope="session")
def tf_python(source_dir):
    """The TensorFlow venv's Python, which makes the TFLite test models (deltann_testlib's
    tflite_models): the one LiteRT's launcher runs with where it was generated, else
    .deps/venv-tf's."""
    build = os.environ.get("DELTANN_BUILD_DIR")
    launcher = Path(build) / "deltann-worker-tflite" if build else None
    if launcher is not None and launcher.is_file():
        first = launcher.read_text().splitlines()[0]
        assert first.startswith("#!"), f"{launcher} has no shebang: {first!r}"
        python = Path(first[2:].split()[0])
    else:
        python = source_dir / ".deps" / "venv-tf" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no TensorFlow venv at {python} to make the TFLite test models")
    return python


# The tiny model as TVM and LibTorch run it, made once per session by the project's own tools and
# shared by the suites that need them (a TVM build takes tens of seconds on a small machine).
TINY_TVM_ENV = "tvm:opt=3,device=cpu,threads=1"


@pytest.fixture(scope="session")
def tiny_tvm(models, source_dir, tmp_path_factory):
    """tiny_classifier.onnx built by the project's own build tool at opt=3 (FuseOps + FuseTIR, so
    a capture sees fused kernels): the path of the shared library, for TINY_TVM_ENV."""
    pytest.importorskip("tvm", reason="building the TVM artifact needs tvm's Python API")
    out = tmp_path_factory.mktemp("tvm") / "tiny_classifier.so"
    tool = source_dir / "python" / "deltann_tools" / "build_tvm.py"
    proc = subprocess.run([sys.executable, str(tool), "--model", str(models.tiny), "--spec",
                           str(models.tiny.with_suffix(".spec.json")), "--env",
                           TINY_TVM_ENV + ",disable=none", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def tiny_torchscript(models, source_dir, tmp_path_factory):
    """tiny_classifier.onnx converted by the project's own conversion step (onnx2torch, then
    torch.jit.trace): (artifact, the spec the conversion reports)."""
    pytest.importorskip("onnx2torch", reason="the onnx>torchscript step needs onnx2torch")
    out = tmp_path_factory.mktemp("torchscript") / "tiny_classifier.pt"
    tool = source_dir / "python" / "deltann_tools" / "convert.py"
    proc = subprocess.run([sys.executable, str(tool), "--step", "onnx>torchscript", "--in",
                           str(models.tiny), "--spec", str(models.tiny.with_suffix(".spec.json")),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)["spec"]


@pytest.fixture
def deltann(deltann_bin, tmp_path):
    """Runs deltann with a preprocessing cache private to the test (tmp_path/cache)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    return Deltann(deltann_bin, cache)
