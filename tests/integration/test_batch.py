"""Batch inference as a knob (docs/ENVIRONMENTS.md and docs/PROTOCOL.md, "Batches"): ONNX Runtime,
OpenCV DNN and OpenVINO, each at batch=1 and batch=3 on the demo EfficientNet-Lite0, whose batch
dimension is fixed at 1 (the campaign opens it), over five demo photos into one database. Three
photos are timed, so the timed ones make one full batch and the two others a short one (run short
by ONNX Runtime and OpenCV, padded to three by OpenVINO, which compiles for a fixed batch).

- every photo has a result in both variants, with the same top-1 label and outputs within
  REL of the largest |logit|;
- the timed photos have `--repeat` samples each at both batch sizes, the others none;
- the variant's text carries batch=3 (batch=1 is left out, so older variant names stay), and
  `compare` pairs the two variants on the axis `batch`;
- an engine that does not declare the knob refuses batch=2 before anything runs;
- on the test engine, whose output for an image depends on that image only, batches of 2 and 8
  give every image the output it has at batch 1, bit for bit; a batch that fails (an error, a
  crash) is recorded for each of its images, naming the batch, and the others go on.

A test is skipped where its engine was not built or the demo model is missing.
"""
import json
import shutil

import numpy as np
import pytest

from deltann_testlib import (
    failures_of,
    floats,
    int64s,
    query,
    results_of,
    variants_by_env,
    write_random_images,
)

PHOTOS = ["squirrel_cls.jpg", "apple.jpg", "baboon.jpg", "orange.jpg", "coffee.png"]
TIMED = 3
REPEAT = 2
BATCH = 3
# Batching may change how an engine's kernels block their loops (the Gemm sees 3 rows instead of
# 1), and so the order in which sums are added: float32 rounding. Measured 0 here (ONNX Runtime
# 1.32, OpenCV 4.6 and OpenVINO 2026.4 on this CPU give batch 3 the same bits as batch 1). 1e-4
# of the largest |logit|, the conformance suite's bound for float32 engines, leaves room for
# other CPUs' kernels and still catches a batch whose images were mixed up, whose logits differ
# by the order of the logits themselves.
REL = 1e-4


@pytest.fixture(scope="module")
def demo(demo_folder):
    return demo_folder, demo_folder / "efficientnet-lite0.onnx"


def require_engine(deltann, name):
    names = {b["name"] for b in json.loads(deltann.run("backends", "--json").stdout)}
    if name not in names:
        pytest.skip(f"the engine {name} is not built here")


def photos(demo, folder):
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(demo[0] / "images" / name, folder / name)
    return folder


@pytest.mark.parametrize("engine", ["ort", "opencv", "openvino"])
def test_batch_three_matches_batch_one(deltann, demo, engine, tmp_path):
    require_engine(deltann, engine)
    db = tmp_path / "batch.db"
    r = deltann.run("run", "--model", demo[1], "--images", photos(demo, tmp_path / "photos"),
                    "--db", db, "--env", f"{engine}:threads=1",
                    "--env", f"{engine}:threads=1,batch={BATCH}",
                    "--timing-images", TIMED, "--repeat", REPEAT, "--warmup", 1,
                    "--keep-outputs", 100, timeout=600)
    variants = variants_by_env(db)
    assert len(variants) == 2, (list(variants), r.describe())
    batched = [env for env in variants if f"batch={BATCH}" in env]
    single = [env for env in variants if "batch=" not in env]
    assert len(batched) == 1 and len(single) == 1, list(variants)
    assert all(v["status"] == "done" for v in variants.values()), r.describe()
    # The batched variant ran the model with its batch dimension opened, an artifact of its own.
    opened = json.loads(variants[batched[0]]["build_json"])["open_batch"]
    assert opened["from_sha256"] == variants[single[0]]["artifact_sha256"]
    assert variants[batched[0]]["artifact_sha256"] != variants[single[0]]["artifact_sha256"]

    images = query(db, "SELECT id, key, timed FROM images")
    assert len(images) == len(PHOTOS)
    one = results_of(db, variants[single[0]]["id"])
    many = results_of(db, variants[batched[0]]["id"])
    worst = 0.0
    for image in images:
        a, b = one[image["id"]], many[image["id"]]
        assert json.loads(a["top_ids"])[0] == json.loads(b["top_ids"])[0], image["key"]
        out_a, out_b = floats(a["output"]), floats(b["output"])
        assert out_a.size == out_b.size == 1000, image["key"]
        gap = float(np.max(np.abs(out_a - out_b))) / float(np.max(np.abs(out_a)))
        worst = max(worst, gap)
        assert gap <= REL, (image["key"], gap)
        samples = REPEAT if image["timed"] else 0
        assert len(int64s(a["samples_ns"])) == len(int64s(b["samples_ns"])) == samples, image
        assert all(int64s(b["samples_ns"]) > 0), image["key"]
    print(f"{engine} batch={BATCH} vs batch=1: largest output difference {worst:.3g} of the "
          "largest |logit|")
    assert sum(i["timed"] for i in images) == TIMED

    # The timed photos ran as one batch: each has the same samples, the batch's times divided
    # by three.
    timed = [many[i["id"]] for i in images if i["timed"]]
    assert len({bytes(row["samples_ns"]) for row in timed}) == 1

    compare = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    axes = {p["axis"] for p in compare["pairs"]}
    assert axes == {"batch"}, compare["pairs"]
    text = deltann.run("compare", "--db", db).stdout
    assert any(line.split()[:1] == ["batch"] for line in text.splitlines()), text


