"""`deltann backends`: the engines built next to the binary describe themselves."""
import json
import re

import pytest

EXPECTED_OPT = {
    "ort": ["disable", "basic", "extended", "all"],
    "opencv": ["off", "on"],  # lowest optimisation first
}


def test_backends_json_lists_ort_and_opencv(deltann):
    engines = json.loads(deltann.run("backends", "--json").stdout)
    by_name = {e["name"]: e for e in engines}
    assert {"ort", "opencv"} <= set(by_name), engines
    assert "testing" not in by_name, "the test engine lives in its own folder"
    for name, opt_values in EXPECTED_OPT.items():
        engine = by_name[name]
        assert "error" not in engine, engine
        assert re.match(r"^\d+\.\d+", engine["version"]), engine["version"]
        assert "cpu" in engine["devices"] and "onnx" in engine["formats"]
        knobs = {k["name"]: k for k in engine["knobs"]}
        assert {"opt", "device", "threads"} <= set(knobs), knobs
        assert knobs["opt"]["values"] == opt_values
        assert knobs["opt"]["default"] in opt_values
        assert knobs["threads"]["values"] == [], "threads is a positive integer"
        assert int(knobs["threads"]["default"]) >= 1
        assert knobs["device"]["default"] == "cpu"


def test_ort_version_matches_the_python_package(deltann):
    """deltann loads the ONNX Runtime library of the wheel the project environment installs."""
    ort = pytest.importorskip("onnxruntime")
    engines = {e["name"]: e for e in json.loads(deltann.run("backends", "--json").stdout)}
    assert engines["ort"]["version"] == ort.__version__


def test_backends_text_names_each_engine(deltann):
    text = deltann.run("backends").stdout
    for name, opt_values in EXPECTED_OPT.items():
        assert re.search(rf"^{name} \d+\.\d+", text, re.MULTILINE), text
        assert "opt = " + " | ".join(opt_values) in text, text


def test_worker_dir_override_lists_only_the_test_engine(deltann, test_workers):
    engines = json.loads(deltann.run("backends", "--json",
                                     env={"DELTANN_WORKER_DIR": str(test_workers)}).stdout)
    assert [e["name"] for e in engines] == ["testing"]
