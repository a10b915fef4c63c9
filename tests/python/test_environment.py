"""deltann_tools.environment: the one parser of environment strings on the Python side, and the
tools and the worker that use it. Needs only the standard library (and numpy, for the worker).

By hand: PYTHONPATH=python .deps/venv/bin/python -m pytest -q tests/python
"""
import pytest

from deltann_tools import build_tvm, convert, tvm_compile
from deltann_tools.environment import (
    Environment,
    EnvironmentStringError,
    parse_chain,
    parse_environment,
    parse_knobs,
    set_members,
)
from deltann_workers import worker


def test_canonical_string_splits_into_framework_and_knobs_in_order():
    env = parse_environment("ort:opt=all,device=cpu,threads=1")
    assert env == Environment("ort:opt=all,device=cpu,threads=1", "ort", "",
                              {"opt": "all", "device": "cpu", "threads": "1"})
    assert list(env.knobs) == ["opt", "device", "threads"]
    assert env.version == "" and env.chain == []


def test_knob_values_may_hold_colons_and_pluses():
    env = parse_environment("tvm:opt=3,device=cuda:0,disable=FuseOps+FoldConstant")
    assert env.knob("device") == "cuda:0"
    assert set_members(env.knob("disable")) == ["FuseOps", "FoldConstant"]


def test_qualifier_is_a_version_or_a_conversion_chain():
    assert parse_environment("tvm@0.19:opt=3").version == "0.19"
    assert parse_environment("tvm@0.19:opt=3").chain == []
    chained = parse_environment("tflite@pytorch>onnx>tflite:opt=xnnpack,threads=1")
    assert (chained.framework, chained.version) == ("tflite", "")
    assert chained.chain == ["pytorch", "onnx", "tflite"]
    assert parse_environment("ort@onnx→tflite→onnx").chain == ["onnx", "tflite", "onnx"]


def test_framework_alone_has_no_knobs():
    env = parse_environment("reference")
    assert (env.framework, env.qualifier, env.knobs) == ("reference", "", {})


@pytest.mark.parametrize("text, reason", [
    ("", "non-empty string"),
    (None, "non-empty string"),
    ("ort:opt", "'opt' is not key=value"),
    ("ort:opt=all,=cpu", "'=cpu' is not key=value"),
    ("ort:opt=all,opt=basic", "knob 'opt' is given twice"),
])
def test_malformed_strings_are_refused_naming_the_reason(text, reason):
    with pytest.raises(EnvironmentStringError, match=reason):
        parse_environment(text)


def test_missing_and_non_numeric_knobs_name_the_environment():
    env = parse_environment("tflite:opt=none,threads=0")
    with pytest.raises(EnvironmentStringError, match="'tflite:opt=none,threads=0' has no 'device'"):
        env.knob("device")
    with pytest.raises(EnvironmentStringError, match="threads=0 is not a positive integer"):
        env.positive_int("threads")
    assert parse_environment("tflite:threads=4").positive_int("threads") == 4


def test_knob_lists_name_where_they_come_from():
    assert parse_knobs("quantize=dynamic,opset=10", "--knobs") == {"quantize": "dynamic",
                                                                   "opset": "10"}
    assert parse_knobs("", "--knobs") == {}
    with pytest.raises(EnvironmentStringError, match=r"^--knobs 'x': 'x' is not key=value$"):
        parse_knobs("x", "--knobs 'x'")


@pytest.mark.parametrize("text", ["onnx", "onnx>", ">tflite", "onnx>>tflite", ""])
def test_a_chain_needs_two_formats_or_more(text):
    with pytest.raises(EnvironmentStringError, match="is not a conversion chain"):
        parse_chain(text)


def test_set_members_of_none_is_empty_and_empty_members_are_kept_for_the_caller():
    assert set_members(None) == [] and set_members("none") == [] and set_members(" ") == []
    assert set_members("A++B") == ["A", "", "B"]


# --- the users of the module -----------------------------------------------------------------

def test_convert_finds_steps_through_the_chain_parser():
    assert convert.find_step("onnx → tflite")["tool"].startswith("onnx2tf")
    for text in ("onnx>tflite>onnx", "onnx", "onnx>caffe"):
        with pytest.raises(convert.ConvertError, match="unknown step"):
            convert.find_step(text)


def test_convert_knobs_are_parsed_then_checked_against_the_step():
    step = convert.find_step("pytorch>onnx")
    assert convert.parse_knobs("opset=10", step) == {"opset": "10"}
    with pytest.raises(convert.ConvertError, match="'opset' is not key=value"):
        convert.parse_knobs("opset", step)
    with pytest.raises(convert.ConvertError, match="does not take knob 'quantize'"):
        convert.parse_knobs("quantize=dynamic", step)


def test_tvm_disable_uses_the_set_members():
    assert tvm_compile.parse_disable("none") == []
    assert tvm_compile.parse_disable("FuseOps+FuseOps+FoldConstant") == ["FuseOps", "FoldConstant"]
    with pytest.raises(tvm_compile.CompileError, match="unknown pass"):
        tvm_compile.parse_disable("FuseOps++FoldConstant")


def test_build_tvm_refuses_a_malformed_environment_with_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text('{"input": {"shape": [1, 3, 8, 8]}}')
    assert build_tvm.main(["--model", "m.onnx", "--spec", str(spec), "--env", "tvm:opt",
                           "--out", "o.so"]) == 1
    assert capsys.readouterr().err == ("build_tvm: error: environment 'tvm:opt': 'opt' is not "
                                       "key=value\n")


def test_worker_parses_with_the_module_and_reports_its_errors_as_they_are():
    assert worker.parse_environment is parse_environment
    with pytest.raises(EnvironmentStringError) as raised:
        parse_environment("tflite:opt")
    assert worker.error_text(raised.value) == "environment 'tflite:opt': 'opt' is not key=value"
    assert worker.error_text(KeyError("x")) == "KeyError: 'x'"
