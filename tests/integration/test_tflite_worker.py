"""deltann-worker-tflite (LiteRT, a Python worker) driven over the worker protocol and by a real
campaign: tiny TFLite models made with TensorFlow give ONNX Runtime's output on their tf2onnx
twins at every opt/threads setting; quantised inputs and outputs are converted with the tensors'
own parameters; shape and name mismatches and damaged files are error replies that leave the
worker usable (what every worker does, --describe, run replies, malformed requests:
test_worker_conformance.py); `deltann run` on a .tflite model with an NHWC spec completes end to
end.

The models are made by tests/pylib/deltann_testmodels/make_tflite_test_models.py, run with the Python
the worker itself runs with (the TensorFlow venv named in the launcher's shebang); this suite
runs under the project venv, which has ONNX Runtime but no TensorFlow.

Skipped when the worker was not generated (no .deps/venv-tf at configure time).
By hand: DELTANN_BIN=$PWD/build/x/deltann DELTANN_BUILD_DIR=$PWD/build/x DELTANN_SOURCE_DIR=$PWD \
PYTHONPATH=python:tests/pylib .deps/venv/bin/python -m pytest \
tests/integration/test_tflite_worker.py
"""
import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, cached_tensor, damaged_tflite_copies, describe_worker,
                             failures_of, floats, images_by_key, int64s, output_of, results_of,
                             run_tflite_campaign, top_ids, variants_by_env, worker_path)

# float32 engines sum in different orders: outputs agree to a few ulps of values below ~1.
ATOL = 1e-4
RTOL = 1e-4
KNOBS = [(opt, threads) for opt in ("none", "xnnpack") for threads in (1, 2)]


@pytest.fixture(scope="module")
def worker():
    return worker_path("tflite", "no TensorFlow venv with ai-edge-litert at configure time; "
                                 "see docs/TFLITE.md")


def env_text(opt="xnnpack", threads=1):
    return f"tflite:opt={opt},device=cpu,threads={threads}"


@pytest.mark.parametrize("name", ["tiny", "prob1001"])
def test_output_matches_onnxruntime_at_every_setting(worker, tflite_models, name, tmp_path):
    x = tflite_models.random_input(name, seed=7)
    np.save(tmp_path / "x.npy", x)
    want = tflite_models.onnx_output(name, x)
    spec = tflite_models.spec(name)
    assert want.shape == (spec["output"]["classes"] + spec["output"]["label_offset"],)

    with WorkerClient(worker) as w:
        for opt, threads in KNOBS:  # one worker, one model after another: reloading works too
            loaded = w.load(tflite_models.path(name), env_text(opt, threads), spec)
            assert loaded["event"] == "loaded", (opt, threads, loaded)
            assert loaded["load_ns"] > 0 and loaded["engine_version"]
            result = w.run(tmp_path / "x.npy", first=True, warmup=1, repeat=3)
            assert result["event"] == "result", (opt, threads, result)
            assert result["image"] == "x"
            assert result["first_ns"] > 0
            assert len(result["samples_ns"]) == 3 and all(s > 0 for s in result["samples_ns"])
            # The same input gives the same output on every run of these deterministic kernels.
            assert result["repeat_max_abs_diff"] == 0.0, \
                (opt, threads, result["repeat_max_abs_diff"])
            got = output_of(result)
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL, err_msg=f"{opt}, {threads}")
            assert int(np.argmax(got)) == int(np.argmax(want)), (opt, threads)
            if spec["output"]["kind"] == "probabilities":
                assert abs(float(got.sum()) - 1.0) < 1e-4


def test_tensor_and_signature_names_both_select(worker, tflite_models, tmp_path):
    x = tflite_models.random_input("tiny", seed=5)
    np.save(tmp_path / "x.npy", x)
    io = tflite_models.manifest["tiny"]
    with WorkerClient(worker) as w:
        outputs = []
        for key in ("signature", "tensor"):
            spec = tflite_models.spec("tiny")
            spec["input"]["name"] = io["input"][key]
            spec["output"]["name"] = io["output"][key]
            assert w.load(tflite_models.path("tiny"), env_text(), spec)["event"] == "loaded", key
            outputs.append(output_of(w.run(tmp_path / "x.npy")))
        spec = tflite_models.spec("tiny")
        spec["input"]["name"] = spec["output"]["name"] = ""  # the first input and output
        assert w.load(tflite_models.path("tiny"), env_text(), spec)["event"] == "loaded"
        outputs.append(output_of(w.run(tmp_path / "x.npy")))
    for output in outputs[1:]:
        np.testing.assert_array_equal(output, outputs[0])


