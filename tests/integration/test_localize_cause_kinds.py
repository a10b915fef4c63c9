"""`deltann localize --b-model` names the *kind* of the change that causes the first divergence:
one change of each kind (tests/pylib/deltann_faults.py: a bias removed, weights zeroed, flipped,
transposed, channel-reordered, rescaled, offset, quantised per tensor and per channel, rounded to
fp16 and bf16, perturbed by noise; a Pad window shifted, a Clip bound changed, a Clip replaced by
a LeakyRelu) is injected into a copy of the demo model, and localize must name the changed node's
output as the first jump and give the expected kind, with its details, as the cause, in the JSON
and on the terminal.

The middle position runs in the default suite; the other two positions of every kind are in the
long suite (bench/localize_kinds.py measures all three and prints the table in docs/LOCALIZE.md).
Skipped where the demo model or ONNX Runtime's capture is missing.
"""
import json

import onnx
import pytest

from deltann_faults import KINDS, cause_matches, inject

ENV = "ort:opt=disable,threads=1"


@pytest.fixture(scope="module")
def demo(demo_folder):
    model = onnx.load(str(demo_folder / "efficientnet-lite0.onnx"))
    return demo_folder / "efficientnet-lite0.onnx", model, demo_folder / "images" / "apple.jpg"


def localize(deltann, demo, faulty_path, *extra):
    path, _, image = demo
    result = deltann.run("localize", "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                         "--b-model", faulty_path, *extra, expect_rc=None)
    if result.returncode != 0 and "cannot capture" in result.stderr:
        pytest.skip(f"ONNX Runtime cannot capture here: {result.stderr.strip()}")
    assert result.returncode == 3, result.describe()  # A and B diverge
    return result


def check_kind(deltann, demo, tmp_path, kind, position):
    fault = inject(demo[1], kind, position)
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(fault.model, str(faulty_path))
    report = json.loads(localize(deltann, demo, faulty_path, "--json").stdout)
    layer_right, kind_right = cause_matches(report, fault)
    assert layer_right, (kind, position, fault.jump, report["jump"])
    assert kind_right, (kind, position, fault.kind, fault.details, report["cause"])
    # One node was changed: every parameter difference is that node's (a replaced operator also
    # differs in the attributes the two ops take).
    differences = report["parameter_differences"]
    assert {d["output"] for d in differences} == {fault.jump}, differences
    if kind != "op_replaced":
        assert len(differences) == 1, differences
    return fault


@pytest.mark.parametrize("kind", KINDS)
def test_localize_names_the_kind_of_change(deltann, demo, tmp_path, kind):
    check_kind(deltann, demo, tmp_path, kind, "middle")


@pytest.mark.long
@pytest.mark.parametrize("position", ["early", "late"])
@pytest.mark.parametrize("kind", KINDS)
def test_localize_names_the_kind_at_every_position(deltann, demo, tmp_path, kind, position):
    check_kind(deltann, demo, tmp_path, kind, position)


def test_terminal_output_shows_the_kind(deltann, demo, tmp_path):
    fault = inject(demo[1], "rescaled", "middle")
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(fault.model, str(faulty_path))
    out = localize(deltann, demo, faulty_path).stdout
    line = next(line for line in out.splitlines() if line.startswith(" > "))
    assert fault.node in line and "[rescaled: B = k*A with k = 1.5" in line, out
