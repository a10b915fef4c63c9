"""deltann-worker-openvino (docs/OPENVINO.md) driven over the worker protocol (docs/PROTOCOL.md)
and through `deltann run`, checked against ONNX Runtime (and, for TFLite, TensorFlow Lite):

- --describe offers a precision only as the CPU supports it (the rest of --describe, bad files
  and tensor shapes: test_worker_conformance.py);
- f32 output equals ONNX Runtime's within ATOL/RTOL at both hints and 1 and 2 threads;
- bf16 / f16 output is near ONNX Runtime's (LOW_PRECISION_REL) but not bit-identical to f32 (so
  the knob really changes the computation); a precision the CPU lacks is skipped, saying so;
- a model with a dynamic batch dimension is reshaped to the spec; a spec shape the model does
  not declare is a load error;
- a TFLite model (made with TensorFlow from .deps/venv-tf, skipped without it) matches the
  TFLite interpreter;
- a campaign runs OpenVINO variants next to ONNX Runtime, and on the demo model and photos both
  engines give the same top-1 on every photo from byte-identical preprocessed tensors.

Skipped when the worker was not built (the openvino wheel missing at configure time). By hand:
DELTANN_BIN=$PWD/build/x/deltann DELTANN_BUILD_DIR=$PWD/build/x DELTANN_SOURCE_DIR=$PWD \
PYTHONPATH=python:tests/pylib .deps/venv/bin/python -m pytest tests/integration/test_openvino_worker.py
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, describe_worker, floats, onnxruntime_output,
                             output_of, query, results_of, top_ids, variants_by_env, worker_path,
                             write_random_images)

# f32: OpenVINO's CPU kernels order float sums differently from ONNX Runtime's; the tiny model's
# logits are O(100) and the differences seen are ~1e-5.
ATOL, RTOL = 1e-4, 1e-4
# bf16 keeps 8 significant bits (relative step 2^-8 = 0.4%) and f16 11; inputs, weights and
# activations are each rounded, so a logit may move by a few steps of its inputs' magnitude.
# Measured on the tiny model: bf16 within 0.25% of the largest |logit|. Bound: 3% of it.
LOW_PRECISION_REL = 3e-2
# Demo model (EfficientNet-Lite0, 1000 logits) at f32; measured max |d| 1.1e-5 against ORT.
DEMO_ATOL, DEMO_RTOL = 1e-3, 1e-4
ORT_ENV = "ort:opt=all,device=cpu,threads=1"


def ov_env(precision="f32", threads=1, hint="latency"):
    """The canonical environment string (opt, device, precision, threads, then hint)."""
    return f"openvino:opt=default,device=cpu,precision={precision},threads={threads},hint={hint}"


@pytest.fixture(scope="module")
def worker():
    return worker_path("openvino", "the openvino wheel was not found at configure time")


@pytest.fixture(scope="module")
def described(worker):
    return describe_worker(worker)


def precisions(described):
    """The precisions this CPU runs: every value the knob lists minus those marked unavailable."""
    knob = next(k for k in described["knobs"] if k["name"] == "precision")
    return [v for v in knob["values"] if v not in knob.get("unavailable", {})]


def run_once(worker, artifact, env, spec, tensor):
    """Loads `artifact` under `env` in a fresh worker, runs `tensor`, returns the output."""
    with WorkerClient(worker) as w:
        loaded = w.load(artifact, env, spec)
        assert loaded["event"] == "loaded", loaded
        assert loaded["load_ns"] > 0 and loaded["engine_version"]
        result = w.run(tensor)
        assert result["first_ns"] > 0 and len(result["samples_ns"]) == 3, result
    return output_of(result)


def tiny_spec(models):
    return json.loads(models.tiny.with_suffix(".spec.json").read_text())


@pytest.fixture(scope="module")
def tiny_input(models, tmp_path_factory):
    """A random non-integer input for tiny_classifier (so every rounding to bf16/f16 shows)."""
    x = np.random.default_rng(7).uniform(0, 255, tiny_spec(models)["input"]["shape"])
    x = x.astype(np.float32)
    path = tmp_path_factory.mktemp("openvino_input") / "x.npy"
    np.save(path, x)
    return x, path


# --- describe ---------------------------------------------------------------------------------

def test_precision_is_offered_only_where_the_cpu_has_it(described):
    """f32 always; a lower precision the CPU plugin does not report is listed as unavailable,
    saying so (the knob's values, defaults and the rest of --describe: the conformance suite)."""
    knob = next(k for k in described["knobs"] if k["name"] == "precision")
    for value, why in knob.get("unavailable", {}).items():
        assert value != "f32" and "does not report" in why


# --- outputs against ONNX Runtime -------------------------------------------------------------

@pytest.mark.parametrize("hint", ["latency", "throughput"])
@pytest.mark.parametrize("threads", [1, 2])
def test_f32_matches_onnxruntime(worker, models, tiny_input, hint, threads):
    x, path = tiny_input
    got = run_once(worker, models.tiny, ov_env("f32", threads, hint), tiny_spec(models), path)
    want = onnxruntime_output(models.tiny, x)
    assert got.shape == want.shape == (tiny_spec(models)["output"]["classes"],)
    print(f"f32 {hint} threads={threads}: max |d| vs ORT {np.max(np.abs(got - want)):.3g}")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_lower_precision_is_close_but_not_f32(worker, described, models, tiny_input, precision):
    if precision not in precisions(described):
        pytest.skip(f"OpenVINO's CPU plugin does not report {precision} support on this CPU "
                    f"(precision values here: {precisions(described)})")
    x, path = tiny_input
    got = run_once(worker, models.tiny, ov_env(precision), tiny_spec(models), path)
    f32 = run_once(worker, models.tiny, ov_env("f32"), tiny_spec(models), path)
    want = onnxruntime_output(models.tiny, x)
    bound = LOW_PRECISION_REL * np.max(np.abs(want))
    print(f"{precision}: max |d| vs ORT {np.max(np.abs(got - want)):.3g}, bound {bound:.3g}")
    assert np.all(np.abs(got - want) <= bound), (got, want)
    assert not np.array_equal(got, f32), f"{precision} gave exactly the f32 output"


def test_unsupported_precision_is_refused_by_the_worker(worker, described, models, tiny_input):
    """A precision the CPU lacks must not be run under another precision's name."""
    missing = [p for p in ("bf16", "f16") if p not in precisions(described)]
    if not missing:
        pytest.skip("this CPU supports every precision (bf16 and f16)")
    with WorkerClient(worker) as w:
        reply = w.load(models.tiny, ov_env(missing[0]), tiny_spec(models))
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert f"precision '{missing[0]}' is not supported" in reply["message"], reply


def test_more_threads_than_the_plugin_uses_is_refused(worker, models):
    """The CPU plugin caps its threads at the cores it sees; a variant must not be recorded
    under a thread count it did not run with. No machine here has 512 cores."""
    with WorkerClient(worker) as w:
        reply = w.load(models.tiny, ov_env(threads=512), tiny_spec(models))
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "asked for 512 threads but uses" in reply["message"], reply


def test_dynamic_batch_is_reshaped_to_the_spec(worker, models, tiny_input, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(models.tiny))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, str(dynamic))
    x, path = tiny_input
    got = run_once(worker, dynamic, ov_env(), tiny_spec(models), path)
    np.testing.assert_allclose(got, onnxruntime_output(dynamic, x), atol=ATOL, rtol=RTOL)


