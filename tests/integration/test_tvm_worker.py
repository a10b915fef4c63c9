"""deltann-worker-tvm driven directly over the worker protocol (docs/PROTOCOL.md): tiny_classifier
compiled with TVM's Python API (Relax, llvm) and exported as a shared library gives ONNX Runtime's
output; --describe lists the device and knobs; a corrupt library is an error reply, not a crash.

Skipped when the worker was not built (TVM missing at configure time) or tvm is not importable.
By hand: DELTANN_BUILD_DIR=$PWD/build/tvm DELTANN_SOURCE_DIR=$PWD PYTHONPATH=python:tests/pylib \
.deps/venv/bin/python -m pytest tests/integration/test_tvm_worker.py
"""
import json

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, describe_worker, onnxruntime_output, output_of,
                             worker_path)

ATOL = 1e-4
RTOL = 1e-4
ENV = "tvm:opt=3,device=cpu,threads=1"


@pytest.fixture(scope="module")
def worker():
    return worker_path("tvm", "TVM not found at configure time")


@pytest.fixture(scope="module")
def tiny_library(models, tmp_path_factory):
    """tiny_classifier.onnx compiled by TVM (default Relax pipeline, llvm) into a shared library."""
    tvm = pytest.importorskip("tvm", reason="compiling the test model needs tvm's Python API")
    onnx = pytest.importorskip("onnx")
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(onnx.load(str(models.tiny)))
    executable = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    path = tmp_path_factory.mktemp("tvm") / "tiny_classifier.so"
    executable.export_library(str(path))
    return path


def tiny_spec(models):
    return json.loads(models.tiny.with_suffix(".spec.json").read_text())


def test_describe(worker):
    info = describe_worker(worker)
    assert info["name"] == "tvm"
    assert info["version"]
    assert "cpu" in info["devices"]
    knobs = {k["name"]: k for k in info["knobs"]}
    assert {"opt", "device", "threads"} <= set(knobs)
    assert knobs["threads"]["values"] == []
    assert "cpu" in knobs["device"]["values"]
    assert knobs["opt"]["default"] in knobs["opt"]["values"]


def test_output_matches_onnxruntime(worker, models, tiny_library, tmp_path):
    pytest.importorskip("onnxruntime")
    spec = tiny_spec(models)
    x = np.random.default_rng(7).uniform(0, 255, spec["input"]["shape"]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)

    with WorkerClient(worker) as w:
        loaded = w.load(tiny_library, ENV, spec)
        assert loaded["event"] == "loaded", loaded
        assert loaded["load_ns"] > 0 and loaded["engine_version"]
        result = w.run(tmp_path / "x.npy", first=True, warmup=1, repeat=3)
        assert result["event"] == "result", result
        assert result["first_ns"] > 0 and len(result["samples_ns"]) == 3

    got = output_of(result)
    want = onnxruntime_output(models.tiny, x)
    assert got.shape == want.shape == (spec["output"]["classes"],)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


def test_wrong_input_shape_is_a_load_error(worker, models, tiny_library):
    spec = tiny_spec(models)
    spec["input"].update(shape=[1, 3, 16, 16], resize=16, crop=16)
    with WorkerClient(worker) as w:
        reply = w.load(tiny_library, ENV, spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        # The spec's shape, and the compiled one as TVM's own check names it.
        assert "[1,3,16,16]" in reply["message"], reply
        assert "R.Tensor((1, 3, 8, 8)" in reply["message"], reply


def test_corrupt_library_is_an_error_reply(worker, models, tmp_path):
    bad = tmp_path / "corrupt.so"
    bad.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    missing = tmp_path / "missing.so"
    with WorkerClient(worker) as w:
        for artifact in (bad, missing):
            reply = w.load(artifact, ENV, tiny_spec(models))
            assert reply["event"] == "error" and reply["stage"] == "load", reply
            assert str(artifact) in reply["message"], reply
        # Still usable: a run without a model is an error reply too.
        reply = w.run(tmp_path / "none.npy", first=True, warmup=0, repeat=1, image="x")
        assert reply["event"] == "error", reply