def test_an_engine_without_the_knob_refuses_a_batch(deltann, models, tmp_path):
    """The reference engine does not declare `batch`: the plan fails before anything runs."""
    require_engine(deltann, "reference")
    folder = tmp_path / "images"
    write_random_images(folder, [(8, 8)] * 2, seed=3)
    db = tmp_path / "t.db"
    r = deltann.run("run", "--model", models.tiny, "--images", folder, "--db", db,
                    "--env", "reference:batch=2", expect_rc=None)
    assert r.returncode != 0, r.describe()
    assert "reference has no knob 'batch'" in r.stderr, r.describe()
    assert not db.exists() or not query(db, "SELECT * FROM results")


def run_testing(deltann, models, test_workers, folder, db, *envs, extra=()):
    args = ["run", "--model", models.tiny, "--images", folder, "--db", db, "--repeat", 2,
            "--warmup", 1, "--keep-outputs", 100, *extra]
    for env in envs:
        args += ["--env", env]
    return deltann.run(*args, env={"DELTANN_WORKER_DIR": str(test_workers)}, timeout=120,
                       expect_rc=None)


def test_batches_give_each_image_its_own_output(deltann, models, test_workers, tmp_path):
    """The test engine computes each image's output from that image alone, so at any batch size
    the outputs must equal batch 1's bit for bit: the stacking and splitting lose or swap
    nothing, and the short last batch (5 images at batch 2) is split right."""
    folder = tmp_path / "images"
    write_random_images(folder, [(8, 8)] * 5, seed=5)
    db = tmp_path / "t.db"
    r = run_testing(deltann, models, test_workers, folder, db, "testing",
                         "testing:batch=2", "testing:batch=8", extra=("--timing-images", 3))
    assert r.returncode == 0, r.describe()
    variants = variants_by_env(db)
    base = results_of(db, variants[next(e for e in variants if "batch=" not in e)]["id"])
    for batch in (2, 8):
        env = next(e for e in variants if f"batch={batch}" in e)
        got = results_of(db, variants[env]["id"])
        assert set(got) == set(base), env
        for image_id, row in got.items():
            assert bytes(row["output"]) == bytes(base[image_id]["output"]), (env, image_id)
            assert len(int64s(row["samples_ns"])) == len(int64s(base[image_id]["samples_ns"]))


def test_a_failed_batch_is_recorded_for_each_of_its_images(deltann, models, test_workers,
                                                           tmp_path):
    folder = tmp_path / "images"
    write_random_images(folder, [(8, 8)] * 5, seed=7)
    db = tmp_path / "t.db"
    # The second batch (the third and fourth image) fails: an error, then in another variant a
    # crash, after which the worker is restarted for the last image.
    envs = ["testing:batch=2,fault=error,at=run,after=2",
            "testing:batch=2,fault=segv,at=run,after=2"]
    r = run_testing(deltann, models, test_workers, folder, db, *envs, extra=("--timing-images", 0))
    assert r.returncode == 0, r.describe()
    keys = {row["id"]: row["key"] for row in query(db, "SELECT id, key FROM images")}
    for env, variant in variants_by_env(db).items():
        failures = failures_of(db, variant["id"])
        assert len(failures) == 2, (env, [dict(f) for f in failures])
        failed = sorted(keys[f["image_id"]] for f in failures)
        for f in failures:
            assert f["stage"] == "run", dict(f)
            assert f"in a batch of 2 images ({', '.join(failed)})" in f["message"], dict(f)
        assert f["symptom"] == ("error" if "fault=error" in env else "crash"), dict(f)
        assert len(results_of(db, variant["id"])) == 3, env
        assert variant["status"] == "done", env
