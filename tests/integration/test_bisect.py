"""`deltann bisect` (docs/LOCALIZE.md, "Pass bisection"). Known answer: label_flip.onnx flips its
top-1 between ONNX Runtime's `disable` and `basic` levels because `basic` folds the BatchNorm into
the Conv; switching off ConvBNFusion alone gives back opt=disable's output exactly. TVM opt=4
differs from opt=3 by fast-math, a setting of the level that no pass removal undoes."""
import json
import shutil
import subprocess

import pytest

from deltann_testlib import write_random_images


@pytest.fixture
def flip(models, tmp_path):
    info = json.loads((models.dir / "label_flip.json").read_text())
    image = tmp_path / info["input_image"]
    shutil.copy(models.dir / info["input_image"], image)
    return info, image


def bisect(deltann, model, image, a, b, *extra, expect_rc=0):
    return deltann.run("bisect", "--model", model, "--image", image, "--a", a, "--b", b, *extra,
                       expect_rc=expect_rc, timeout=600)


def test_ort_basic_level_names_conv_bn_fusion(models, flip, deltann):
    info, image = flip
    assert (info["level_a"], info["level_b"]) == ("disable", "basic")
    run = bisect(deltann, models.label_flip, image, "ort:opt=disable", "ort:opt=basic", "--json",
                 expect_rc=3)
    report = json.loads(run.stdout)
    assert "ort:opt=basic,device=cpu,threads=1 differs from" in run.stderr, run.describe()
    assert report["a"] == "ort:opt=disable,device=cpu,threads=1"
    # `disable=none` is the default and stays out of the canonical string.
    assert report["b"] == "ort:opt=basic,device=cpu,threads=1"
    assert report["original_max_abs"] > 0
    assert report["tolerance_default"] and report["tolerance"] == pytest.approx(
        0.01 * report["original_max_abs"])
    assert "ConvBNFusion" in report["passes"] and "ConvActivationFusion" not in report["passes"]
    assert report["outcome"] == "single_pass", run.describe()
    assert report["culprits"] == ["ConvBNFusion"]
    first = report["probes"][0]
    assert first["disabled"] == report["passes"] and first["vanished"]
    alone = [p for p in report["probes"] if p["disabled"] == ["ConvBNFusion"]]
    assert alone and alone[0]["vanished"] and alone[0]["max_abs"] == 0.0, report["probes"]
    assert alone[0]["env"] == "ort:opt=basic,device=cpu,threads=1,disable=ConvBNFusion"
    # Halving: about log2(passes) levels of at most two probes, plus the first.
    assert len(report["probes"]) <= 1 + 2 * len(report["passes"]).bit_length()
    assert report["builds"] == 0  # ONNX Runtime builds nothing


def test_ort_text_report(models, flip, deltann):
    _, image = flip
    text = bisect(deltann, models.label_flip, image, "ort:opt=disable", "ort:opt=basic",
                  expect_rc=3).stdout
    assert "culprit: ConvBNFusion" in text, text
    assert "probe 1: disable all " in text and "vanished" in text
    assert "(1% of it)" in text


def test_tolerance_above_the_difference_has_nothing_to_bisect(models, flip, deltann):
    _, image = flip
    report = json.loads(bisect(deltann, models.label_flip, image, "ort:opt=disable",
                               "ort:opt=basic", "--tolerance", "1", "--json").stdout)
    assert report["outcome"] == "no_difference" and report["probes"] == []


def test_unknown_pass_and_unknown_knob_are_refused(models, flip, deltann):
    _, image = flip
    run = bisect(deltann, models.label_flip, image, "ort:opt=disable",
                 "ort:opt=basic,disable=ConvBnFusion", expect_rc=1)
    assert "no member 'ConvBnFusion'" in run.stderr and "ConvBNFusion" in run.stderr, run.stderr
    run = bisect(deltann, models.label_flip, image, "ort:opt=disable", "ort:opt=basic,passes=x",
                 expect_rc=1)
    assert "has no knob 'passes'" in run.stderr, run.stderr
    run = deltann.run("bisect", "--model", models.label_flip, "--a", "ort:opt=disable",
                      expect_rc=2)
    assert "required" in run.stderr


def test_ort_describes_its_optimizers_per_level(deltann):
    backends = json.loads(deltann.run("backends", "--json").stdout)
    (ort,) = [b for b in backends if b["name"] == "ort"]
    (knob,) = [k for k in ort["knobs"] if k["name"] == "disable"]
    assert knob["subset"] and knob["default"] == "none"
    table = ort["each"]["disable"]
    assert table["by"] == "opt" and table["members"]["disable"] == []
    basic, extended, every = (table["members"][level] for level in ("basic", "extended", "all"))
    assert "ConvBNFusion" in basic and set(basic) < set(extended) < set(every) == set(knob["values"])


def test_tvm_fast_math_is_not_a_pass(models, deltann, deltann_bin, tmp_path):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    if "tvm" not in [b.get("name") for b in json.loads(proc.stdout)]:
        pytest.skip("this deltann has no tvm engine")
    write_random_images(tmp_path / "images", [(8, 8)], seed=5)
    (image,) = sorted((tmp_path / "images").iterdir())
    run = bisect(deltann, models.tiny, image, "tvm:opt=3", "tvm:opt=4", "--json", expect_rc=3)
    report = json.loads(run.stdout)
    assert report["b"] == "tvm:opt=4,device=cpu,threads=1,disable=none"
    assert report["original_max_abs"] > 0, "opt=4 (fast-math) is expected to differ from opt=3"
    assert report["outcome"] == "not_passes", run.describe()
    assert report["culprits"] == []
    (probe,) = report["probes"]
    assert probe["disabled"] == report["passes"] and len(report["passes"]) == 9
    assert not probe["vanished"]
    assert report["remaining_max_abs"] > report["tolerance"]
    text = bisect(deltann, models.tiny, image, "tvm:opt=3", "tvm:opt=4", expect_rc=3).stdout
    assert "not caused by one of these passes" in text, text
