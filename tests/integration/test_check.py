"""`deltann check` on the label_flip model: its two ONNX Runtime optimisation levels give
different top-1 labels on its one image (100% differ), so a 50% limit fails and 100% passes.
Checks the exit codes (0 pass, 1 fail, 2 usage) and that the JUnit report parses."""
import json
import shutil
import xml.etree.ElementTree as ElementTree

import pytest


@pytest.fixture
def flip(models, deltann, tmp_path):
    info = json.loads((models.dir / "label_flip.json").read_text())
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(models.dir / info["input_image"], images / info["input_image"])
    db = tmp_path / "flip.db"
    deltann.run("run", "--model", models.label_flip, "--images", images, "--db", db,
                "--env", f"ort:opt={info['level_a']},threads=1",
                "--env", f"ort:opt={info['level_b']},threads=1", "--repeat", 1, "--warmup", 0)
    return {"info": info, "db": db,
            "baseline": f"ort:opt={info['level_a']}",
            "other": f"ort:opt={info['level_b']},device=cpu,threads=1"}


def junit(path):
    suite = ElementTree.parse(path).getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "deltann.check"
    return suite


def test_fails_when_labels_differ_more_than_allowed(flip, deltann, tmp_path):
    report = tmp_path / "check.xml"
    result = deltann.run("check", "--db", flip["db"], "--baseline", flip["baseline"],
                         "--max-label-diff", "50%", "--junit", report, expect_rc=3)
    line = [l for l in result.stdout.splitlines() if flip["other"] in l]
    assert len(line) == 1 and line[0].startswith("FAIL "), result.describe()
    assert "1/1 top-1 labels differ (100%, limit 50%)" in line[0], result.describe()
    assert "check failed" in result.stderr, result.describe()
    suite = junit(report)
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    (case,) = suite.findall("testcase")
    assert case.get("name") == flip["other"]
    failure = case.find("failure")
    assert failure is not None and "above the limit of 50%" in failure.get("message")


def test_passes_within_the_limit(flip, deltann, tmp_path):
    report = tmp_path / "check.xml"
    result = deltann.run("check", "--db", flip["db"], "--baseline", flip["baseline"],
                         "--max-label-diff", "100%", "--max-slowdown", "0.5", "--junit", report)
    assert result.stdout.splitlines()[-1].startswith("check passed: 1 passed"), result.describe()
    suite = junit(report)
    assert suite.get("failures") == "0"
    (case,) = suite.findall("testcase")
    assert case.find("failure") is None


@pytest.mark.parametrize("args, message", [
    (["--baseline", "ort", "--max-label-diff", "1%"], "is ambiguous"),
    (["--baseline", "tvm", "--max-label-diff", "1%"], "matches no variant"),
    (["--baseline", "ort:opt=all,threads=1", "--max-label-diff", "7"], "ambiguous"),
    (["--baseline", "ort:opt=all,threads=1"], "--max-label-diff is required"),
])
def test_usage_errors_exit_2(flip, deltann, args, message):
    result = deltann.run("check", "--db", flip["db"], *args, expect_rc=2)
    assert message in result.stderr, result.describe()
