"""deltann-worker-tvm driven directly over the worker protocol (docs/PROTOCOL.md): a spec whose
input shape differs from the one tiny_classifier was compiled for is a load error naming both, the
compiled one as TVM's own check names it. The protocol itself (describe, bad files, replies,
agreement with the reference engine) is checked for every worker by test_worker_conformance.py.

Skipped when the worker was not built (TVM missing at configure time) or tvm is not importable.
By hand: DELTANN_BUILD_DIR=$PWD/build/tvm DELTANN_SOURCE_DIR=$PWD PYTHONPATH=python:tests/pylib \
.deps/venv/bin/python -m pytest tests/integration/test_tvm_worker.py
"""
import json

import pytest

from deltann_testlib import WorkerClient, worker_path


ENV = "tvm:opt=3,device=cpu,threads=1"  # what conftest.py's tiny_tvm is built at


@pytest.fixture(scope="module")
def worker():
    return worker_path("tvm", "TVM not found at configure time")


def test_wrong_input_shape_is_a_load_error(worker, models, tiny_tvm):
    spec = json.loads(models.tiny.with_suffix(".spec.json").read_text())
    spec["input"].update(shape=[1, 3, 16, 16], resize=16, crop=16)
    with WorkerClient(worker) as w:
        reply = w.load(tiny_tvm, ENV, spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        # The spec's shape, and the compiled one as TVM's own check names it.
        assert "[1,3,16,16]" in reply["message"], reply
        assert "R.Tensor((1, 3, 8, 8)" in reply["message"], reply
