"""Per-layer capture (the worker protocol's `capture` op, docs/LOCALIZE.md "Capture per engine") on
the engines whose tensors are not ONNX Runtime's: TVM (the Relax VM's instrument, tensors after
fusion, named by kernel), LiteRT (a second interpreter preserving every tensor, NHWC, TFLite
names), OpenVINO (named tensors added as model outputs, ONNX names) and LibTorch (a copy of the
TorchScript graph returning every tensor, TorchScript names). For each: index.json and the .npy
files are well-formed, the last tensor is the engine's own run output, a `run` after the capture
gives the same output as before it, and intermediate tensors agree with ONNX Runtime's capture of
the matching tensor (by name for OpenVINO; by shape and value for TVM, LiteRT and LibTorch, whose
names differ).

Skipped per engine when its worker was not built or its model cannot be made here.
By hand: DELTANN_BUILD_DIR=$PWD/build/x DELTANN_SOURCE_DIR=$PWD PYTHONPATH=python:tests/pylib \
.deps/venv/bin/python -m pytest tests/integration/test_capture_engines.py
"""
import json
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import WorkerClient, output_of, worker_path

# float32 engines that sum in different orders agree to a few ulps of values of order 1..100.
ATOL = 1e-4
RTOL = 1e-4
TVM_ENV = "tvm:opt=3,device=cpu,threads=1"
ORT_ENV = "ort:opt=disable,device=cpu,threads=1"


def spec_of(model):
    return json.loads(Path(model).with_suffix(".spec.json").read_text())


def capture_with(worker, artifact, env, spec, tensor, out_dir):
    """Loads, runs once, captures, runs again; returns (capture reply, index, the two run
    outputs). The runs around the capture show that capturing leaves the timed path alone."""
    with WorkerClient(worker) as w:
        loaded = w.load(artifact, env, spec)
        assert loaded["event"] == "loaded", loaded
        before = output_of(w.run(tensor, first=True, warmup=0, repeat=1))
        reply = w.request({"op": "capture", "tensor": str(tensor), "out_dir": str(out_dir)})
        assert reply["event"] == "captured", reply
        after = output_of(w.run(tensor, first=False, warmup=1, repeat=2))
    index = json.loads((Path(out_dir) / "index.json").read_text())
    return reply, index, before, after


def load_tensors(out_dir, index):
    """[(entry, array)] of a capture, checking the index and each file against each other."""
    assert index["tensors"], "nothing captured"
    tensors = []
    for i, entry in enumerate(index["tensors"]):
        assert set(entry) == {"index", "name", "op", "shape", "file"}, entry
        assert entry["index"] == i and entry["file"] == f"{i:04d}.npy"
        assert entry["name"] and entry["op"], entry
        array = np.load(Path(out_dir) / entry["file"], allow_pickle=False)
        assert array.dtype == np.float64 and list(array.shape) == entry["shape"], entry
        assert array.flags.c_contiguous
        tensors.append((entry, array))
    return tensors


def check_reply(reply, index, out_dir, mode_start):
    assert reply["count"] == len(index["tensors"])
    assert reply["index"] == str(Path(out_dir) / "index.json")
    assert reply["mode"] == index["mode"] and index["mode"].startswith(mode_start), reply["mode"]


def ort_capture(model, spec, tensor, out_dir):
    """{name: array} of ONNX Runtime's capture (every node output, unfused)."""
    worker = worker_path("ort", "ONNX Runtime not found at configure time")
    _, index, _, _ = capture_with(worker, model, ORT_ENV, spec, tensor, out_dir)
    return {entry["name"]: array for entry, array in load_tensors(out_dir, index)}


# --- TVM --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tvm_worker():
    return worker_path("tvm", "TVM not found at configure time")


@pytest.fixture
def tiny_input(models, tmp_path):
    x = np.random.default_rng(5).uniform(0, 255, spec_of(models.tiny)["input"]["shape"])
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    return tmp_path / "x.npy"


