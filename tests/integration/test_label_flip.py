"""Known-answer check of the label-difference path: label_flip.onnx is built so that two ONNX
Runtime optimisation levels give different top-1 labels on one solid-colour image
(make_test_models.py calibrates it and writes the expected labels to label_flip.json)."""
import csv
import io
import json
import re
import shutil

import pytest

from deltann_testlib import images_by_key, results_of, top_ids, variants_by_env


@pytest.fixture
def flip(models, deltann, tmp_path):
    info = json.loads((models.dir / "label_flip.json").read_text())
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(models.dir / info["input_image"], images / info["input_image"])
    env_a = f"ort:opt={info['level_a']},threads=1"
    env_b = f"ort:opt={info['level_b']},threads=1"
    db = tmp_path / "flip.db"
    deltann.run("run", "--model", models.label_flip, "--images", images, "--db", db,
                "--env", env_a, "--env", env_b, "--repeat", 1, "--warmup", 0)
    return {"info": info, "db": db,
            "env_a": f"ort:opt={info['level_a']},device=cpu,threads=1",
            "env_b": f"ort:opt={info['level_b']},device=cpu,threads=1"}


def test_labels_match_the_calibration(flip):
    info, db = flip["info"], flip["db"]
    assert info["label_a"] != info["label_b"], "the generator promises two different labels"
    variants = variants_by_env(db)
    assert set(variants) == {flip["env_a"], flip["env_b"]}
    (image,) = images_by_key(db).values()
    assert image["key"] == info["input_image"] and image["status"] == "ok"
    for env, expected in ((flip["env_a"], info["label_a"]), (flip["env_b"], info["label_b"])):
        assert variants[env]["status"] == "done", env
        results = results_of(db, variants[env]["id"])
        assert list(results) == [image["id"]], env
        ids = top_ids(results[image["id"]])
        assert ids[0] == expected, f"{env}: top-1 {ids[0]}, calibration says {expected}"
        assert sorted(ids) == [0, 1], "two classes: top-k lists both"


def test_compare_json_counts_one_difference(flip, deltann):
    report = json.loads(deltann.run("compare", "--db", flip["db"], "--json").stdout)
    (pair,) = report["pairs"]
    assert {pair["a"], pair["b"]} == {flip["env_a"], flip["env_b"]}
    assert pair["images"] == 1
    assert pair["top1_differences"] == 1
    assert pair["top1_difference_rate"] == 1.0
    # 1 of 1 differs: the 95% Clopper-Pearson interval is [0.025, 1] (alpha / 2 = 0.025).
    assert pair["top1_difference_rate_ci_low"] == pytest.approx(0.025, abs=1e-12)
    assert pair["top1_difference_rate_ci_high"] == 1.0
    # Both list the same two classes: no top-5 difference, interval [0, 0.975].
    assert pair["top5_differences"] == 0 and pair["top5_difference_rate"] == 0.0
    assert pair["top5_difference_rate_ci_low"] == 0.0
    assert pair["top5_difference_rate_ci_high"] == pytest.approx(0.975, abs=1e-12)
    # No labels (folder layout without synsets here): no accuracy, and no interval for 0 images.
    for variant in report["variants"]:
        assert variant["labelled_images"] == 0
        assert variant["top1_accuracy_ci_low"] is None and variant["top1_accuracy_ci_high"] is None
    assert pair["differing_images"] == [flip["info"]["input_image"]]
    # The two outputs differ by a float32 rounding step, far below 1.
    assert pair["max_abs_diff"] is not None and 0 < pair["max_abs_diff"] < 1e-3


def test_compare_text_shows_the_difference(flip, deltann):
    text = deltann.run("compare", "--db", flip["db"]).stdout
    # Matrix cell "differing / both ran" and the pair line naming the image.
    assert re.search(r"^\s+1\s+-\s+1/1\s*$", text, re.MULTILINE), text
    assert re.search(r"^\s+2\s+1/1\s+-\s*$", text, re.MULTILINE), text
    pair_line = [line for line in text.splitlines() if line.strip().startswith("1-2")]
    assert len(pair_line) == 1, text
    assert "100.0% [2.5\u2013100.0]" in pair_line[0], text  # the rate and its 95% interval
    assert re.search(r"\b0\.0%\s", pair_line[0]), text  # top-5 differences (interval in --json)
    assert flip["info"]["input_image"] in pair_line[0], text


def test_export_csv_has_the_intervals(flip, deltann):
    rows = list(csv.DictReader(io.StringIO(deltann.run(
        "export", "--db", flip["db"], "--format", "csv", "--table", "pairs").stdout)))
    (pair,) = rows
    assert float(pair["top1_difference_rate"]) == 1.0
    assert float(pair["top1_difference_rate_ci_low"]) == pytest.approx(0.025, abs=1e-12)
    assert float(pair["top1_difference_rate_ci_high"]) == 1.0
    assert float(pair["top5_difference_rate_ci_high"]) == pytest.approx(0.975, abs=1e-12)
    (variant, _) = csv.DictReader(io.StringIO(deltann.run(
        "export", "--db", flip["db"], "--format", "csv", "--table", "variants").stdout))
    assert variant["top1_accuracy_ci_low"] == "" and variant["labelled_images"] == "0"