def test_quantised_model_is_fed_and_read_as_float(worker, tflite_models, tmp_path):
    """tiny_quant takes uint8 and gives int8: the worker quantises the float32 tensor with the
    input's scale and zero point and dequantises the output with the output's, so the result is
    the float model's output up to quantisation error, on the output's grid of values."""
    io = tflite_models.manifest["tiny_quant"]
    assert io["input"]["dtype"] == "uint8" and io["output"]["dtype"] == "int8", io
    x = tflite_models.random_input("tiny_quant", seed=9)
    np.save(tmp_path / "x.npy", x)
    want = tflite_models.onnx_output("tiny", x)  # the float model it was quantised from
    scale, zero_point = io["output"]["scale"], io["output"]["zero_point"]
    with WorkerClient(worker) as w:
        for opt in ("none", "xnnpack"):
            loaded = w.load(tflite_models.path("tiny_quant"), env_text(opt),
                            tflite_models.spec("tiny_quant"))
            assert loaded["event"] == "loaded", loaded
            got = output_of(w.run(tmp_path / "x.npy"))
            assert got.shape == (5,)
            steps = got / scale + zero_point  # dequantised values sit on the int8 grid
            np.testing.assert_allclose(steps, np.round(steps), atol=1e-3, err_msg=opt)
            assert np.all((np.round(steps) >= -128) & (np.round(steps) <= 127))
            # Input rounding (1/255 steps) and int8 kernels: a few output steps at most.
            np.testing.assert_allclose(got, want, atol=6 * scale, rtol=0, err_msg=opt)


