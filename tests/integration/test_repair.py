"""`deltann repair` (docs/LOCALIZE.md, "Repairing a conversion"): a copy of the demo model with one
injected change (tests/pylib/deltann_faults.py) is repaired back to the source, and the tf2onnx
round trip `ort@onnx>tflite>onnx`, which drops the classifier's bias, gets its bias back.

A repair must end with the verdict `repaired`, an edit at the changed node kept, the held-out
images' labels all agreeing with the source and their max |d| within the tolerance, and a written
model that holds the source's parameters again (checked on the file with ONNX's own classes).
One position of a representative set of kinds runs in the default suite; every kind at every
position is in the long suite. Skipped where the demo model, ONNX Runtime or (for the round trip)
the TFLite engine with its converters is missing.
"""
import json
import subprocess

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from deltann_faults import KINDS, POSITIONS, inject
from deltann_testlib import Deltann

ENV = "ort:opt=disable,threads=1"
TOLERANCE = 1e-4
# One of each family of edit: a restored input, values copied back (a rescale, a rearrangement, a
# quantisation), an attribute, an operator.
DEFAULT_KINDS = ["missing", "rescaled", "transpose", "quantised_channel", "padding", "op_replaced"]


@pytest.fixture(scope="module")
def dl(deltann_bin, tmp_path_factory):
    return Deltann(deltann_bin, tmp_path_factory.mktemp("repair_cache"), timeout=600)


@pytest.fixture(scope="module")
def demo(demo_folder):
    path = demo_folder / "efficientnet-lite0.onnx"
    if not path.is_file():
        pytest.skip(f"{path} missing (run scripts/setup)")
    return path, onnx.load(str(path)), demo_folder / "images"


def repair(dl, demo, out, *args, expect_rc=0):
    path, _, images = demo
    result = dl.run("repair", "--model", path, "--image-set", images, "--a", ENV, "-o", out,
                    "--json", *args, expect_rc=None)
    assert result.returncode == expect_rc, result.describe()
    record = json.loads(result.stdout)
    # The record beside the model holds the same document.
    assert json.loads(out.with_suffix(".repair.json").read_text()) == record
    return record


def same_parameters(a, b):
    """Whether two models have the same nodes (op, inputs, outputs, attributes) and the same
    initialiser values, by name."""
    def nodes(m):
        return [(n.op_type, list(n.input), list(n.output),
                 sorted(a.SerializeToString() for a in n.attribute)) for n in m.graph.node]

    def values(m):
        return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}

    if nodes(a) != nodes(b):
        return False
    va, vb = values(a), values(b)
    used = {i for n in a.graph.node for i in n.input}
    return all(name in vb and np.array_equal(va[name], vb[name]) for name in va if name in used)


def check_repaired(record, fault_node):
    assert record["verdict"] == "repaired", record["reason"]
    kept = [e for e in record["edits"] if e["kept"]]
    assert kept and all(e["node"] == fault_node for e in kept), record["edits"]
    held = record["held_out"]
    n = held["after"]["images"]
    assert n == len(record["split"]["held_out"]) > 0
    assert held["after"]["labels_agree"] == n, held
    assert held["after"]["max_abs"] <= TOLERANCE, held
    assert held["before"]["max_abs"] > TOLERANCE, held  # the change was visible
    low, high = held["after"]["label_agreement_ci"]
    assert 0 < low <= high == 1
    assert record["search"]["after"]["max_abs"] <= TOLERANCE


def repair_fault(dl, demo, tmp_path, kind, position):
    fault = inject(demo[1], kind, position)
    faulty = tmp_path / "faulty.onnx"
    onnx.save(fault.model, str(faulty))
    out = tmp_path / "fixed.onnx"
    record = repair(dl, demo, out, "--b-model", faulty, "--b", ENV)
    check_repaired(record, fault.node)
    # What the search reports is what the file holds: the source's parameters again.
    assert same_parameters(demo[1], onnx.load(str(out))), kind
    return record


@pytest.mark.parametrize("kind", DEFAULT_KINDS)
def test_injected_change_is_repaired(dl, demo, tmp_path, kind):
    record = repair_fault(dl, demo, tmp_path, kind, "middle")
    assert record["b_runs_as"] == ENV.replace("disable,", "disable,device=cpu,")
    assert record["differences_from"].startswith("compared node by name")


@pytest.mark.long
@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("kind", KINDS)
def test_every_injected_change_is_repaired(dl, demo, tmp_path, kind, position):
    if position == "middle" and kind in DEFAULT_KINDS:
        pytest.skip("in the default suite")
    repair_fault(dl, demo, tmp_path, kind, position)


