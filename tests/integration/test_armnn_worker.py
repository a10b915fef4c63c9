"""deltann-worker-armnn (Arm NN 20.08's TfLite parser on its CpuRef reference backend) over the
worker protocol and in a campaign next to LiteRT: the same tiny TFLite models as
test_tflite_worker.py give ONNX Runtime's output on their tf2onnx twins; fp16 precision stays
close; quantised models, shape mismatches and damaged files are error replies that leave the
worker usable.

Skipped when the worker was not built (Debian's libarmnn-dev, libarmnntfliteparser-dev or
libarmnn-cpuref-backend22 missing) or the TensorFlow venv that makes the models is absent.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import failures_of, floats, images_by_key, results_of, variants_by_env
# Helpers and the model fixture of the LiteRT suite (no test functions, so nothing runs twice).
from test_tflite_worker import (ATOL, RTOL, Worker, damaged_copies, decode, onnx_reference,
                                random_input, run_campaign, spec_for)
from test_tflite_worker import tflite_models  # noqa: F401  (a fixture: pytest finds it here)

FP16_ATOL = 2e-2  # fp16 arithmetic: ~3 significant digits on values below ~1


@pytest.fixture(scope="module")
def worker():
    build = os.environ.get("DELTANN_BUILD_DIR")
    if not build:
        pytest.skip("DELTANN_BUILD_DIR is not set (the build folder holding deltann-worker-armnn)")
    path = Path(build) / "deltann-worker-armnn"
    if not path.is_file():
        pytest.skip(f"{path} was not built (Arm NN not found at configure time)")
    return path


@pytest.fixture(scope="module")
def tf_python(worker, source_dir):
    """The TensorFlow venv's Python (makes the models): the LiteRT launcher's, else .deps's."""
    launcher = worker.parent / "deltann-worker-tflite"
    if launcher.is_file():
        python = Path(launcher.read_text().splitlines()[0][2:].split()[0])
    else:
        python = source_dir / ".deps" / "venv-tf" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no TensorFlow venv at {python} to make the test models")
    return python


def env_text(precision="fp32"):
    return f"armnn:opt=default,device=cpu,precision={precision},threads=1"


def spec_with_tensor_names(models, name):
    """spec_for's spec naming the tensors rather than their signature names."""
    spec = spec_for(models, name)
    spec["input"]["name"] = models.manifest[name]["input"]["tensor"]
    spec["output"]["name"] = models.manifest[name]["output"]["tensor"]
    return spec


