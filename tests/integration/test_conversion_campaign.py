"""Conversion chains inside a deltann campaign (docs/CONVERSIONS.md): planning (unknown steps,
chains the engine cannot load, missing sources, conversion knobs), conversion as a cached build
step with the tool and its version stored with the variant, a failed conversion as a finding at
stage "convert" while the rest runs, NHWC artifacts fed NHWC tensors, and the TFLite converter's
weight quantisation detected by `deltann compare` on the real demo model.

The module shares one artifact cache, so each conversion runs once. Skipped with the reason where
an engine the test needs is not built.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import (Deltann, failures_of, floats, query, results_of, variants_by_env,
                             write_random_images)

# Float32 conversions change summation order and fuse constants; on the tiny model (logits
# O(10)) and the demo model (logits up to ~20) outputs agree to ~1e-5. Allow this much.
FLOAT_ATOL = 1e-3


@pytest.fixture(scope="module")
def engines(deltann_bin):
    import subprocess
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {b["name"] for b in json.loads(proc.stdout)}


def need(engines, *names):
    missing = [n for n in names if n not in engines]
    if missing:
        pytest.skip(f"engines not built here: {', '.join(missing)}")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("conversion")


@pytest.fixture(scope="module")
def dl(deltann_bin, work):
    """A Deltann whose artifact cache is shared by the module's campaigns."""
    (work / "cache").mkdir(exist_ok=True)
    return Deltann(deltann_bin, work / "cache", timeout=600)


@pytest.fixture(scope="module")
def images(work):
    folder = work / "images"
    write_random_images(folder, [(64, 48), (50, 70), (80, 80)], seed=7)
    return folder


def run(dl, model, images, db, *envs, expect_rc=0, extra=()):
    args = ["run", "--model", model, "--images", images, "--db", db, "--repeat", 1,
            "--warmup", 0]
    for env in envs:
        args += ["--env", env]
    return dl.run(*args, *extra, expect_rc=expect_rc)


def outputs(db, env):
    variant = variants_by_env(db)[env]
    return {image: np.array(floats(r["output"]))
            for image, r in results_of(db, variant["id"]).items()}


def test_unknown_step_stops_the_plan(dl, models, images, work, engines):
    need(engines, "ort")
    result = run(dl, models.tiny, images, work / "unknown.db", "ort@onnx>caffe>onnx",
                 expect_rc=None)
    assert result.returncode != 0
    assert "no conversion onnx>caffe" in result.stderr and "onnx>tflite" in result.stderr


def test_chain_must_end_in_what_the_engine_loads(dl, models, images, work, engines):
    need(engines, "tflite")
    result = run(dl, models.tiny, images, work / "end.db", "tflite@onnx>torchscript",
                 expect_rc=None)
    assert result.returncode != 0
    assert "ends in torchscript but tflite loads tflite" in result.stderr


def test_conversion_knob_needs_a_chain_that_reads_it(dl, models, images, work, engines):
    need(engines, "ort")
    result = run(dl, models.tiny, images, work / "knob.db", "ort:quantize=dynamic",
                 expect_rc=None)
    assert result.returncode != 0 and "quantize" in result.stderr


def test_unrunnable_variants_are_skipped_with_the_reason(dl, models, images, work, engines):
    need(engines, "ort", "tflite")
    db = work / "skips.db"
    run(dl, models.tiny, images, db, "ort:threads=1", "ort@pytorch>onnx", "tflite:threads=1")
    variants = variants_by_env(db)
    by_framework = {}
    for env, v in variants.items():
        by_framework.setdefault(v["framework"], []).append(v)
    skipped = {v["env"]: failures_of(db, v["id"]) for v in variants.values()
               if v["status"] == "skipped"}
    assert len(skipped) == 2, variants.keys()
    messages = " | ".join(f["message"] for fs in skipped.values() for f in fs)
    assert "no pytorch form" in messages and '"sources"' in messages
    assert "tflite loads tflite, not onnx" in messages and "tflite@onnx>tflite" in messages
    assert variants["ort:opt=all,device=cpu,threads=1"]["status"] == "done"


@pytest.fixture(scope="module")
def tiny_chain(dl, models, images, work, engines):
    """The tiny model through ONNX -> TFLite (run by LiteRT) and ONNX -> TFLite -> ONNX."""
    need(engines, "ort", "tflite")
    db = work / "tiny_chain.db"
    result = run(dl, models.tiny, images, db, "ort:opt=disable,threads=1",
                 "tflite@onnx>tflite:threads=1", "ort@onnx>tflite>onnx:opt=disable,threads=1")
    return db, result


def test_tflite_conversion_matches_the_source_model(tiny_chain):
    db, _ = tiny_chain
    variants = variants_by_env(db)
    assert all(v["status"] == "done" for v in variants.values()), variants
    reference = outputs(db, "ort:opt=disable,device=cpu,threads=1")
    assert len(reference) == 3
    got = outputs(db, "tflite@onnx>tflite:opt=xnnpack,device=cpu,threads=1,quantize=none")
    assert got.keys() == reference.keys()
    for image, expected in reference.items():
        np.testing.assert_allclose(got[image], expected, atol=FLOAT_ATOL, rtol=0)


