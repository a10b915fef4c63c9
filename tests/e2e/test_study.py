"""scripts/study --quick end to end: two real models (the pretrained EfficientNet-Lite0 and the
study's MobileNetV2) over the demo photos, then the study's two tables as CSV and in the report."""
import csv
import os
import subprocess
from pathlib import Path

import pytest

from deltann_testlib import env_path

BASELINE = "libtorch@pytorch>torchscript:opt=none,device=cpu,threads=1"
STUDY_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def study(deltann_bin, demo_dir, tmp_path_factory):
    source = env_path("DELTANN_SOURCE_DIR", "the repository (scripts/study)")
    out = tmp_path_factory.mktemp("study") / "out"
    env = dict(os.environ, DELTANN_BIN=str(deltann_bin))
    done = subprocess.run([str(source / "scripts" / "study"), "--quick", "--out", str(out)],
                          cwd=source, env=env, capture_output=True, text=True,
                          timeout=STUDY_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_label_table_compares_every_variant_of_both_models_with_pytorch(study):
    labels = rows(study / "study_labels.csv")
    models = {r["model_path"] for r in labels}
    assert len(models) == 2, models
    for r in labels:
        assert r["baseline"] == BASELINE
        n, k = int(r["images"]), int(r["top1_differences"])
        assert n == 9, r
        rate, low, high = (float(r[c]) for c in ("top1_difference_rate",
                                                 "top1_difference_rate_ci_low",
                                                 "top1_difference_rate_ci_high"))
        assert rate == pytest.approx(k / n)
        assert 0 <= low <= rate <= high <= 1
        # Nine images can never rule out a rate of a quarter.
        assert high > 0.25
    per_model = {m: {r["variant"].split(":")[0] for r in labels if r["model_path"] == m}
                 for m in models}
    for variants in per_model.values():
        assert {"ort", "opencv", "tflite@onnx>tflite", "ort@onnx>tflite>onnx"} <= variants


@pytest.mark.slow
def test_timing_table_has_each_level_against_the_lowest(study):
    timing = rows(study / "study_timing.csv")
    for model in {r["model_path"] for r in timing}:
        ort = [r for r in timing if r["model_path"] == model and r["engine"] == "ort"]
        assert [r["opt"] for r in ort] == ["disable", "all"]
        assert float(ort[0]["ratio"]) == 1.0 and ort[0]["ratio_ci_low"] == ""
        ratio, low, high = (float(ort[1][c]) for c in ("ratio", "ratio_ci_low", "ratio_ci_high"))
        assert 0 < low <= ratio <= high
        assert ort[1]["lowest"] == ort[0]["variant"]
        opencv = [r for r in timing if r["model_path"] == model and r["engine"] == "opencv"]
        assert [r["opt"] for r in opencv] == ["off", "on"]


@pytest.mark.slow
def test_report_and_times(study):
    html = (study / "study.html").read_text(encoding="utf-8")
    assert 'id="study"' in html and "Study tables" in html
    times = rows_tsv(study / "times.tsv")
    assert [t["model"] for t in times] == ["efficientnet_lite0", "mobilenet_v2"]
    assert all(int(t["wall_s"]) >= 0 and t["images"] == "9" for t in times)


def rows_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))
