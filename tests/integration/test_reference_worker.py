"""deltann-worker-reference (docs/REFERENCE.md), the float64 ONNX executor, driven over the worker
protocol (docs/PROTOCOL.md) and through `deltann run`, checked against ONNX Runtime (--describe,
bad files and the tiny models against ONNX Runtime: test_worker_conformance.py):

- on the demo EfficientNet-Lite0, the output (float64 rounded to float32) equals ONNX Runtime's
  (float32) within REL of the largest |logit|;
- capture writes every float node output in float64, the graph output last, equal to `run`;
- an operator it lacks and a spec shape the model does not declare are error replies (an
  unknown operator is Unsupported, named), and the worker stays usable;
- a campaign with `--env ort --env reference` on the demo photos gives the same top-1 on every
  photo; the median time of one image is printed next to ORT's (docs/REFERENCE.md quotes it).

Skipped when the worker was not built (libonnx-dev missing at configure time). By hand:
DELTANN_BIN=$PWD/build/x/deltann DELTANN_BUILD_DIR=$PWD/build/x DELTANN_SOURCE_DIR=$PWD \
DELTANN_DEMO_DIR=$PWD/assets/demo PYTHONPATH=python:tests/pylib \
.deps/venv/bin/python -m pytest tests/integration/test_reference_worker.py
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, floats, int64s, onnxruntime_output, output_of, query,
                             results_of, top_ids, variants_by_env, worker_path)

# ORT accumulates in float32, the reference in float64: the difference is ORT's rounding error,
# ~1e-6 of the logits' magnitude on these models. Bound: 1e-4 of the largest |logit|.
REL = 1e-4
REF_ENV = "reference:opt=none,device=cpu,threads=1"
ORT_ENV = "ort:opt=all,device=cpu,threads=1"


@pytest.fixture(scope="module")
def worker():
    return worker_path("reference", "libonnx-dev's ONNX CMake package was not found at configure "
                                    "time")


def tiny_spec(models):
    return json.loads(models.tiny.with_suffix(".spec.json").read_text())


@pytest.fixture(scope="module")
def tiny_input(models, tmp_path_factory):
    x = np.random.default_rng(11).uniform(0, 255, tiny_spec(models)["input"]["shape"])
    x = x.astype(np.float32)
    path = tmp_path_factory.mktemp("reference_input") / "x.npy"
    np.save(path, x)
    return x, path


def demo_paths():
    demo = Path(os.environ.get("DELTANN_DEMO_DIR") or "assets/demo")
    model = demo / "efficientnet-lite0.onnx"
    if not model.is_file() or not (demo / "images.txt").is_file():
        pytest.skip(f"no demo model in {demo} (set DELTANN_DEMO_DIR; scripts/setup makes it)")
    return demo, model


def assert_close(got, want, what):
    bound = REL * float(np.max(np.abs(want)))
    worst = float(np.max(np.abs(got - want)))
    print(f"{what}: max |reference - ort| {worst:.3g}, bound {bound:.3g}")
    assert got.shape == want.shape
    assert worst <= bound, what


def test_capture_is_float64_and_ends_with_the_output(worker, models, tiny_input, tmp_path):
    x, path = tiny_input
    with WorkerClient(worker) as w:
        assert w.load(models.tiny, REF_ENV, tiny_spec(models))["event"] == "loaded"
        out = output_of(w.run(path))
        reply = w.request({"op": "capture", "tensor": str(path), "out_dir": str(tmp_path / "cap")})
    assert reply["event"] == "captured", reply
    assert reply["mode"] == "reference: float64 execution, every node output"
    index = json.loads(Path(reply["index"]).read_text())
    tensors = index["tensors"]
    assert reply["count"] == len(tensors) >= 2
    for t in tensors:
        data = np.load(Path(reply["index"]).parent / t["file"])
        assert data.dtype == np.float64 and list(data.shape) == t["shape"], t
        assert t["op"], t
    last = np.load(Path(reply["index"]).parent / tensors[-1]["file"]).ravel()
    np.testing.assert_array_equal(last.astype(np.float32), out)


def test_refusals_name_the_reason_and_the_worker_goes_on(worker, models, tiny_input, tmp_path):
    """An operator the executor lacks and a spec whose shape is not the model's are load errors
    saying so (files that are not models: the conformance suite)."""
    onnx = pytest.importorskip("onnx")
    # The tiny model with its first node's operator renamed to one the executor lacks.
    unknown = onnx.load(str(models.tiny))
    unknown.graph.node[0].op_type = "Einsum"
    unknown_path = tmp_path / "unknown_op.onnx"
    onnx.save(unknown, str(unknown_path))
    x, path = tiny_input
    with WorkerClient(worker) as w:
        reply = w.load(unknown_path, REF_ENV, tiny_spec(models))
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert str(unknown_path) in reply["message"], reply
        assert "'Einsum' is not implemented" in reply["message"], reply
        # A spec whose shape differs from the model's is refused at load, naming both shapes.
        spec = tiny_spec(models)
        spec["input"].update(shape=[1, 3, 16, 16], resize=16, crop=16)
        reply = w.load(models.tiny, REF_ENV, spec)
        assert reply["event"] == "error" and "[1,3,16,16]" in reply["message"], reply
        assert w.load(models.tiny, REF_ENV, tiny_spec(models))["event"] == "loaded"
        assert_close(output_of(w.run(path)), onnxruntime_output(models.tiny, x), "after errors")


def test_demo_model_matches_onnxruntime(worker, tmp_path):
    demo, model = demo_paths()
    spec = json.loads(model.with_suffix(".spec.json").read_text())
    x = np.random.default_rng(2).normal(0, 1, spec["input"]["shape"]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with WorkerClient(worker, timeout=300) as w:
        assert w.load(model, REF_ENV, spec)["event"] == "loaded"
        got = output_of(w.run(tmp_path / "x.npy", warmup=0, repeat=1))
    assert_close(got, onnxruntime_output(model, x), "demo model, random input")


@pytest.fixture
def reference_deltann(deltann):
    proc = deltann.run("backends", "--json")
    names = [b.get("name") for b in json.loads(proc.stdout)]
    for needed in ("reference", "ort"):
        if needed not in names:
            pytest.skip(f"`deltann backends --json` does not list {needed} (lists: {names})")
    return deltann


def test_demo_photos_same_top1_as_ort(reference_deltann, tmp_path):
    demo, model = demo_paths()
    db = tmp_path / "demo.db"
    result = reference_deltann.run("run", "--model", model, "--images", demo / "images.txt",
                                   "--db", db, "--env", "ort", "--env", "reference",
                                   "--repeat", 3, "--warmup", 0, "--quiet", timeout=600)
    variants = variants_by_env(db)
    ref_row, ort_row = variants[REF_ENV], variants[ORT_ENV]
    assert ref_row["status"] == "done" and ort_row["status"] == "done", result.describe()
    ref_results, ort_results = results_of(db, ref_row["id"]), results_of(db, ort_row["id"])
    assert set(ref_results) == set(ort_results) and len(ort_results) >= 1
    keys = {row["id"]: row["key"] for row in query(db, "SELECT id, key FROM images")}
    ref_ns, ort_ns = [], []
    for image_id, ort in ort_results.items():
        ref = ref_results[image_id]
        print(f"{keys[image_id]}: reference top-1 {top_ids(ref)[0]}, ort {top_ids(ort)[0]}")
        assert_close(floats(ref["output"]), floats(ort["output"]), keys[image_id])
        assert top_ids(ref)[0] == top_ids(ort)[0], keys[image_id]
        ref_ns.extend(int64s(ref["samples_ns"]))
        ort_ns.extend(int64s(ort["samples_ns"]))
    ref_ms, ort_ms = np.median(ref_ns) / 1e6, np.median(ort_ns) / 1e6
    print(f"median per image: reference {ref_ms:.1f} ms, ort threads=1 {ort_ms:.1f} ms "
          f"({ref_ms / ort_ms:.1f}x)")
    # "Seconds, not minutes": a generous bound that still catches a pathological loop order.
    assert ref_ms < 20000