def test_describe(worker):
    proc = subprocess.run([str(worker), "--describe"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["name"] == "armnn" and info["version"].startswith("22.")
    assert info["formats"] == ["tflite"] and info["devices"] == ["cpu"]
    knobs = {k["name"]: k for k in info["knobs"]}
    assert set(knobs) == {"opt", "device", "precision", "threads"}
    assert knobs["precision"]["values"] == ["fp32", "fp16"]


@pytest.mark.parametrize("name", ["tiny", "prob1001"])
def test_output_matches_onnxruntime(worker, tflite_models, name, tmp_path):
    x = random_input(tflite_models, name, seed=17)
    np.save(tmp_path / "x.npy", x)
    want = onnx_reference(tflite_models, name, x)
    w = Worker(worker)
    for precision, atol, rtol in (("fp32", ATOL, RTOL), ("fp16", FP16_ATOL, 0)):
        loaded = w.load(tflite_models.path(name), spec_for(tflite_models, name),
                        env_text(precision))
        assert loaded["event"] == "loaded", (precision, loaded)
        result = w.run(tmp_path / "x.npy", first=True, warmup=1, repeat=2)
        assert result["event"] == "result", (precision, result)
        assert result["first_ns"] > 0 and len(result["samples_ns"]) == 2
        assert result["repeat_max_abs_diff"] == 0.0
        got = decode(result)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=precision)
    w.close()


def test_refusals_are_load_errors(worker, tflite_models):
    w = Worker(worker)
    spec = spec_with_tensor_names(tflite_models, "tiny")
    spec["input"].update(shape=[1, 3, 8, 8], layout="NCHW")
    reply = w.load(tflite_models.path("tiny"), spec, env_text())
    assert reply["event"] == "error" and reply["stage"] == "load", reply
    assert "[1,8,8,3]" in reply["message"] and "[1,3,8,8]" in reply["message"], reply
    spec = spec_for(tflite_models, "tiny")
    spec["output"]["name"] = "no_such_tensor"
    reply = w.load(tflite_models.path("tiny"), spec, env_text())
    assert reply["event"] == "error", reply
    io = tflite_models.manifest["tiny"]["output"]
    assert f"{io['tensor']} (signature name '{io['signature']}')" in reply["message"], reply
    reply = w.load(tflite_models.path("tiny_quant"),
                   spec_with_tensor_names(tflite_models, "tiny_quant"), env_text())
    assert reply["event"] == "error" and "float32" in reply["message"], reply
    w.close()


def test_tensor_and_signature_names_both_select(worker, tflite_models, tmp_path):
    """Arm NN 20.08 knows only tensor names; the worker reads the signatures itself."""
    np.save(tmp_path / "x.npy", random_input(tflite_models, "tiny", seed=2))
    w = Worker(worker)
    outputs = []
    for spec in (spec_for(tflite_models, "tiny"), spec_with_tensor_names(tflite_models, "tiny")):
        assert w.load(tflite_models.path("tiny"), spec, env_text())["event"] == "loaded", spec
        outputs.append(decode(w.run(tmp_path / "x.npy")))
    w.close()
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_damaged_files_are_error_replies(worker, tflite_models, tmp_path):
    x = random_input(tflite_models, "tiny", seed=1)
    np.save(tmp_path / "x.npy", x)
    spec = spec_with_tensor_names(tflite_models, "tiny")
    (tmp_path / "bad").mkdir()
    w = Worker(worker)
    for what, path in damaged_copies(tflite_models.path("tiny"), tmp_path / "bad").items():
        reply = w.load(path, spec, env_text())
        assert reply["event"] == "error" and reply["stage"] == "load", (what, reply)
        assert str(path) in reply["message"], (what, reply)
    assert w.load(tflite_models.path("tiny"), spec, env_text())["event"] == "loaded"
    np.testing.assert_allclose(decode(w.run(tmp_path / "x.npy")),
                               onnx_reference(tflite_models, "tiny", x), atol=ATOL, rtol=RTOL)
    w.close()


def test_campaign_next_to_litert(deltann_bin, worker, tflite_models, tmp_path):
    """Two independent TFLite implementations on one model and one spec (signature names) in
    one campaign agree."""
    litert = worker.parent / "deltann-worker-tflite"
    if not litert.is_file():
        pytest.skip(f"{litert} was not generated; the campaign compares Arm NN with it")
    envs = ["tflite:opt=xnnpack,threads=1", "armnn"]
    db, run, _ = run_campaign(deltann_bin, worker, tflite_models, "tiny", envs,
                              [(8, 8), (8, 8), (11, 9)], tmp_path / "campaign")
    assert "2 variants run, 0 failed" in run.stderr, run.describe()
    variants = variants_by_env(db)
    assert sorted(variants) == sorted([env_text(), "tflite:opt=xnnpack,device=cpu,threads=1"])
    outputs = {}
    for env, variant in variants.items():
        assert variant["status"] == "done" and failures_of(db, variant["id"]) == [], env
        outputs[env] = {i: floats(r["output"]) for i, r in results_of(db, variant["id"]).items()}
    assert len(images_by_key(db)) == 3
    a, b = outputs.values()
    for image_id in a:
        np.testing.assert_allclose(a[image_id], b[image_id], atol=ATOL, rtol=RTOL)
