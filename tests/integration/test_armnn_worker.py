"""deltann-worker-armnn (Arm NN 20.08's TfLite parser on its CpuRef reference backend) over the
worker protocol and in a campaign next to LiteRT: on the same tiny TFLite models as
test_tflite_worker.py, fp16 precision stays close to ONNX Runtime's output on their tf2onnx twins
(fp32 against the reference engine, --describe: test_worker_conformance.py); quantised models,
shape mismatches and damaged files are error replies that leave the worker usable.

Skipped when the worker was not built (Debian's libarmnn-dev, libarmnntfliteparser-dev or
libarmnn-cpuref-backend22 missing) or the TensorFlow venv that makes the models is absent.
"""

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, damaged_tflite_copies, failures_of, floats,
                             images_by_key, output_of, results_of, run_tflite_campaign,
                             variants_by_env, worker_path)

# float32 engines sum in different orders: outputs agree to a few ulps of values below ~1.
ATOL = 1e-4
RTOL = 1e-4
FP16_ATOL = 2e-2  # fp16 arithmetic: ~3 significant digits on values below ~1


@pytest.fixture(scope="module")
def worker():
    return worker_path("armnn", "Arm NN not found at configure time")


def env_text(precision="fp32"):
    return f"armnn:opt=default,device=cpu,precision={precision},threads=1"


def spec_with_tensor_names(models, name):
    """models.spec's spec naming the tensors rather than their signature names."""
    spec = models.spec(name)
    spec["input"]["name"] = models.manifest[name]["input"]["tensor"]
    spec["output"]["name"] = models.manifest[name]["output"]["tensor"]
    return spec


@pytest.mark.parametrize("name", ["tiny", "prob1001"])
def test_fp16_stays_close_to_onnxruntime(worker, tflite_models, name, tmp_path):
    """precision=fp16 (fp32: the conformance suite, against the reference engine)."""
    x = tflite_models.random_input(name, seed=17)
    np.save(tmp_path / "x.npy", x)
    want = tflite_models.onnx_output(name, x)
    with WorkerClient(worker) as w:
        loaded = w.load(tflite_models.path(name), env_text("fp16"), tflite_models.spec(name))
        assert loaded["event"] == "loaded", loaded
        result = w.run(tmp_path / "x.npy", first=True, warmup=1, repeat=2)
        assert result["event"] == "result", result
        assert result["repeat_max_abs_diff"] == 0.0
        got = output_of(result)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=FP16_ATOL, rtol=0)


def test_refusals_are_load_errors(worker, tflite_models):
    with WorkerClient(worker) as w:
        spec = spec_with_tensor_names(tflite_models, "tiny")
        spec["input"].update(shape=[1, 3, 8, 8], layout="NCHW")
        reply = w.load(tflite_models.path("tiny"), env_text(), spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "[1,8,8,3]" in reply["message"] and "[1,3,8,8]" in reply["message"], reply
        spec = tflite_models.spec("tiny")
        spec["output"]["name"] = "no_such_tensor"
        reply = w.load(tflite_models.path("tiny"), env_text(), spec)
        assert reply["event"] == "error", reply
        io = tflite_models.manifest["tiny"]["output"]
        assert f"{io['tensor']} (signature name '{io['signature']}')" in reply["message"], reply
        reply = w.load(tflite_models.path("tiny_quant"), env_text(),
                       spec_with_tensor_names(tflite_models, "tiny_quant"))
        assert reply["event"] == "error" and "float32" in reply["message"], reply


def test_tensor_and_signature_names_both_select(worker, tflite_models, tmp_path):
    """Arm NN 20.08 knows only tensor names; the worker reads the signatures itself."""
    np.save(tmp_path / "x.npy", tflite_models.random_input("tiny", seed=2))
    with WorkerClient(worker) as w:
        outputs = []
        for spec in (tflite_models.spec("tiny"), spec_with_tensor_names(tflite_models, "tiny")):
            assert w.load(tflite_models.path("tiny"), env_text(), spec)["event"] == "loaded", spec
            outputs.append(output_of(w.run(tmp_path / "x.npy")))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_damaged_files_are_error_replies(worker, tflite_models, tmp_path):
    x = tflite_models.random_input("tiny", seed=1)
    np.save(tmp_path / "x.npy", x)
    spec = spec_with_tensor_names(tflite_models, "tiny")
    (tmp_path / "bad").mkdir()
    with WorkerClient(worker) as w:
        damaged = damaged_tflite_copies(tflite_models.path("tiny"), tmp_path / "bad")
        for what, path in damaged.items():
            reply = w.load(path, env_text(), spec)
            assert reply["event"] == "error" and reply["stage"] == "load", (what, reply)
            assert str(path) in reply["message"], (what, reply)
        assert w.load(tflite_models.path("tiny"), env_text(), spec)["event"] == "loaded"
        np.testing.assert_allclose(output_of(w.run(tmp_path / "x.npy")),
                                   tflite_models.onnx_output("tiny", x), atol=ATOL, rtol=RTOL)


def test_campaign_next_to_litert(deltann_bin, worker, tflite_models, tmp_path):
    """Two independent TFLite implementations on one model and one spec (signature names) in
    one campaign agree."""
    litert = worker.parent / "deltann-worker-tflite"
    if not litert.is_file():
        pytest.skip(f"{litert} was not generated; the campaign compares Arm NN with it")
    envs = ["tflite:opt=xnnpack,threads=1", "armnn"]
    db, run, _ = run_tflite_campaign(deltann_bin, worker, tflite_models, "tiny", envs,
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
