"""tiny_classifier through every ONNX Runtime optimisation level and OpenCV DNN with fusion on and
off: every variant completes, results are well formed, the engines agree with each other and with
ONNX Runtime's Python API on the very tensors deltann preprocessed."""
import json

import numpy as np
import pytest

from deltann_testlib import (Deltann, cached_tensor, failures_of, floats, images_by_key, int64s,
                             query, results_of, sha256_file, top_ids, variants_by_env,
                             write_random_images)

ENVIRONMENTS = {
    # as given on the command line -> canonical form stored in the database
    "ort:opt=disable,threads=1": "ort:opt=disable,device=cpu,threads=1",
    "ort:opt=basic,threads=1": "ort:opt=basic,device=cpu,threads=1",
    "ort:opt=extended,threads=1": "ort:opt=extended,device=cpu,threads=1",
    "ort:opt=all,threads=1": "ort:opt=all,device=cpu,threads=1",
    "opencv:opt=off,threads=1": "opencv:opt=off,device=cpu,threads=1",
    "opencv:opt=on,threads=1": "opencv:opt=on,device=cpu,threads=1",
}
CLASSES = 5
REPEAT = 2

# Engines may sum in different orders, so outputs agree to a few float32 ulps, not bit for bit.
# The logits here reach ~300 (pixel values 0..255 go in unscaled), where one ulp is ~3e-5:
# tolerance |a - b| <= ATOL + RTOL * |b|.
ATOL = 1e-4
RTOL = 1e-6

# 8x8 images go into the 8x8 model untouched (identity preprocessing), the others are resized by
# OpenCV. The tints steer the classifier to different top-1 labels.
SIZES = [(8, 8)] * 6 + [(13, 10), (24, 17)]
TINTS = [(1, 1, 1), (0, 0, 1), (0, 1, 1), (1, 0, 0), (0.1, 0.2, 1), (0.2, 0.2, 0.2),
         (0, 0.9, 1), (1, 1, 0)]


@pytest.fixture(scope="module")
def campaign(models, deltann_bin, tmp_path_factory):
    """Runs the six variants once over eight generated images."""
    work = tmp_path_factory.mktemp("tiny")
    (work / "cache").mkdir()
    deltann = Deltann(deltann_bin, work / "cache")
    images = write_random_images(work / "images", SIZES, seed=1234, tints=TINTS)
    db = work / "tiny.db"
    args = ["run", "--model", models.tiny, "--images", work / "images", "--db", db,
            "--repeat", REPEAT, "--warmup", 1]
    for env in ENVIRONMENTS:
        args += ["--env", env]
    run = deltann.run(*args)
    return {"db": db, "images": images, "cache": deltann.cache_dir, "run": run}


def reference_outputs(model_path, campaign):
    """{image key: output} from ONNX Runtime's Python API on deltann's cached tensors."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    outputs = {}
    for key, image in images_by_key(campaign["db"]).items():
        x = cached_tensor(campaign["cache"], image["sha256"])
        outputs[key] = session.run(None, {"input": x})[0][0]
    return outputs


def test_every_variant_done_without_failures(campaign):
    variants = variants_by_env(campaign["db"])
    assert sorted(variants) == sorted(ENVIRONMENTS.values())
    for env, variant in variants.items():
        assert variant["status"] == "done", env
        assert variant["engine_version"], f"{env}: no engine version recorded"
        assert variant["load_ns"] is not None and variant["load_ns"] > 0, env
        assert variant["first_ns"] is not None and variant["first_ns"] > 0, env
        assert failures_of(campaign["db"], variant["id"]) == [], env
    assert "6 variants run, 0 failed" in campaign["run"].stderr


def test_images_recorded_with_content_hash(campaign):
    images = images_by_key(campaign["db"])
    assert sorted(images) == sorted(p.name for p in campaign["images"])
    for path in campaign["images"]:
        row = images[path.name]
        assert row["status"] == "ok", row["message"]
        assert row["sha256"] == sha256_file(path)
        assert row["path"] == str(path)
        assert row["label"] is None


def test_every_image_has_five_ranked_ids(campaign):
    db = campaign["db"]
    image_ids = {row["id"] for row in query(db, "SELECT id FROM images")}
    for env, variant in variants_by_env(db).items():
        results = results_of(db, variant["id"])
        assert set(results) == image_ids, env
        for image_id, row in results.items():
            ids = top_ids(row)
            output = floats(row["output"])
            scores = floats(row["top_scores"])
            assert len(ids) == 5 and sorted(ids) == list(range(CLASSES)), (env, image_id, ids)
            assert output.shape == (CLASSES,), "outputs are kept for small datasets"
            # Scores are the outputs at the ranked ids, best first.
            np.testing.assert_array_equal(scores, output[ids])
            assert np.all(np.diff(scores) <= 0), (env, image_id, scores)
            assert ids[0] == int(np.argmax(output))
            samples = int64s(row["samples_ns"])
            assert len(samples) == REPEAT and np.all(samples > 0), (env, image_id, samples)


def test_cached_tensors_hold_the_pixels(campaign):
    """With identity preprocessing, an 8x8 image's tensor is its pixels in NCHW order."""
    from PIL import Image

    images = images_by_key(campaign["db"])
    for path, size in zip(campaign["images"], SIZES):
        tensor = cached_tensor(campaign["cache"], images[path.name]["sha256"])
        assert tensor.dtype == np.float32 and tensor.shape == (1, 3, 8, 8)
        if size == (8, 8):
            pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
            np.testing.assert_array_equal(tensor[0], pixels.transpose(2, 0, 1))
        else:
            assert tensor.min() >= 0 and tensor.max() <= 255


def test_engines_agree_and_match_onnxruntime_python(campaign, models):
    db = campaign["db"]
    images = images_by_key(db)
    keys_by_id = {row["id"]: key for key, row in images.items()}
    reference = reference_outputs(models.tiny, campaign)
    reference_top1 = {key: int(np.argmax(out)) for key, out in reference.items()}
    # The check is only meaningful when the labels are clear-cut and not all the same.
    for key, out in reference.items():
        best, second = np.sort(out)[::-1][:2]
        assert best - second > 10 * (ATOL + RTOL * abs(best)), f"{key}: top-1 margin too small"
    assert len(set(reference_top1.values())) >= 2, reference_top1

    for env, variant in variants_by_env(db).items():
        for image_id, row in results_of(db, variant["id"]).items():
            key = keys_by_id[image_id]
            assert top_ids(row)[0] == reference_top1[key], (env, key)
            np.testing.assert_allclose(floats(row["output"]), reference[key], rtol=RTOL,
                                       atol=ATOL, err_msg=f"{env} on {key}")


def test_compare_reports_no_differences(campaign, deltann):
    result = deltann.run("compare", "--db", campaign["db"], "--json")
    report = json.loads(result.stdout)
    assert report["schema"] == "deltann.compare"
    assert len(report["variants"]) == len(ENVIRONMENTS)
    for v in report["variants"]:
        assert v["status"] == "done" and v["images"] == len(SIZES) and v["failures"] == 0, v
        assert v["top1_accuracy"] is None, "the images have no labels"
    n = len(ENVIRONMENTS)
    assert len(report["pairs"]) == n * (n - 1) // 2
    for pair in report["pairs"]:
        assert pair["images"] == len(SIZES), pair
        assert pair["top1_differences"] == 0 and pair["differing_images"] == [], pair
        assert pair["top5_overlap"] == 1.0, pair
        assert pair["max_abs_diff"] is not None and pair["max_abs_diff"] <= ATOL + RTOL * 400, pair
