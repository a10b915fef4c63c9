"""End to end on the real demo model (EfficientNet-Lite0, ImageNet photos): a campaign over ONNX
Runtime and OpenCV DNN, checked against the PyTorch original fed the very tensors deltann
preprocessed, and the default `deltann run` demo itself."""
import json

import numpy as np
import pytest

from deltann_testlib import cached_tensor, floats, query, read_list_file, sha256_file

ENVS = {
    # as given -> canonical form in the database
    "ort:opt=all,threads=2": "ort:opt=all,device=cpu,threads=2",
    "ort:opt=disable,threads=1": "ort:opt=disable,device=cpu,threads=1",
    "opencv:opt=on,threads=2": "opencv:opt=on,device=cpu,threads=2",
}
ORT_VARIANTS = [e for e in ENVS.values() if e.startswith("ort:")]
REPEAT = 2
CLASSES = 1000
# Engines and PyTorch run the same float32 graph with different kernels and summation orders;
# on this model their logits (magnitudes up to ~20) agree to about 1e-5. Allow 1e-3.
LOGIT_ATOL = 1e-3


@pytest.fixture(scope="module")
def campaign(deltann, demo_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("demo_campaign")
    db = work / "campaign.db"
    args = ["run", "--model", demo_dir / "efficientnet-lite0.onnx",
            "--images", demo_dir / "images.txt", "--db", db,
            "--repeat", REPEAT, "--warmup", 1]
    for env in ENVS:
        args += ["--env", env]
    run = deltann.run(*args, cwd=work)
    variants = {v["env"]: v for v in query(db, "SELECT * FROM variants ORDER BY id")}
    images = {i["key"]: i for i in query(db, "SELECT * FROM images ORDER BY id")}
    return {"db": db, "run": run, "variants": variants, "images": images}


def results_by_key(campaign, env):
    """{image key: results row} of one variant."""
    keys = {i["id"]: key for key, i in campaign["images"].items()}
    rows = query(campaign["db"], "SELECT * FROM results WHERE variant_id = ?",
                 (campaign["variants"][env]["id"],))
    return {keys[r["image_id"]]: r for r in rows}


@pytest.fixture(scope="module")
def pytorch_logits(campaign, deltann, pytorch_model):
    """{image key: logits} of the PyTorch original on deltann's cached input tensors."""
    import torch

    logits = {}
    with torch.no_grad():
        for key, image in campaign["images"].items():
            x = cached_tensor(deltann.cache_dir, image["sha256"])
            assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
            logits[key] = pytorch_model(torch.from_numpy(x)).numpy()[0].astype(np.float32)
    return logits


def test_every_photo_has_results(campaign, demo_dir):
    listed = read_list_file(demo_dir / "images.txt")
    assert len(listed) >= 5
    images = campaign["images"]
    assert sorted(images) == sorted(path for path, _ in listed)
    for path, label in listed:
        row = images[path]
        assert row["status"] == "ok", row["message"]
        assert row["label"] == label
        assert row["sha256"] == sha256_file(demo_dir / path)
    assert sorted(campaign["variants"]) == sorted(ENVS.values())
    for env, variant in campaign["variants"].items():
        assert variant["status"] == "done", env
        assert query(campaign["db"], "SELECT * FROM failures WHERE variant_id = ?",
                     (variant["id"],)) == [], env
        results = results_by_key(campaign, env)
        assert sorted(results) == sorted(images), env
        for key, row in results.items():
            assert len(json.loads(row["top_ids"])) == 5, (env, key)
            assert floats(row["output"]).shape == (CLASSES,), (env, key)
            assert len(np.frombuffer(row["samples_ns"], "<i8")) == REPEAT, (env, key)


@pytest.mark.parametrize("env", list(ENVS.values()))
def test_engine_matches_pytorch_on_identical_inputs(campaign, pytorch_logits, env):
    """Same top-1 as the PyTorch original on every photo, and logits within LOGIT_ATOL."""
    worst = 0.0
    for key, row in results_by_key(campaign, env).items():
        reference = pytorch_logits[key]
        output = floats(row["output"])
        diff = float(np.max(np.abs(output.astype(np.float64) - reference)))
        worst = max(worst, diff)
        ids = json.loads(row["top_ids"])
        assert ids[0] == int(np.argmax(reference)), \
            f"{env} on {key}: top-1 {ids[0]}, PyTorch {np.argmax(reference)}"
        # The stored top-5 is the engine's own ranking of its output (ties: lower index first).
        assert ids == [int(i) for i in np.argsort(-output, kind="stable")[:5]], (env, key)
        assert diff <= LOGIT_ATOL, f"{env} on {key}: max |logit difference| {diff:.3g}"
    print(f"{env}: max |logit - PyTorch logit| over all photos = {worst:.3g} "
          f"(tolerance {LOGIT_ATOL})")


def test_accuracy_matches_pytorch(campaign, pytorch_logits, deltann):
    labels = {key: image["label"] for key, image in campaign["images"].items()}
    n = len(labels)
    top1 = sum(int(np.argmax(pytorch_logits[k])) == label for k, label in labels.items()) / n
    top5 = sum(label in np.argsort(-pytorch_logits[k])[:5] for k, label in labels.items()) / n

    report = json.loads(deltann.run("compare", "--db", campaign["db"], "--json").stdout)
    assert report["labelled_images"] == n
    variants = {v["env"]: v for v in report["variants"]}
    for env in ORT_VARIANTS:
        v = variants[env]
        print(f"{env}: top-1 {v['top1_accuracy']:.3f}, top-5 {v['top5_accuracy']:.3f}; "
              f"PyTorch original: top-1 {top1:.3f}, top-5 {top5:.3f} ({n} photos)")
        assert v["top1_accuracy"] == pytest.approx(top1)
        assert v["top5_accuracy"] == pytest.approx(top5)
    # EfficientNet-Lite0 is a real ImageNet model: most of these photos are recognised.
    assert top1 >= 0.5 and top5 >= top1


def check_demo_campaign(deltann, run, db, min_images):
    """The demo campaign in `db` ran every engine built here and every conversion chain on the
    real model over at least `min_images` images, with no failure. Returns the variants run."""
    engines = {e["name"] for e in json.loads(deltann.run("backends", "--json").stdout)}
    assert db.is_file(), run.describe()
    variants = query(db, "SELECT * FROM variants ORDER BY id")
    frameworks = [v["framework"] for v in variants]
    expected = {"ort": 11, "opencv": 4, "tvm": 9, "reference": 1, "libtorch": 4, "openvino": 3,
                "tflite": 4}
    assert {f: frameworks.count(f) for f in expected} == expected, [v["env"] for v in variants]
    assert len(variants) == sum(expected.values())
    images = query(db, "SELECT id FROM images WHERE status = 'ok'")
    assert len(images) >= min_images
    skipped_for_plan = 0
    for v in variants:
        failures = query(db, "SELECT * FROM failures WHERE variant_id = ?", (v["id"],))
        if v["framework"] not in engines:
            # Engine not built here: the plan records why and the rest runs.
            assert v["status"] == "skipped", v["env"]
            skipped_for_plan += 1
            continue
        if v["status"] == "skipped":
            # A valid setting this machine cannot run (bf16 on a CPU without it): said why.
            assert [f["stage"] for f in failures] == ["plan"], failures
            assert "cannot run on this machine" in failures[0]["message"], failures
            skipped_for_plan += 1
            continue
        assert v["status"] == "done", (v["env"], [dict(f) for f in failures])
        count = query(db, "SELECT COUNT(*) AS n FROM results WHERE variant_id = ?", (v["id"],))
        assert count[0]["n"] == len(images), v["env"]
        if v["framework"] == "tvm" or "@" in v["env"]:
            assert v["compile_ns"] and v["compile_ns"] > 0, v["env"]
        if "@" in v["env"]:
            steps = json.loads(v["build_json"])["conversion"]
            assert all(s["tool"] and s["tool_version"] for s in steps), steps
    failures = query(db, "SELECT * FROM failures WHERE stage != 'plan'")
    assert failures == [], [dict(f) for f in failures]
    run_count = len(variants) - skipped_for_plan
    assert f"{run_count} variants run, 0 failed" in run.stderr, run.stderr
    assert f"Variants ({len(images)} labelled images)" in run.stdout, run.stdout
    return run_count


@pytest.mark.slow
def test_demo_campaign_on_the_photos(deltann, demo_dir, tmp_path):
    """The demo's campaign (`deltann run` with no environments: the demo model and every
    environment, into ./demo.db) on the 9 photos alone, which keeps the default suite short; the
    demo itself, on the expanded set, is test_default_demo_command under the label `long`."""
    run = deltann.run("run", "--images", demo_dir / "images.txt", cwd=tmp_path, timeout=1500)
    run_count = check_demo_campaign(deltann, run, tmp_path / "demo.db", len(
        read_list_file(demo_dir / "images.txt")))
    print(f"demo campaign on the photos: {run.seconds:.1f} s, {run_count} variants run")


@pytest.mark.long
def test_default_demo_command(deltann, demo_dir, tmp_path):
    """`deltann run` with no arguments runs the demo campaign into ./demo.db: every engine built
    here, and every conversion chain, on the real model over the expanded photo set that
    scripts/setup makes (225 images)."""
    expanded = demo_dir / "expanded" / "images.txt"
    if not expanded.is_file():
        pytest.skip(f"{expanded} is missing; scripts/setup makes it")
    run = deltann.run("run", cwd=tmp_path, timeout=3000)
    run_count = check_demo_campaign(deltann, run, tmp_path / "demo.db", 200)
    print(f"default demo: {run.seconds:.1f} s, {run_count} variants run")