def test_round_trip_through_tf2onnx_loses_the_classifier_bias(tiny_chain, models):
    """A converter fault deltann found: tf2onnx 1.17 turns the TFLite FULLY_CONNECTED that ends
    the graph into a MatMul without its bias, so the round trip onnx>tflite>onnx shifts every
    logit by minus the classifier's bias (the TFLite model in between still has it: see the test
    above). docs/CONVERSIONS.md has the details."""
    import onnx
    from onnx import numpy_helper

    db, _ = tiny_chain
    reference = outputs(db, "ort:opt=disable,device=cpu,threads=1")
    got = outputs(db, "ort@onnx>tflite>onnx:opt=disable,device=cpu,threads=1,quantize=none")
    assert got.keys() == reference.keys()
    bias = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(models.tiny)).graph.initializer}
    fc_bias = bias["fc_b"].astype(np.float64)
    assert np.abs(fc_bias).max() > 10 * FLOAT_ATOL  # the shift is visible at all
    for image, expected in reference.items():
        np.testing.assert_allclose(got[image] - expected, -fc_bias, atol=FLOAT_ATOL, rtol=0)


def test_conversion_tools_are_stored_with_the_variant(tiny_chain):
    db, _ = tiny_chain
    v = variants_by_env(db)["ort@onnx>tflite>onnx:opt=disable,device=cpu,threads=1,quantize=none"]
    build = json.loads(v["build_json"])
    steps = build["conversion"]
    assert [s["step"] for s in steps] == ["onnx>tflite", "tflite>onnx"]
    assert "onnx2tf" in steps[0]["tool"] and "tf2onnx" in steps[1]["tool"]
    assert all(s["tool_version"] for s in steps)
    assert v["compile_ns"] > 0


def test_tflite_variant_gets_nhwc_tensors(tiny_chain, dl):
    """onnx2tf makes an NHWC model; the campaign prepares NHWC tensors for it."""
    db, _ = tiny_chain
    v = variants_by_env(db)["tflite@onnx>tflite:opt=xnnpack,device=cpu,threads=1,quantize=none"]
    assert failures_of(db, v["id"]) == []
    shapes = set()
    for npy in (dl.cache_dir).rglob("*.npy"):
        shapes.add(np.load(npy, mmap_mode="r").shape)
    assert any(s[-1] == 3 for s in shapes) and any(len(s) == 4 and s[1] == 3 for s in shapes)


def test_second_campaign_reuses_converted_artifacts(tiny_chain, dl, models, images, work):
    db = work / "tiny_chain_again.db"
    result = run(dl, models.tiny, images, db, "ort@onnx>tflite>onnx:opt=disable,threads=1")
    assert "onnx>tflite by" in result.stderr and "from the cache" in result.stderr, result.stderr
    assert " in " not in [line.split(":")[-1][:4] for line in result.stderr.splitlines()
                          if "onnx>tflite by" in line]


def test_failed_conversion_is_a_finding_and_the_rest_runs(dl, models, images, work, engines):
    need(engines, "ort")
    model = work / "broken_source" / "tiny.onnx"
    model.parent.mkdir()
    shutil.copy(models.tiny, model)
    spec = json.loads(models.tiny.with_suffix(".spec.json").read_text())
    spec["sources"] = {"pytorch": {"file": "weights.pth", "architecture": "mobilenet_v2"}}
    (model.parent / "weights.pth").write_bytes(b"not a state_dict at all")
    model.with_suffix(".spec.json").write_text(json.dumps(spec))
    db = work / "broken.db"
    result = run(dl, model, images, db, "ort:threads=1", "ort@pytorch>onnx:threads=1")
    variants = variants_by_env(db)
    broken = variants["ort@pytorch>onnx:opt=all,device=cpu,threads=1,opset=13"]
    assert broken["status"] == "failed"
    failure = failures_of(db, broken["id"])
    assert [f["stage"] for f in failure] == ["convert"]
    assert "pytorch>onnx" in failure[0]["message"] and "weights.pth" in failure[0]["message"]
    assert variants["ort:opt=all,device=cpu,threads=1"]["status"] == "done"
    assert "1 failed" in result.stderr


def test_quantising_conversion_is_detected_on_the_demo_model(dl, work, engines, source_dir):
    """The study's fault on purpose: the TFLite converter quantises the weights to int8; compare
    reports the quantised variant as numerically different from the float one, and tf2onnx's
    ONNX of the quantised TFLite carries the same loss."""
    need(engines, "ort", "tflite")
    demo_dir = Path(os.environ.get("DELTANN_DEMO_DIR") or source_dir / "assets" / "demo")
    if not (demo_dir / "efficientnet-lite0.onnx").is_file():
        pytest.skip(f"no demo model in {demo_dir} (run scripts/setup)")
    db = work / "quantised.db"
    float_env = "tflite@onnx>tflite:opt=xnnpack,device=cpu,threads=1,quantize=none"
    quant_env = "tflite@onnx>tflite:opt=xnnpack,device=cpu,threads=1,quantize=dynamic"
    back_env = "ort@onnx>tflite>onnx:opt=all,device=cpu,threads=1,quantize=dynamic"
    run(dl, demo_dir / "efficientnet-lite0.onnx", demo_dir / "images.txt", db,
        "ort:threads=1", "tflite@onnx>tflite:threads=1",
        "tflite@onnx>tflite:quantize=dynamic,threads=1",
        "ort@onnx>tflite>onnx:quantize=dynamic,threads=1")
    report = json.loads(dl.run("compare", "--db", db, "--json").stdout)
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}

    def pair(a, b):
        return pairs.get((a, b)) or pairs[(b, a)]

    ort = "ort:opt=all,device=cpu,threads=1"
    assert pair(ort, float_env)["max_abs_diff"] < FLOAT_ATOL
    quantised = pair(ort, quant_env)
    assert quantised["max_abs_diff"] > 50 * FLOAT_ATOL, quantised
    assert pair(ort, back_env)["max_abs_diff"] > 50 * FLOAT_ATOL
    flagged = [f for f in report["findings"]
               if f["kind"] in ("numeric_difference", "label_difference")
               and quant_env in json.dumps(f)]
    assert flagged, [f["kind"] for f in report["findings"]]
