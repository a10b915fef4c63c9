"""`deltann localize --b tvm:opt=3 --b-model F` names the injected change as the cause although
TVM's capture holds one tensor per fused kernel (`fused_conv2d17_add13_maximum7_minimum7#2`), none
of them an ONNX name: the two ONNX files are compared node by name, and the nodes inside B's
kernel at the first jump (walking back from the matched A tensor to the tensors B materialised)
own the cause. The changed Conv's output is never materialised by TVM (it is fused with its bias
and ReLU6), so the jump is the kernel's tensor (the Clip's output) and the cause is the Conv's
weights inside it, with their kind, instead of "node missing in B" for every layer.

One change of each kind from tests/pylib/deltann_faults.py at the middle position: three in the
default suite (each compiles the faulty copy with TVM, 10 to 15 s on two shared cores), the
rest in the long suite. Where B's file shares no node name with A's (a converter renamed
everything), the files are aligned by their weighted layers in graph order instead: a faulty copy
with every node and tensor renamed must give the same cause, and (long suite) so must the real
tf2onnx round trip `tvm@onnx>tflite>onnx`, whose lost classifier bias is the cause at its jump.
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


def renamed(model):
    """A copy with every node, initialiser and inner tensor renamed (graph input and output keep
    theirs: the spec names them), as a converter leaves it."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names = {}
    for i, t in enumerate(graph.initializer):
        names[t.name] = f"w{i}"
        t.name = names[t.name]
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        for j, out in enumerate(node.output):
            if out and out not in keep:
                names[out] = f"t{i}_{j}"
    for node in graph.node:
        node.input[:] = [names.get(x, x) for x in node.input]
        node.output[:] = [names.get(x, x) for x in node.output]
    del graph.value_info[:]
    return copy


def localize_tvm(deltann, demo, tmp_path, kind, *extra, rename=False):
    path, model, image = demo
    fault = inject(model, kind, "middle")
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(renamed(fault.model) if rename else fault.model, str(faulty_path))
    result = deltann.run("localize", "--model", path, "--image", image, "--a", A_ENV,
                         "--b", B_ENV, "--b-model", faulty_path, *extra, expect_rc=None,
                         timeout=600)
    assert result.returncode == 3, result.describe()  # A and B diverge
    return fault, result


def check_fused_cause(deltann, demo, tmp_path, kind, rename=False):
    fault, result = localize_tvm(deltann, demo, tmp_path, kind, "--json", rename=rename)
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
    if rename:  # each difference also names B's node: the aligned one, renamed
        assert all(d["node_b"].startswith("n") for d in differences), differences
    return fault, report


@pytest.mark.parametrize("kind", DEFAULT_KINDS)
def test_fused_kernel_cause_names_the_changed_node(deltann, demo, tmp_path, kind):
    check_fused_cause(deltann, demo, tmp_path, kind)


@pytest.mark.long
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in DEFAULT_KINDS])
def test_fused_kernel_cause_names_every_kind(deltann, demo, tmp_path, kind):
    check_fused_cause(deltann, demo, tmp_path, kind)


@pytest.mark.parametrize("kind", ["rescaled"])
def test_fused_kernel_cause_across_renamed_nodes(deltann, demo, tmp_path, kind):
    check_fused_cause(deltann, demo, tmp_path, kind, rename=True)


@pytest.mark.long
def test_fused_kernel_cause_of_the_tf2onnx_round_trip(deltann, demo):
    """TVM on tf2onnx's renamed, NHWC-fed copy: the jump is the classifier's kernel and the cause
    is the bias the round trip lost, found by aligning the files' weighted layers."""
    path, _, image = demo
    result = deltann.run("localize", "--model", path, "--image", image, "--a", A_ENV,
                         "--b", "tvm@onnx>tflite>onnx:opt=3,threads=1", "--json",
                         expect_rc=None, timeout=1200)
    assert result.returncode == 3, result.describe()
    report = json.loads(result.stdout)
    assert report["jump"]["name"] == "logits", report["jump"]
    assert "/_fc/Gemm" in [n["node"] for n in report["jump_kernel"]["nodes"]]
    assert [(c["node"], c["kind"]) for c in report["cause"]] == [("/_fc/Gemm", "missing")], \
        report["cause"]
    assert len(report["parameter_differences"]) == 1, report["parameter_differences"]


def test_fused_kernel_cause_on_the_terminal(deltann, demo, tmp_path):
    fault, result = localize_tvm(deltann, demo, tmp_path, "rescaled")
    out = result.stdout
    cause = next(line for line in out.splitlines() if line.startswith(" > "))
    assert fault.node in cause and " in layer " in cause and "[rescaled: B = k*A" in cause, out
    kernel = next(line for line in out.splitlines() if line.startswith("B's kernel at the first"))
    assert "fused_conv2d" in kernel and f"{fault.node} (Conv)" in kernel, out
    assert "node missing in B" not in out, out