def test_split_and_text_output(dl, demo, tmp_path):
    fault = inject(demo[1], "offset", "middle")
    faulty = tmp_path / "faulty.onnx"
    onnx.save(fault.model, str(faulty))
    path, _, images = demo
    out = tmp_path / "fixed.onnx"
    text = dl.run("repair", "--model", path, "--image-set", images, "--a", ENV, "--b", ENV,
                  "--b-model", faulty, "-o", out, "--search", "3", "--seed", "5").stdout
    assert "images: 3 for the search, 6 held out (seed 5)" in text, text
    assert "kept: undid the offset (B = A + c, c = 0.01" in text, text
    assert "verdict: repaired" in text, text
    record = json.loads(out.with_suffix(".repair.json").read_text())
    split = record["split"]
    assert len(split["search"]) == 3 and len(split["held_out"]) == 6
    assert not set(split["search"]) & set(split["held_out"])
    # The same seed gives the same split.
    again = repair(dl, demo, tmp_path / "again.onnx", "--b-model", faulty, "--b", ENV,
                   "--search", "3", "--seed", "5")
    assert again["split"] == split


def test_no_difference(dl, demo, tmp_path):
    record = repair(dl, demo, tmp_path / "fixed.onnx", "--b-model", demo[0], "--b", ENV)
    assert record["verdict"] == "no-difference" and record["edits"] == []
    assert record["held_out"]["after"]["max_abs"] == 0


def test_no_fix_found_says_why(dl, demo, tmp_path):
    """An extra node in B (a Mul by 1.1 after a Conv) is a difference with no inverse edit."""
    model = onnx.ModelProto()
    model.CopyFrom(demo[1])
    conv = next(n for n in model.graph.node if n.name == POSITIONS["middle"])
    out = conv.output[0]
    conv.output[0] = out + "_before_mul"
    model.graph.initializer.append(numpy_helper.from_array(np.array(1.1, np.float32), "k"))
    position = list(model.graph.node).index(conv)
    model.graph.node.insert(position + 1, onnx.helper.make_node(
        "Mul", [out + "_before_mul", "k"], [out], name="extra_mul"))
    faulty = tmp_path / "faulty.onnx"
    onnx.save(model, str(faulty))
    record = repair(dl, demo, tmp_path / "fixed.onnx", "--b-model", faulty, "--b", ENV,
                    expect_rc=3)
    assert record["verdict"] == "no-fix-found", record
    assert "no fix found: B has an extra Mul node extra_mul" in record["reason"], record["reason"]
    assert not any(e["kept"] for e in record["edits"])
    assert record["held_out"]["after"] == record["held_out"]["before"]


def test_usage_and_input_errors(dl, demo, tmp_path):
    path, _, images = demo
    result = dl.run("repair", "--model", path, "--image-set", images, "--a", ENV, "--b", ENV,
                    expect_rc=2)
    assert "-o FIXED.onnx are required" in result.stderr, result.describe()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_bytes((images / "coffee.png").read_bytes())
    result = dl.run("repair", "--model", path, "--image-set", tmp_path / "one", "--a", ENV,
                    "--b", ENV, "--b-model", path, "-o", tmp_path / "x.onnx", expect_rc=1)
    assert "1 usable image(s); the repair needs at least 2" in result.stderr, result.describe()


@pytest.fixture(scope="module")
def round_trip_engines(deltann_bin):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    missing = {"ort", "tflite"} - {b["name"] for b in json.loads(proc.stdout)}
    if missing:
        pytest.skip(f"engines not built here: {', '.join(sorted(missing))} (the round trip's "
                    "converters live in the TFLite engine's venv)")


def test_tf2onnx_round_trip_gets_its_bias_back(dl, demo, tmp_path, round_trip_engines):
    """tf2onnx writes the classifier as a MatMul without its bias; repair adds the source's bias
    after it, and the repaired file's labels and logits match the source's on held-out images."""
    out = tmp_path / "fixed.onnx"
    record = repair(dl, demo, out, "--b", "ort@onnx>tflite>onnx:opt=disable,threads=1")
    assert record["converted"].endswith(".onnx") and "/convert/" in record["converted"]
    assert record["b_runs_as"] == "ort:opt=disable,device=cpu,threads=1"
    assert record["differences_from"].startswith("compared through the layer matching")
    (edit,) = record["edits"]
    assert edit["what"] == "bias missing in B" and edit["node"] == "/_fc/Gemm", edit
    assert edit["kept"] and "restored the missing bias: A's _fc.bias (1000 values)" in \
        edit["action"], edit
    check_repaired(record, "/_fc/Gemm")
    before = record["held_out"]["before"]["max_abs"]
    assert before == pytest.approx(0.334, abs=1e-3)  # max |_fc.bias|
    # The file: B's graph plus one Add of the source's bias, and a sidecar with B's NHWC input.
    fixed = onnx.load(str(out))
    add = fixed.graph.node[-1]
    assert add.op_type == "Add" and add.output[0] == fixed.graph.output[0].name
    bias = {i.name: numpy_helper.to_array(i) for i in fixed.graph.initializer}[add.input[1]]
    source = {i.name: numpy_helper.to_array(i) for i in demo[1].graph.initializer}
    assert np.array_equal(bias, source["_fc.bias"])
    spec = json.loads(out.with_suffix(".spec.json").read_text())
    assert spec["input"]["layout"] == "NHWC"
    # localize, independently, finds no layer of the repaired file diverging from the source.
    dl.run("localize", "--model", demo[0], "--image", demo[2] / "apple.jpg", "--a", ENV,
           "--b", ENV, "--b-model", out, expect_rc=0)
