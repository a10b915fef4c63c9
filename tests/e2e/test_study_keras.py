"""scripts/study --quick on the Keras-source MobileNetV2: the study's own direction (Keras to ONNX
and TFLite), compared with TensorFlow running the .keras file. Long: exporting the Keras model and
converting it with tf2onnx and the TFLite converter take minutes on a fresh machine."""
import csv
import os
import subprocess
from pathlib import Path

import pytest

from deltann_testlib import env_path

KERAS_BASELINE = "tensorflow:device=cpu,threads=1,onednn=on,xla=off"
STUDY_TIMEOUT_S = 1800


def rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


@pytest.mark.long
def test_keras_model_is_compared_with_tensorflow(deltann_bin, demo_dir, tmp_path):
    source = env_path("DELTANN_SOURCE_DIR", "the repository (scripts/study)")
    tf_python = source / ".deps" / "venv-tf" / "bin" / "python"
    if not tf_python.exists():
        pytest.skip(f"no TensorFlow virtual environment at {tf_python} (scripts/setup makes it)")
    out = tmp_path / "out"
    out.mkdir()
    # A row of another model from an earlier run stays in times.tsv.
    (out / "times.tsv").write_text("model\tvariants\timages\twall_s\nresnet101\t21\t2304\t99\n")
    env = dict(os.environ, DELTANN_BIN=str(deltann_bin))
    done = subprocess.run([str(source / "scripts" / "study"), "--quick", "--models",
                           "keras_mobilenet_v2", "--out", str(out)],
                          cwd=source, env=env, capture_output=True, text=True,
                          timeout=STUDY_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    labels = rows(out / "study_labels.csv")
    assert labels and all(r["baseline"] == KERAS_BASELINE for r in labels), labels
    variants = {r["variant"].split(":")[0] for r in labels}
    assert {"ort@keras>onnx", "tflite@keras>tflite"} <= variants, variants
    for r in labels:
        assert int(r["images"]) == 9, r
        low, high = float(r["top1_difference_rate_ci_low"]), float(r["top1_difference_rate_ci_high"])
        assert 0 <= low <= float(r["top1_difference_rate"]) <= high <= 1
    # The float conversions keep the labels of the .keras file on the demo photos.
    float_rows = [r for r in labels if "quantize=dynamic" not in r["variant"]]
    assert float_rows and all(r["top1_differences"] == "0" for r in float_rows), float_rows

    timing = rows(out / "study_timing.csv")
    ort = [r for r in timing if r["engine"] == "ort@keras>onnx"]
    assert [r["opt"] for r in ort] == ["disable", "all"], timing

    times = rows(out / "times.tsv", delimiter="\t")
    assert [t["model"] for t in times] == ["resnet101", "keras_mobilenet_v2"], times