# --- errors -----------------------------------------------------------------------------------

def test_wrong_input_shape_is_a_load_error(worker, models):
    spec = tiny_spec(models)
    spec["input"].update(shape=[1, 3, 16, 16], resize=16, crop=16)
    with WorkerClient(worker) as w:
        reply = w.load(models.tiny, ov_env(), spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "[1,3,16,16]" in reply["message"] and "[1,3,8,8]" in reply["message"], reply


# --- TFLite -----------------------------------------------------------------------------------

TFLITE_SCRIPT = r"""
# Builds a tiny NHWC Keras classifier, converts it to float32 TFLite and runs the TFLite
# interpreter on the input; argv: out_model input.npy out_output.npy
import sys
import numpy as np
import tensorflow as tf
tf.keras.utils.set_random_seed(5)
inputs = tf.keras.Input(shape=(8, 8, 3), batch_size=1)
y = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
y = tf.keras.layers.GlobalAveragePooling2D()(y)
model = tf.keras.Model(inputs, tf.keras.layers.Dense(5)(y))
blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
open(sys.argv[1], "wb").write(blob)
interpreter = tf.lite.Interpreter(model_content=blob)
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.load(sys.argv[2]))
interpreter.invoke()
np.save(sys.argv[3], interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
"""


def test_tflite_model_matches_tflite_interpreter(worker, source_dir, tmp_path):
    tf_python = Path(os.environ.get("DELTANN_TF_PYTHON")
                     or source_dir / ".deps" / "venv-tf" / "bin" / "python")
    if not tf_python.is_file():
        pytest.skip(f"no TensorFlow Python at {tf_python} to make a TFLite model "
                    "(set DELTANN_TF_PYTHON)")
    x = np.random.default_rng(9).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "make_tflite.py"
    script.write_text(TFLITE_SCRIPT)
    model, want_path = tmp_path / "tiny.tflite", tmp_path / "want.npy"
    proc = subprocess.run([str(tf_python), str(script), str(model), str(tmp_path / "x.npy"),
                           str(want_path)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "No module named 'tensorflow'" in proc.stderr:
        pytest.skip(f"{tf_python} has no tensorflow")
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = {"name": "tiny_tflite",
            "input": {"shape": [1, 8, 8, 3], "layout": "NHWC", "resize": 8, "crop": 8,
                      "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]},
            "output": {"classes": 5, "label_offset": 0, "kind": "logits"}}
    got = run_once(worker, model, ov_env(), spec, tmp_path / "x.npy")
    np.testing.assert_allclose(got, np.load(want_path).ravel(), atol=ATOL, rtol=RTOL)


# --- through `deltann run` --------------------------------------------------------------------

@pytest.fixture
def openvino_deltann(deltann):
    """The `deltann` runner; skips where its engines do not include openvino."""
    proc = deltann.run("backends", "--json")
    names = [b.get("name") for b in json.loads(proc.stdout)]
    if "openvino" not in names:
        pytest.skip(f"`deltann backends --json` does not list openvino (lists: {', '.join(names)})")
    return deltann


def test_campaign_runs_openvino_next_to_onnxruntime(openvino_deltann, models, tmp_path):
    images = tmp_path / "images"
    write_random_images(images, [(8, 8), (12, 10), (16, 16)], seed=21)
    db = tmp_path / "c.db"
    envs = [ov_env("f32", 1, "latency"), ov_env("f32", 2, "throughput")]
    result = openvino_deltann.run(
        "run", "--model", models.tiny, "--images", images, "--db", db, "--env", "ort",
        "--env", "openvino", "--env", "openvino:threads=2,hint=throughput",
        "--repeat", 2, "--warmup", 0, "--quiet")
    variants = variants_by_env(db)
    assert set(variants) == {ORT_ENV, *envs}, result.describe()
    ort_results = results_of(db, variants[ORT_ENV]["id"])
    assert len(ort_results) == 3
    for env in envs:
        assert variants[env]["status"] == "done", result.describe()
        got = results_of(db, variants[env]["id"])
        assert set(got) == set(ort_results)
        for image_id, ref in ort_results.items():
            np.testing.assert_allclose(floats(got[image_id]["output"]), floats(ref["output"]),
                                       atol=ATOL, rtol=RTOL)
    # An invalid knob value is refused before any work, naming the valid values.
    refused = openvino_deltann.run("run", "--model", models.tiny, "--images", images, "--db",
                                   tmp_path / "r.db", "--env", "openvino:hint=fastest",
                                   expect_rc=None)
    assert refused.returncode != 0 and "latency, throughput" in refused.stderr, refused.describe()


def test_precision_this_cpu_lacks_is_skipped_in_a_campaign(openvino_deltann, described, models,
                                                           tmp_path):
    """bf16/f16 are valid everywhere but run only where the CPU has them: elsewhere the variant is
    skipped with the reason and the rest of the campaign runs."""
    missing = [p for p in ("bf16", "f16") if p not in precisions(described)]
    if not missing:
        pytest.skip("this CPU supports every precision (bf16 and f16)")
    images = tmp_path / "images"
    write_random_images(images, [(8, 8)], seed=3)
    db = tmp_path / "p.db"
    openvino_deltann.run("run", "--model", models.tiny, "--images", images, "--db", db,
                         "--env", "openvino", "--env", f"openvino:precision={missing[0]}",
                         "--repeat", 1, "--warmup", 0, "--quiet")
    variants = variants_by_env(db)
    # A variant skipped at plan time keeps the environment as written (it was never resolved).
    skipped = variants[f"openvino:precision={missing[0]}"]
    assert skipped["status"] == "skipped" and variants[ov_env()]["status"] == "done"
    message = query(db, "SELECT message FROM failures WHERE variant_id = ?",
                    (skipped["id"],))[0]["message"]
    assert f"precision={missing[0]} cannot run on this machine" in message, message


def test_demo_model_same_top1_as_ort(openvino_deltann, source_dir, tmp_path):
    demo = Path(os.environ.get("DELTANN_DEMO_DIR") or source_dir / "assets" / "demo")
    model = demo / "efficientnet-lite0.onnx"
    if not model.is_file() or not (demo / "images.txt").is_file():
        pytest.skip(f"no demo model in {demo} (set DELTANN_DEMO_DIR; scripts/setup makes it)")
    db = tmp_path / "demo.db"
    result = openvino_deltann.run("run", "--model", model, "--images", demo / "images.txt",
                                  "--db", db, "--env", "openvino:precision=f32",
                                  "--env", "ort:opt=all", "--repeat", 1, "--warmup", 0,
                                  "--quiet", timeout=300)
    variants = variants_by_env(db)
    ov_row, ort_row = variants[ov_env()], variants[ORT_ENV]
    assert ov_row["status"] == "done" and ort_row["status"] == "done", result.describe()
    ov_results, ort_results = results_of(db, ov_row["id"]), results_of(db, ort_row["id"])
    assert set(ov_results) == set(ort_results) and len(ort_results) >= 1
    keys = {row["id"]: row["key"] for row in query(db, "SELECT id, key FROM images")}
    differing = []
    for image_id, ref in ort_results.items():
        want, got = floats(ref["output"]), floats(ov_results[image_id]["output"])
        o, v = top_ids(ref)[0], top_ids(ov_results[image_id])[0]
        print(f"{keys[image_id]}: openvino top-1 {v}, ort top-1 {o}, "
              f"max |d| {float(np.max(np.abs(got - want))):.3g}")
        assert np.all(np.abs(got - want) <= DEMO_ATOL + DEMO_RTOL * np.abs(want)), keys[image_id]
        if v != o:
            differing.append(keys[image_id])
    assert differing == [], f"expected OpenVINO f32 and ORT to agree on every photo: {differing}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
