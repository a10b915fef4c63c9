"""deltann-worker-tensorflow (TensorFlow/Keras, a Python worker) over the worker protocol, the Keras
conversion steps (keras>tflite, keras>onnx, onnx>keras) and a campaign that chains them.

A tiny Keras 3 model made by tests/pylib/deltann_testmodels/make_keras_test_models.py (run with
the TensorFlow venv's Python) is run:

- by the worker as a .keras file and as a SavedModel folder, with xla=off and xla=on, against ONNX
  Runtime on its keras>onnx conversion and against Keras' own output;
- with onednn=off and threads=2 in a second worker, whose log says what TensorFlow reports, and
  which refuses a later load with other settings (they are fixed once TensorFlow has started);
- through keras>tflite (run by the tflite worker), keras>onnx (ONNX Runtime) and onnx>keras (back
  to .keras, run by this worker), and onnx>keras on an NCHW ONNX model (the layout change);
- in one `deltann run` with `tensorflow`, `ort@keras>onnx`, `tflite@keras>tflite` and
  `tensorflow@keras>onnx>keras`.

TensorFlow's import takes seconds, so each worker serves many requests. Skipped when the worker
was not generated (no .deps/venv-tf at configure time).
By hand: see tests/integration/conftest.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from deltann_testlib import (
    Deltann,
    WorkerClient,
    describe_worker,
    floats,
    onnxruntime_output,
    output_of,
    query,
    variants_by_env,
    worker_path,
    write_random_images,
)

ROOT = Path(__file__).resolve().parents[2]
CONVERT = ROOT / "python" / "deltann_tools" / "convert.py"
# float32 engines and converters agree with Keras to float32 rounding of a different summation
# order; the worst measured on the tiny model is ~1e-7 of the largest |logit| (docs/TENSORFLOW.md).
# 1e-5 still catches a wrong kernel or a lost bias, whose error is of the order of the output.
RTOL = 1e-5
WHY_MISSING = "no TensorFlow venv with tensorflow, keras and tf-keras at configure time; " \
              "see docs/TENSORFLOW.md"


def env_text(xla="off", onednn="on", threads=1):
    return f"tensorflow:xla={xla},onednn={onednn},device=cpu,threads={threads}"


def relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def worker():
    return worker_path("tensorflow", WHY_MISSING)


@pytest.fixture(scope="module")
def keras_model(tf_python, tmp_path_factory):
    """The folder make_keras_test_models.py wrote: tiny.keras, tiny_savedmodel/, tiny.spec.json,
    x.npy, keras.json (Keras' output on x)."""
    out = tmp_path_factory.mktemp("keras_models")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "pylib"))
    env.pop("PYTHONHOME", None)
    proc = subprocess.run([str(tf_python), "-m", "deltann_testmodels.make_keras_test_models",
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, f"make_keras_test_models failed:\n{proc.stderr[-3000:]}"
    return out


def keras_output(folder):
    return np.array(json.loads((folder / "keras.json").read_text())["output"], np.float32)


def convert(step, src, spec, out, knobs=""):
    """One conversion step by the project's tool; returns its report."""
    args = [sys.executable, str(CONVERT), "--step", step, "--in", str(src), "--spec", str(spec),
            "--out", str(out)] + (["--knobs", knobs] if knobs else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{step} failed:\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout)
    spec_out = Path(out).with_suffix(".spec.json")
    spec_out.write_text(json.dumps(report["spec"]))
    return report


@pytest.fixture(scope="module")
def keras_onnx(keras_model, tmp_path_factory):
    """tiny.keras converted by keras>onnx: (path, report)."""
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("keras_onnx") / "tiny.onnx"
    return out, convert("keras>onnx", keras_model / "tiny.keras", keras_model / "tiny.spec.json",
                        out)


def test_describe_names_the_engine_and_its_knobs(worker):
    d = describe_worker(worker)
    assert d["name"] == "tensorflow" and d["formats"] == ["keras"]
    knobs = {k["name"]: k for k in d["knobs"]}
    assert set(knobs) == {"xla", "onednn", "device", "threads"}
    assert knobs["xla"]["values"] == ["off", "on"] and knobs["xla"]["default"] == "off"
    assert knobs["onednn"]["values"] == ["off", "on"] and knobs["onednn"]["default"] == "on"
    assert knobs["device"]["values"] == ["cpu"]
    assert knobs["threads"]["default"] == "1"


def test_keras_file_and_savedmodel_match_onnxruntime_with_and_without_xla(worker, keras_model,
                                                                           keras_onnx, tmp_path):
    onnx_path, report = keras_onnx
    x = np.load(keras_model / "x.npy")
    want = onnxruntime_output(onnx_path, x, input_name=report["spec"]["input"]["name"])
    assert relative_difference(want, keras_output(keras_model)) < RTOL
    spec = json.loads((keras_model / "tiny.spec.json").read_text())
    with WorkerClient(worker) as w:
        # A SavedModel's outputs are named by its signature (Keras' export: output_0).
        saved_spec = dict(spec, output=dict(spec["output"], name="output_0"))
        for artifact, its_spec in ((keras_model / "tiny.keras", spec),
                                   (keras_model / "tiny_savedmodel", saved_spec)):
            for xla in ("off", "on"):
                loaded = w.load(artifact, env_text(xla=xla), its_spec)
                assert loaded["event"] == "loaded", (artifact, xla, loaded)
                result = w.run(keras_model / "x.npy", first=True, warmup=1, repeat=3)
                got = output_of(result)
                print(f"{artifact.name} xla={xla}: rel. diff vs ONNX Runtime "
                      f"{relative_difference(got, want):.2e}, first {result['first_ns'] / 1e6:.1f}"
                      f" ms, median {np.median(result['samples_ns']) / 1e3:.0f} us")
                assert relative_difference(got, want) < RTOL, (artifact, xla)
                assert result["repeat_max_abs_diff"] == 0.0
                assert len(result["samples_ns"]) == 3
        assert "oneDNN on (IsMklEnabled), intra-op threads 1, inter-op threads 1" in w.log()
        reply = w.load(keras_model / "tiny_savedmodel", env_text(), spec)
        assert reply["event"] == "error"
        assert "has no output named 'logits'; it has: output_0" in reply["message"]

        # The spec's layout must be the model's: an NCHW spec is refused, naming both shapes.
        nchw = dict(spec, input=dict(spec["input"], shape=[1, 3, 8, 8], layout="NCHW"))
        reply = w.load(keras_model / "tiny.keras", env_text(), nchw)
        assert reply["event"] == "error" and reply["stage"] == "load"
        assert "has shape [1,8,8,3] but the spec says [1,3,8,8] (NCHW)" in reply["message"]
        # Damaged and missing files are load errors naming the path; the worker goes on.
        junk = tmp_path / "junk.keras"
        junk.write_bytes(np.random.default_rng(3).integers(0, 256, 2048, np.uint8).tobytes())
        half = tmp_path / "half.keras"
        data = (keras_model / "tiny.keras").read_bytes()
        half.write_bytes(data[:len(data) // 2])
        for bad in (junk, half, tmp_path / "missing.keras", tmp_path):
            reply = w.load(bad, env_text(), spec)
            assert reply["event"] == "error" and str(bad) in reply["message"], reply
            assert w.run(keras_model / "x.npy")["event"] == "error"
        assert w.load(keras_model / "tiny.keras", env_text(), spec)["event"] == "loaded"
        assert relative_difference(output_of(w.run(keras_model / "x.npy")), want) < RTOL


def test_onednn_and_threads_are_applied_verified_and_fixed(worker, keras_model, keras_onnx):
    onnx_path, report = keras_onnx
    x = np.load(keras_model / "x.npy")
    want = onnxruntime_output(onnx_path, x, input_name=report["spec"]["input"]["name"])
    spec = json.loads((keras_model / "tiny.spec.json").read_text())
    with WorkerClient(worker) as w:
        loaded = w.load(keras_model / "tiny.keras", env_text(onednn="off", threads=2), spec)
        assert loaded["event"] == "loaded", loaded
        assert relative_difference(output_of(w.run(keras_model / "x.npy")), want) < RTOL
        # What TensorFlow itself reports, in the log the campaign keeps.
        assert "oneDNN off (IsMklEnabled), intra-op threads 2, inter-op threads 1" in w.log()
        for other, what in ((env_text(onednn="off", threads=1), "threads=1"),
                            (env_text(onednn="on", threads=2), "onednn=on")):
            reply = w.load(keras_model / "tiny.keras", other, spec)
            assert reply["event"] == "error" and what in reply["message"], reply
            assert "cannot change in a running process" in reply["message"]
        reply = w.load(keras_model / "tiny.keras", env_text(onednn="off", threads=2) + "x", spec)
        assert reply["event"] == "error"


def tflite_output(model, spec, x_path):
    worker = worker_path("tflite", "no TensorFlow venv with ai-edge-litert at configure time")
    with WorkerClient(worker) as w:
        assert w.load(model, "tflite:opt=xnnpack,device=cpu,threads=1", spec)["event"] == "loaded"
        return output_of(w.run(x_path))


def test_keras_conversions_keep_the_outputs(worker, keras_model, keras_onnx, tmp_path):
    want = keras_output(keras_model)
    onnx_path, report = keras_onnx
    assert report["spec"]["input"] == {**report["spec"]["input"], "name": "image",
                                       "shape": [1, 8, 8, 3], "layout": "NHWC"}
    assert "layout kept (NHWC" in report["notes"][0]

    tflite = tmp_path / "tiny.tflite"
    report = convert("keras>tflite", keras_model / "tiny.keras", keras_model / "tiny.spec.json",
                     tflite)
    assert report["spec"]["input"]["shape"] == [1, 8, 8, 3]
    assert report["spec"]["input"]["layout"] == "NHWC"
    assert any(n.startswith("quantize=none") for n in report["notes"])
    got = tflite_output(tflite, report["spec"], keras_model / "x.npy")
    print(f"keras>tflite: rel. diff vs Keras {relative_difference(got, want):.2e}")
    assert relative_difference(got, want) < RTOL

    back = tmp_path / "tiny_back.keras"
    report = convert("onnx>keras", onnx_path, onnx_path.with_suffix(".spec.json"), back)
    assert report["spec"]["input"]["layout"] == "NHWC"
    assert "tf_keras model saved as .keras" in report["notes"][1]
    with WorkerClient(worker) as w:
        assert w.load(back, env_text(), report["spec"])["event"] == "loaded"
        got = output_of(w.run(keras_model / "x.npy"))
    print(f"keras>onnx>keras: rel. diff vs Keras {relative_difference(got, want):.2e}")
    assert relative_difference(got, want) < RTOL


def test_onnx_to_keras_turns_nchw_into_nhwc(worker, models, tmp_path):
    spec_path = models.tiny.with_suffix(".spec.json")
    spec = json.loads(spec_path.read_text())
    n, c, h, w_ = spec["input"]["shape"]
    out = tmp_path / "tiny_classifier.keras"
    report = convert("onnx>keras", models.tiny, spec_path, out)
    assert report["spec"]["input"]["layout"] == "NHWC"
    assert report["spec"]["input"]["shape"] == [n, h, w_, c]
    assert "turned the NCHW input" in report["notes"][0]
    x = np.random.default_rng(5).uniform(-1, 1, [n, c, h, w_]).astype(np.float32)
    want = onnxruntime_output(models.tiny, x, input_name=spec["input"]["name"])
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    with WorkerClient(worker) as w:
        assert w.load(out, env_text(), report["spec"])["event"] == "loaded"
        got = output_of(w.run(tmp_path / "x.npy"))
    print(f"onnx>keras (NCHW -> NHWC): rel. diff vs ONNX Runtime "
          f"{relative_difference(got, want):.2e}")
    assert relative_difference(got, want) < RTOL


def test_campaign_runs_keras_chains(deltann_bin, worker, keras_model, tmp_path):
    worker_path("tflite", "no TensorFlow venv with ai-edge-litert at configure time")
    model = tmp_path / "tiny.keras"
    model.write_bytes((keras_model / "tiny.keras").read_bytes())
    (tmp_path / "tiny.spec.json").write_text((keras_model / "tiny.spec.json").read_text())
    write_random_images(tmp_path / "images", [(20, 16), (9, 12)], seed=5)
    deltann = Deltann(deltann_bin, tmp_path / "cache")
    db = tmp_path / "campaign.db"
    envs = ["tensorflow:threads=1", "ort@keras>onnx:threads=1", "tflite@keras>tflite:threads=1",
            "tensorflow@keras>onnx>keras:xla=on,threads=1"]
    args = ["run", "--model", model, "--images", tmp_path / "images", "--db", db, "--repeat", 1]
    for env in envs:
        args += ["--env", env]
    deltann.run(*args, env={"DELTANN_WORKER_DIR": str(worker.parent)})
    variants = variants_by_env(db)
    assert len(variants) == len(envs), variants
    outputs = {}
    for env, variant in variants.items():
        rows = query(db, "SELECT output FROM results WHERE variant_id = ? ORDER BY image_id",
                     (variant["id"],))
        assert len(rows) == 2, (env, rows)
        outputs[env] = np.concatenate([floats(r["output"]) for r in rows])
    base = next(o for e, o in outputs.items() if e.startswith("tensorflow:"))
    for env, out in outputs.items():
        assert relative_difference(out, base) < RTOL, env


@pytest.mark.long
def test_keras_study_model_campaign(deltann_bin, worker, tf_python, tmp_path):
    """The study's direction on a real architecture: keras.applications' MobileNetV2 exported by
    export_keras_study_models.py, run in TensorFlow and through keras>onnx and keras>tflite on
    the demo photos; every float32 variant agrees with TensorFlow within 1e-4 of the largest
    logit (minutes: TensorFlow starts once per variant, and the converters run)."""
    worker_path("tflite", "no TensorFlow venv with ai-edge-litert at configure time")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    env.pop("PYTHONHOME", None)
    proc = subprocess.run([str(tf_python), "-m", "deltann_tools.export_keras_study_models",
                           "--out", str(tmp_path), "--models", "mobilenet_v2"],
                          capture_output=True, text=True, timeout=1800, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = tmp_path / "keras_mobilenet_v2" / "keras_mobilenet_v2.keras"
    deltann = Deltann(deltann_bin, tmp_path / "cache")
    db = tmp_path / "campaign.db"
    envs = ["tensorflow:threads=1", "tensorflow:xla=on,threads=1", "ort@keras>onnx:threads=1",
            "tflite@keras>tflite:threads=1"]
    args = ["run", "--model", model, "--images", tmp_path / "images.txt", "--db", db,
            "--repeat", 1]
    for e in envs:
        args += ["--env", e]
    deltann.run(*args, env={"DELTANN_WORKER_DIR": str(worker.parent)}, timeout=3600)
    outputs = {}
    for name, variant in variants_by_env(db).items():
        rows = query(db, "SELECT output FROM results WHERE variant_id = ? ORDER BY image_id",
                     (variant["id"],))
        assert len(rows) == 9, (name, len(rows))
        outputs[name] = np.concatenate([floats(r["output"]) for r in rows])
    assert len(outputs) == len(envs)
    base = next(o for e, o in outputs.items() if e.startswith("tensorflow:") and "xla=off" in e)
    for name, out in outputs.items():
        print(f"{name}: rel. diff vs TensorFlow {relative_difference(out, base):.2e}")
        assert relative_difference(out, base) < 1e-4, name