def test_tvm_capture_is_post_fusion_and_matches_onnxruntime(tvm_worker, tiny_tvm, models,
                                                            tiny_input, tmp_path):
    spec = spec_of(models.tiny)
    out_dir = tmp_path / "tvm"
    reply, index, before, after = capture_with(tvm_worker, tiny_tvm, TVM_ENV, spec, tiny_input,
                                               out_dir)
    check_reply(reply, index, out_dir, "tvm: tensors after TVM's fusion")
    tensors = load_tensors(out_dir, index)
    names = [entry["name"] for entry, _ in tensors]
    assert len(set(names)) == len(names), names  # repeated kernels get a counter
    for entry, _ in tensors:
        assert entry["name"].split("#")[0].split(":")[0] == entry["op"], entry
    # At opt=3 Conv, its bias Add and the ReLU are one kernel: its output is the only tensor of
    # that stage, named by the kernel, and the ONNX tensor between them does not exist.
    fused = [(entry, array) for entry, array in tensors if entry["op"].startswith("fused_conv2d")]
    assert fused and "relu" in fused[0][0]["op"], names

    # The last tensor is the graph output: the worker's own run gives the same values, and the
    # capture did not change what `run` returns.
    last_entry, last = tensors[-1]
    np.testing.assert_array_equal(last.ravel(), before.astype(np.float64))
    np.testing.assert_array_equal(before, after)

    ort = ort_capture(models.tiny, spec, tiny_input, tmp_path / "ort")
    np.testing.assert_allclose(last.ravel(), ort["logits"].ravel(), atol=ATOL, rtol=RTOL)
    # The fused kernel's output is ONNX's ReLU output 'r' (same shape as the Conv output 'c').
    conv_shaped = [array for _, array in tensors if array.shape == ort["r"].shape]
    assert conv_shaped, names
    np.testing.assert_allclose(fused[0][1], ort["r"], atol=ATOL, rtol=RTOL)
    for array in conv_shaped:
        assert np.allclose(array, ort["r"], atol=ATOL, rtol=RTOL) or \
            np.allclose(array, ort["c"], atol=ATOL, rtol=RTOL)


def test_tvm_capture_leaves_the_worker_usable(tvm_worker, tiny_tvm, models, tiny_input,
                                              tmp_path):
    """Two captures and runs in between: every run gives the same output as before the first
    capture (the timed VM has no instrument) and both captures are identical."""
    spec = spec_of(models.tiny)
    with WorkerClient(tvm_worker) as w:
        assert w.load(tiny_tvm, TVM_ENV, spec)["event"] == "loaded"
        first = output_of(w.run(tiny_input, first=True, warmup=1, repeat=2))
        captures = []
        for i in range(2):
            reply = w.request({"op": "capture", "tensor": str(tiny_input),
                               "out_dir": str(tmp_path / f"cap{i}")})
            assert reply["event"] == "captured", reply
            captures.append(load_tensors(tmp_path / f"cap{i}", json.loads(
                (tmp_path / f"cap{i}" / "index.json").read_text())))
            result = w.run(tiny_input, first=False, warmup=0, repeat=3)
            np.testing.assert_array_equal(output_of(result), first)
            assert result.get("repeat_max_abs_diff", 0) == 0
    assert [e for e, _ in captures[0]] == [e for e, _ in captures[1]]
    for (_, a), (_, b) in zip(*captures):
        np.testing.assert_array_equal(a, b)
    # A capture before any load is refused without ending the worker.
    with WorkerClient(tvm_worker) as w:
        reply = w.request({"op": "capture", "tensor": str(tiny_input),
                           "out_dir": str(tmp_path / "none")})
        assert reply["event"] == "error" and reply["stage"] == "capture", reply


# --- LiteRT -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tflite_worker():
    return worker_path("tflite", "no TensorFlow venv with ai-edge-litert at configure time")


def tflite_env(opt):
    return f"tflite:opt={opt},device=cpu,threads=1"


def nhwc_to_nchw(array):
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


def matching_ort_tensor(array, ort):
    """Name of the ONNX Runtime tensor that holds `array`'s values, directly or as NCHW."""
    for name, value in ort.items():
        for candidate in (array, nhwc_to_nchw(array)):
            if candidate.size == value.size and candidate.shape == value.shape and \
                    np.allclose(candidate, value, atol=ATOL, rtol=RTOL):
                return name
        if array.size == value.size and array.ndim != value.ndim and \
                np.allclose(array.ravel(), value.ravel(), atol=ATOL, rtol=RTOL):
            return name
    return None