def test_wrong_input_shape_is_a_load_error(worker, tflite_models):
    spec = tflite_models.spec("tiny")
    spec["input"].update(shape=[1, 3, 8, 8], layout="NCHW")
    with WorkerClient(worker) as w:
        reply = w.load(tflite_models.path("tiny"), env_text(), spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "[1,8,8,3]" in reply["message"] and "[1,3,8,8]" in reply["message"], reply


def test_float64_tensor_is_a_run_error(worker, tflite_models, tmp_path):
    """The Python worker reads only float32 .npy files, as the C++ one does (a tensor of another
    shape: the conformance suite)."""
    np.save(tmp_path / "f64.npy", np.zeros([1, 8, 8, 3], dtype=np.float64))
    with WorkerClient(worker) as w:
        assert w.load(tflite_models.path("tiny"), env_text(), tflite_models.spec("tiny"))[
            "event"] == "loaded"
        reply = w.run(tmp_path / "f64.npy")
        assert reply["event"] == "error" and reply["stage"] == "run", reply
        assert "float32" in reply["message"], reply


def test_unknown_names_are_load_errors(worker, tflite_models):
    with WorkerClient(worker) as w:
        for side in ("input", "output"):
            spec = tflite_models.spec("tiny")
            spec[side]["name"] = "no_such_tensor"
            reply = w.load(tflite_models.path("tiny"), env_text(), spec)
            assert reply["event"] == "error" and reply["stage"] == "load", reply
            assert "no_such_tensor" in reply["message"], reply
            assert tflite_models.manifest["tiny"][side]["tensor"] in reply["message"], reply


def test_invalid_knobs_are_load_errors(worker, tflite_models):
    with WorkerClient(worker) as w:
        for env, words in ((env_text("fast"), "none, xnnpack"), (env_text(threads=0), "threads=0"),
                           ("tflite:opt=none,device=gpu,threads=1", "device=gpu")):
            reply = w.load(tflite_models.path("tiny"), env, tflite_models.spec("tiny"))
            assert reply["event"] == "error" and reply["stage"] == "load", reply
            assert words in reply["message"], reply


def test_damaged_files_are_error_replies(worker, tflite_models, tmp_path):
    x = tflite_models.random_input("tiny", seed=1)
    np.save(tmp_path / "x.npy", x)
    spec = tflite_models.spec("tiny")
    (tmp_path / "bad").mkdir()
    with WorkerClient(worker) as w:
        damaged = damaged_tflite_copies(tflite_models.path("tiny"), tmp_path / "bad")
        for what, path in damaged.items():
            reply = w.load(path, env_text(), spec)
            assert reply["event"] == "error" and reply["stage"] == "load", (what, reply)
            assert str(path) in reply["message"], (what, reply)
            # The failed load leaves no model behind.
            reply = w.run(tmp_path / "x.npy")
            assert reply["event"] == "error" and "before a successful load" in reply["message"], \
                (what, reply)
        # Still the same, usable worker.
        assert w.proc.poll() is None
        assert w.load(tflite_models.path("tiny"), env_text(), spec)["event"] == "loaded"
        np.testing.assert_allclose(output_of(w.run(tmp_path / "x.npy")),
                                   tflite_models.onnx_output("tiny", x), atol=ATOL, rtol=RTOL)


# --- a real campaign ------------------------------------------------------------------------

def engine_version(worker):
    return describe_worker(worker)["version"]


def test_campaign_end_to_end(deltann_bin, worker, tflite_models, tmp_path):
    envs = {"tflite:opt=xnnpack,threads=1": env_text("xnnpack", 1),
            "tflite:opt=none,threads=1": env_text("none", 1)}
    sizes = [(8, 8)] * 3 + [(13, 10), (24, 17)]
    db, run, cache = run_tflite_campaign(deltann_bin, worker, tflite_models, "tiny", envs,
                                         sizes, tmp_path / "tiny")
    assert f"{len(envs)} variants run, 0 failed" in run.stderr, run.describe()
    variants = variants_by_env(db)
    assert sorted(variants) == sorted(envs.values())
    images = images_by_key(db)
    assert len(images) == len(sizes)
    for env, variant in variants.items():
        assert variant["status"] == "done", (env, variant["status"])
        assert variant["engine_version"] == engine_version(worker), env
        assert variant["load_ns"] > 0 and variant["first_ns"] > 0, env
        assert failures_of(db, variant["id"]) == [], env
        results = results_of(db, variant["id"])
        assert len(results) == len(sizes), env
        for key, image in images.items():
            row = results[image["id"]]
            output = floats(row["output"])
            assert output.shape == (5,), (env, key)
            assert top_ids(row)[0] == int(np.argmax(output))
            assert len(int64s(row["samples_ns"])) == 2
            # The very tensor deltann preprocessed (NHWC, as the spec says) through ONNX Runtime.
            x = cached_tensor(cache, image["sha256"])
            assert x.shape == (1, 8, 8, 3)
            np.testing.assert_allclose(output, tflite_models.onnx_output("tiny", x),
                                       atol=ATOL, rtol=RTOL, err_msg=f"{env} {key}")


def test_campaign_with_background_slot(deltann_bin, worker, tflite_models, tmp_path):
    """1001 probabilities with TensorFlow's background slot: the campaign accepts the length
    (classes + label offset) and ranks class ids without the slot."""
    db, run, _ = run_tflite_campaign(deltann_bin, worker, tflite_models, "prob1001",
                                     ["tflite:opt=xnnpack,threads=1"], [(16, 16), (20, 31)],
                                     tmp_path / "prob1001")
    (variant,) = variants_by_env(db).values()
    assert variant["status"] == "done", run.describe()
    results = results_of(db, variant["id"])
    assert len(results) == 2
    for row in results.values():
        output = floats(row["output"])
        assert output.shape == (1001,)
        assert abs(float(output.sum()) - 1.0) < 1e-4
        assert top_ids(row)[0] == int(np.argmax(output[1:]))


# --- the generic Python loop, with a stand-in engine (no LiteRT needed) ------------------------

NOISY_ENGINE = '''
import os, sys
import numpy as np
from deltann_workers import worker

class Session:
    def __init__(self):
        self.runs = 0
    def set_input(self, x):
        self.x = x.ravel()
    def run(self):
        self.runs += 1
    def output(self):
        return self.x * self.runs  # changes with every run: a non-deterministic engine

class Engine:
    def describe(self):
        return {"name": "noisy", "version": "0", "description": "", "devices": ["cpu"],
                "formats": ["npy"], "knobs": []}
    def load(self, request):
        print("chatter from Python print")
        os.write(1, b"chatter from a native library\\n")
        if request.artifact == "fail":
            raise KeyError("x")
        return Session()

sys.exit(worker.worker_main(sys.argv, Engine))
'''


def test_generic_loop_keeps_stdout_for_replies(source_dir, tmp_path):
    """The loop in deltann_workers.worker with an engine that prints to standard output (as
    native libraries do) and changes its output on every run: the replies stay parseable, the
    chatter goes to the log, and repeat_max_abs_diff compares the first and the last run."""
    script = tmp_path / "noisy_worker.py"
    script.write_text(NOISY_ENGINE)
    x = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    requests = [{"op": "load", "artifact": "fail", "env": "noisy", "spec": {}},
                {"op": "load", "artifact": "ok", "env": "noisy:a=b:c", "spec": {}},
                {"op": "run", "image": "x", "tensor": str(tmp_path / "x.npy"), "first": True,
                 "warmup": 1, "repeat": 2},
                {"op": "quit"}]
    env = dict(os.environ, PYTHONPATH=str(source_dir / "python"))
    proc = subprocess.run([sys.executable, str(script), "--serve"], env=env, text=True,
                          input="".join(json.dumps(r) + "\n" for r in requests),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["event"] for r in replies] == ["ready", "error", "loaded", "result"], proc.stdout
    assert replies[1] == {"event": "error", "stage": "load", "message": "KeyError: 'x'"}
    assert replies[2]["load_ns"] > 0 and replies[2]["engine_version"] == "0"
    result = replies[3]
    assert result["first_ns"] > 0 and len(result["samples_ns"]) == 2
    # 4 runs: the first output is x * 1, the last x * 4.
    np.testing.assert_array_equal(output_of(result), x.ravel() * 4)
    assert result["repeat_max_abs_diff"] == pytest.approx(3 * 2.0)
    assert "chatter from Python print" in proc.stderr
    assert "chatter from a native library" in proc.stderr


def test_generic_loop_refuses_a_tensor_of_another_shape_than_the_specs(source_dir, tmp_path):
    """The stand-in engine takes any tensor, as OpenCV DNN does: the loop itself refuses one whose
    shape is not the spec's the model was loaded for, like the C++ worker, and goes on."""
    script = tmp_path / "noisy_worker.py"
    script.write_text(NOISY_ENGINE)
    np.save(tmp_path / "x.npy", np.ones((1, 3), np.float32))
    np.save(tmp_path / "x4.npy", np.ones((1, 4), np.float32))
    spec = {"input": {"shape": [1, 3]}}
    run = {"op": "run", "image": "x", "first": False, "warmup": 0, "repeat": 1}
    requests = [{"op": "load", "artifact": "ok", "env": "noisy", "spec": spec},
                dict(run, tensor=str(tmp_path / "x4.npy")),
                dict(run, tensor=str(tmp_path / "x.npy")),
                {"op": "quit"}]
    env = dict(os.environ, PYTHONPATH=str(source_dir / "python"))
    proc = subprocess.run([sys.executable, str(script), "--serve"], env=env, text=True,
                          input="".join(json.dumps(r) + "\n" for r in requests),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["event"] for r in replies] == ["ready", "loaded", "error", "result"], replies
    assert replies[2] == {"event": "error", "stage": "run",
                          "message": f"input tensor {tmp_path / 'x4.npy'} has shape [1,4] but the "
                                     "model was loaded for the spec's [1,3]"}
    np.testing.assert_array_equal(output_of(replies[3]), np.ones(3))


def test_protocol_helpers_match_the_cpp_worker():
    from deltann_workers.worker import (INFINITE_DIFFERENCE, encode_floats, max_abs_difference,
                                        parse_environment)

    nan, inf = float("nan"), float("inf")
    assert max_abs_difference([1, nan, inf], [1.5, nan, inf]) == 0.5  # NaN = NaN, Inf = Inf
    assert max_abs_difference([nan], [0]) == INFINITE_DIFFERENCE
    assert max_abs_difference([inf], [0]) == INFINITE_DIFFERENCE
    assert max_abs_difference([inf], [-inf]) == INFINITE_DIFFERENCE
    assert max_abs_difference([1, 2], [1]) == INFINITE_DIFFERENCE
    assert max_abs_difference([0.25], [0.25]) == 0.0
    values = np.array([nan, inf, -inf, -0.0, 1e-45, 3.4e38], dtype=np.float32)
    assert base64.b64decode(encode_floats(values)) == values.astype("<f4").tobytes()
    env = parse_environment("tvm@onnx>tflite:device=cuda:0,opt=3")
    assert (env.framework, env.qualifier) == ("tvm", "onnx>tflite")
    assert env.knobs == {"device": "cuda:0", "opt": "3"}
