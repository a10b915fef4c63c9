"""`deltann localize --b tvm:opt=3 --b-model F` names the injected change as the cause although
TVM's capture holds one tensor per fused kernel (`fused_conv2d17_add13_maximum7_minimum7#2`), none
of them an ONNX name: the two ONNX files are compared node by name, and the nodes inside B's
kernel at the first jump (walking back from the matched A tensor to the tensors B materialised)
own the cause. The changed Conv's output is never materialised by TVM (it is fused with its bias
and ReLU6), so the jump is the kernel's tensor (the Clip's output) and the cause is the Conv's
weights inside it, with their kind, instead of "node missing in B" for every layer.

One change of each kind from tests/pylib/deltann_faults.py at the middle position: three in the
default suite (each compiles the faulty copy with TVM, 10 to 15 s on two shared cores), the
rest in the long suite.
Skipped where the TVM worker was not built.
"""
import json

import onnx
import pytest

from deltann_faults import KINDS, inject
from deltann_testlib import Deltann, worker_path

A_ENV = "ort:opt=disable,threads=1"
B_ENV = "tvm:opt=3,threads=1"
DEFAULT_KINDS = ["rescaled", "padding", "clip_bound"]


@pytest.fixture(scope="module")
def deltann(deltann_bin, tmp_path_factory):
    """One cache for the module: the terminal test reuses the TVM build of the JSON test's copy
    (TVM's artifacts are cached by content)."""
    return Deltann(deltann_bin, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def demo(demo_folder):
    worker_path("tvm", "TVM not found at configure time")
    model = onnx.load(str(demo_folder / "efficientnet-lite0.onnx"))
    return demo_folder / "efficientnet-lite0.onnx", model, demo_folder / "images" / "apple.jpg"


def localize_tvm(deltann, demo, tmp_path, kind, *extra):
    path, model, image = demo
    fault = inject(model, kind, "middle")
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(fault.model, str(faulty_path))
    result = deltann.run("localize", "--model", path, "--image", image, "--a", A_ENV,
                         "--b", B_ENV, "--b-model", faulty_path, *extra, expect_rc=None,
                         timeout=600)
    assert result.returncode == 3, result.describe()  # A and B diverge
    return fault, result


def check_fused_cause(deltann, demo, tmp_path, kind):
    fault, result = localize_tvm(deltann, demo, tmp_path, kind, "--json")
    report = json.loads(result.stdout)
    jump = report["jump"]
    assert jump is not None and jump["match"].startswith("structure"), jump
    # B's tensor at the jump is a kernel, and the changed node is inside it.
    kernel = report["jump_kernel"]
    assert kernel["kernel"] == jump["name_b"] and not jump["name_b"].startswith("/"), kernel
    assert fault.node in [n["node"] for n in kernel["nodes"]], kernel
    # The changed node is the only one that differs, and it is the cause, with its kind.
    differences = report["parameter_differences"]
    assert {d["node"] for d in differences} == {fault.node}, differences
    assert all(d["kind"] != "node-missing" for d in differences), differences
    assert {c["node"] for c in report["cause"]} == {fault.node}, report["cause"]
    assert all(c["layer"] == jump["name"] for c in report["cause"] if c["output"] != jump["name"])
    assert any(c["kind"] == fault.kind and
               all(c["details"].get(k) == v for k, v in fault.details.items())
               for c in report["cause"]), (fault.kind, fault.details, report["cause"])
    return fault, report


@pytest.mark.parametrize("kind", DEFAULT_KINDS)
def test_fused_kernel_cause_names_the_changed_node(deltann, demo, tmp_path, kind):
    check_fused_cause(deltann, demo, tmp_path, kind)


@pytest.mark.long
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in DEFAULT_KINDS])
def test_fused_kernel_cause_names_every_kind(deltann, demo, tmp_path, kind):
    check_fused_cause(deltann, demo, tmp_path, kind)


def test_fused_kernel_cause_on_the_terminal(deltann, demo, tmp_path):
    fault, result = localize_tvm(deltann, demo, tmp_path, "rescaled")
    out = result.stdout
    cause = next(line for line in out.splitlines() if line.startswith(" > "))
    assert fault.node in cause and " in layer " in cause and "[rescaled: B = k*A" in cause, out
    kernel = next(line for line in out.splitlines() if line.startswith("B's kernel at the first"))
    assert "fused_conv2d" in kernel and f"{fault.node} (Conv)" in kernel, out
    assert "node missing in B" not in out, out