@pytest.mark.parametrize("opt", ["none", "xnnpack"])
def test_litert_capture_nhwc_matches_onnxruntime(tflite_worker, tflite_models, opt, tmp_path):
    models = tflite_models
    x = models.random_input("tiny", seed=9)
    np.save(tmp_path / "x.npy", x)
    out_dir = tmp_path / "tflite"
    reply, index, before, after = capture_with(tflite_worker, models.path("tiny"), tflite_env(opt),
                                               models.spec("tiny"), tmp_path / "x.npy", out_dir)
    check_reply(reply, index, out_dir, "tflite:")
    assert "NHWC" in index["mode"] and "TFLite's tensor names" in index["mode"]
    assert ("not the XNNPACK delegate" in index["mode"]) == (opt == "xnnpack")
    tensors = load_tensors(out_dir, index)
    ops = [entry["op"] for entry, _ in tensors]
    assert ops == ["CONV_2D", "MEAN", "FULLY_CONNECTED"], ops
    conv_entry, conv = tensors[0]
    assert conv_entry["shape"] == [1, 6, 6, 4]  # NHWC, as TFLite holds it

    last_entry, last = tensors[-1]
    assert last_entry["name"] == models.manifest["tiny"]["output"]["tensor"]
    # The capture runs LiteRT's builtin kernels: with opt=none that is the timed run itself.
    if opt == "none":
        np.testing.assert_array_equal(last.ravel(), before.astype(np.float64))
    else:
        np.testing.assert_allclose(last.ravel(), before, atol=ATOL, rtol=RTOL)
    np.testing.assert_array_equal(before, after)

    # ONNX Runtime on the tf2onnx twin: the converter split CONV_2D's fused ReLU back out, so
    # the TFLite conv tensor (ReLU applied) is ONNX's Relu output transposed to NCHW; its name
    # belongs to ONNX's Conv output, before the ReLU, which is why names are not matched here.
    io = models.manifest["tiny"]
    spec = dict(models.spec("tiny"))
    spec["input"] = dict(spec["input"], name=io["onnx"]["input"])
    spec["output"] = dict(spec["output"], name=io["onnx"]["output"])
    ort = ort_capture(models.path("tiny", ".onnx"), spec, tmp_path / "x.npy", tmp_path / "ort")
    matched = {entry["name"]: matching_ort_tensor(array, ort) for entry, array in tensors}
    assert all(matched.values()), matched
    relu = matched[conv_entry["name"]]
    assert relu != conv_entry["name"] and ort[relu].shape == (1, 4, 6, 6), matched
    np.testing.assert_allclose(nhwc_to_nchw(conv), ort[relu], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(last.ravel(), ort[io["onnx"]["output"]].ravel(), atol=ATOL,
                               rtol=RTOL)


def test_litert_capture_dequantises_int8(tflite_worker, tflite_models, tmp_path):
    """The int8 model's tensors arrive dequantised with their own scales: close to the float
    model's capture (within the quantisation error) and the last one is the run's output."""
    models = tflite_models
    x = models.random_input("tiny", seed=9)
    np.save(tmp_path / "x.npy", x)
    captures = {}
    for name in ("tiny", "tiny_quant"):
        out_dir = tmp_path / name
        reply, index, before, _ = capture_with(tflite_worker, models.path(name), tflite_env("none"),
                                               models.spec(name), tmp_path / "x.npy", out_dir)
        assert "dequantised" in index["mode"]
        tensors = load_tensors(out_dir, index)
        captures[name] = {entry["op"]: array for entry, array in tensors}
        np.testing.assert_allclose(tensors[-1][1].ravel(), before, atol=1e-6)
    quant, real = captures["tiny_quant"], captures["tiny"]
    assert "QUANTIZE" in quant  # the uint8 input requantised to int8 inside the model
    for op in ("CONV_2D", "MEAN", "FULLY_CONNECTED"):
        error = np.abs(quant[op] - real[op]).max()
        assert error < 0.05 * max(1.0, np.abs(real[op]).max()), (op, error)


# --- OpenVINO ---------------------------------------------------------------------------------

OV_ENV = "openvino:opt=default,device=cpu,precision=f32,threads=1,hint=latency"


def test_openvino_capture_keeps_onnx_names_and_matches_onnxruntime(models, tiny_input, tmp_path):
    """OpenVINO exposes the tensors the ONNX frontend named, so every tensor matches ONNX
    Runtime's by name and value; the Conv's bias Add the frontend split off is not a separate
    tensor, and the timed run is unchanged by the capture."""
    worker = worker_path("openvino", "the openvino wheel missing at configure time")
    spec = spec_of(models.tiny)
    out_dir = tmp_path / "openvino"
    reply, index, before, after = capture_with(worker, models.tiny, OV_ENV, spec, tiny_input,
                                               out_dir)
    check_reply(reply, index, out_dir, "openvino:")
    assert "fusion across captured tensors is prevented" in index["mode"]
    tensors = load_tensors(out_dir, index)
    np.testing.assert_array_equal(before, after)
    last_entry, last = tensors[-1]
    assert last_entry["name"] == "logits"
    np.testing.assert_array_equal(last.ravel(), before.astype(np.float64))

    ort = ort_capture(models.tiny, spec, tiny_input, tmp_path / "ort")
    names = [entry["name"] for entry, _ in tensors]
    assert names == list(ort), (names, list(ort))
    for entry, array in tensors:
        np.testing.assert_allclose(array, ort[entry["name"]], atol=ATOL, rtol=RTOL,
                                   err_msg=entry["name"])


# --- LibTorch ---------------------------------------------------------------------------------

def libtorch_env(opt):
    return f"libtorch:opt={opt},device=cpu,threads=1"


@pytest.fixture(scope="module")
def libtorch_worker():
    return worker_path("libtorch", "LibTorch not found at configure time")


@pytest.mark.parametrize("opt", ["none", "freeze", "optimize_for_inference"])
def test_libtorch_capture_matches_onnxruntime(libtorch_worker, tiny_torchscript, models,
                                              tiny_input, opt, tmp_path):
    """The TorchScript graph's tensors, named by TorchScript, op the node kind; the last is the
    run's output and the convolution and ReLU tensors are ONNX Runtime's 'c' and 'r' (matched by
    shape, since the names differ)."""
    artifact, spec = tiny_torchscript
    out_dir = tmp_path / "libtorch"
    reply, index, before, after = capture_with(libtorch_worker, artifact, libtorch_env(opt), spec,
                                               tiny_input, out_dir)
    check_reply(reply, index, out_dir, "libtorch: ")
    assert "TorchScript value names" in index["mode"] and "untouched" in index["mode"]
    if opt != "none":
        assert f"torch::jit::{opt}" in index["mode"]
    tensors = load_tensors(out_dir, index)
    names = [entry["name"] for entry, _ in tensors]
    assert len(set(names)) == len(names), names
    assert all(entry["op"].startswith(("aten::", "prim::")) for entry, _ in tensors), index

    last_entry, last = tensors[-1]
    np.testing.assert_array_equal(last.ravel(), before.astype(np.float64))
    np.testing.assert_array_equal(before, after)

    ort = ort_capture(models.tiny, spec_of(models.tiny), tiny_input, tmp_path / "ort")
    np.testing.assert_allclose(last.ravel(), ort["logits"].ravel(), atol=ATOL, rtol=RTOL)
    conv_shaped = [(entry, array) for entry, array in tensors if array.shape == ort["r"].shape]
    convs = [array for entry, array in conv_shaped if "conv" in entry["op"]]
    relus = [array for entry, array in conv_shaped if "relu" in entry["op"]]
    assert convs and relus, index["tensors"]
    # The convolution's tensor is its own value, not the ReLU's: optimize_for_inference's ReLU
    # is in place (aten::relu_) on the convolution's output, so this checks the capture's clones.
    np.testing.assert_allclose(convs[0], ort["c"], atol=ATOL, rtol=RTOL)
    assert not np.allclose(convs[0], ort["r"])
    np.testing.assert_allclose(relus[0], ort["r"], atol=ATOL, rtol=RTOL)
    for entry, array in conv_shaped:
        assert np.allclose(array, ort["r"], atol=ATOL, rtol=RTOL) or \
            np.allclose(array, ort["c"], atol=ATOL, rtol=RTOL), entry


def test_libtorch_capture_leaves_the_worker_usable(libtorch_worker, tiny_torchscript, tiny_input,
                                                   tmp_path):
    """Two captures with runs in between give identical captures and the first run's output; a
    capture before any load is an error at stage capture and the worker goes on."""
    artifact, spec = tiny_torchscript
    with WorkerClient(libtorch_worker) as w:
        reply = w.request({"op": "capture", "tensor": str(tiny_input),
                           "out_dir": str(tmp_path / "none")})
        assert reply["event"] == "error" and reply["stage"] == "capture", reply
        assert w.load(artifact, libtorch_env("freeze"), spec)["event"] == "loaded"
        first = output_of(w.run(tiny_input, first=True, warmup=1, repeat=2))
        captures = []
        for i in range(2):
            reply = w.request({"op": "capture", "tensor": str(tiny_input),
                               "out_dir": str(tmp_path / f"cap{i}")})
            assert reply["event"] == "captured", reply
            captures.append(load_tensors(tmp_path / f"cap{i}", json.loads(
                (tmp_path / f"cap{i}" / "index.json").read_text())))
            result = w.run(tiny_input, first=False, warmup=0, repeat=3)
            np.testing.assert_array_equal(output_of(result), first)
    assert [e for e, _ in captures[0]] == [e for e, _ in captures[1]]
    for (_, a), (_, b) in zip(*captures):
        np.testing.assert_array_equal(a, b)
