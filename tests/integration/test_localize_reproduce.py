"""`deltann localize --reproduce DIR` and `--tensor X.npy` on models with a known answer.

The fault-injected copies of test_localize_faults.py run as environment B (`--b-model`) against
the original as A. For a fault local to one node (a BatchNorm epsilon, a Conv's padding) the
minimal reproducer must be exactly that node, fed A's captured input of it, and the one-line
command it writes must show the same divergence (relative error within a factor of 2 of the full
model's at that layer). A fault at a node with two non-constant inputs (a residual Add turned into
a Sub) needs the window grown until one input remains. `--tensor` feeds a raw tensor: a wrong
shape is a clear error; the image's own preprocessed tensor gives the image form's capture.

Skipped with the reason where ONNX Runtime is not built or cannot capture.
"""
import json
import shlex
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deltann_testlib import write_random_images
from test_localize_faults import ENV, SIZE, inject, network, node

SPEC = {"name": "faults",
        "input": {"name": "input", "shape": [1, 3, SIZE, SIZE], "layout": "NCHW",
                  "resize": SIZE, "crop": SIZE},
        "output": {"name": "logits", "classes": 10, "label_offset": 0, "kind": "logits"}}


def save_with_spec(model, path):
    onnx.save(model, str(path))
    path.with_suffix(".spec.json").write_text(json.dumps(SPEC))
    return path


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reproduce")
    model = network(np.random.default_rng(11))
    path = save_with_spec(model, folder / "net.onnx")
    image = write_random_images(folder / "images", [(24, 20)], seed=5)[0]
    return model, path, image


def localize(deltann, *args, expect_rc=0):
    result = deltann.run("localize", *args, expect_rc=None)
    if result.returncode != 0 and "cannot capture" in result.stderr:
        pytest.skip(f"ONNX Runtime cannot capture here: {result.stderr.strip()}")
    assert result.returncode == expect_rc, result.describe()
    return result


def captured(keep, name):
    """A tensor of a --keep capture folder, by name (float64 as the worker wrote it)."""
    index = json.loads((keep / "index.json").read_text())
    entry = next(t for t in index["tensors"] if t["name"] == name)
    return np.load(keep / entry["file"])


def run_command(deltann, command, *extra):
    """Runs the reproducer's one-line command with this build's deltann in place of `deltann`;
    it exits 3 while A and B diverge."""
    words = shlex.split(command)
    assert words[:2] == ["deltann", "localize"], command
    return localize(deltann, *words[2:], *extra, expect_rc=3)


@pytest.mark.parametrize("fault,node_name,op,node_input", [
    ("bn_epsilon", "bn2", "BatchNormalization", "conv2_out"),
    ("padding", "conv2", "Conv", "relu1_out"),
])
def test_reproducer_is_the_faulty_node(deltann, original, tmp_path, fault, node_name, op,
                                       node_input):
    model, path, image = original
    faulty, expected = inject(model, fault)
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(faulty, str(faulty_path))
    out, keep = tmp_path / "repro", tmp_path / "keep"
    result = localize(deltann, "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                      "--b-model", faulty_path, "--reproduce", out, "--keep", keep, "--json",
                      expect_rc=3)
    report = json.loads(result.stdout)
    assert report["jump"]["name"] == expected
    repro = report["reproduce"]
    assert repro["reproduced"], repro
    assert repro["node_count"] == 1, repro
    assert [(n["name"], n["op"]) for n in repro["nodes"]] == [(node_name, op)]
    assert repro["input"] == node_input and repro["output"] == expected
    full = next(layer for layer in report["layers"] if layer["name"] == expected)
    assert repro["full_rel_l2"] == pytest.approx(full["rel_l2"])
    for name in ("repro.onnx", "repro_b.onnx", "repro.spec.json", "input.npy", "reproduce.sh",
                 "README.txt"):
        assert (out / name).is_file(), name
    # The subgraph is that one node, and B's copy carries the fault.
    cut, cut_b = onnx.load(str(out / "repro.onnx")), onnx.load(str(out / "repro_b.onnx"))
    assert [n.name for n in cut.graph.node] == [node_name]
    assert [i.name for i in cut.graph.input] == [node_input]
    assert [o.name for o in cut.graph.output] == [expected]
    assert node(cut_b, node_name) != node(cut, node_name)
    # input.npy is A's captured input of the node, bit for bit.
    fed = np.load(out / "input.npy")
    assert fed.dtype == np.float32
    np.testing.assert_array_equal(fed, captured(keep / "a", node_input).astype(np.float32))
    # The one-line command shows the same divergence at that node.
    command = (out / "README.txt").read_text().splitlines()[0]
    assert command == repro["command"]
    again = json.loads(run_command(deltann, command, "--json").stdout)
    assert again["jump"]["name"] == expected, again["jump"]
    ratio = again["jump"]["rel_l2"] / full["rel_l2"]
    assert 0.5 <= ratio <= 2, (again["jump"], full)
    # reproduce.sh runs the same command on the files beside it: the folder still works when
    # moved elsewhere and run from yet another folder.
    moved = tmp_path / "sent elsewhere" / "repro"
    moved.parent.mkdir()
    shutil.move(out, moved)
    script = subprocess.run(["sh", str(moved / "reproduce.sh"), "--json"], capture_output=True,
                            text=True, env=deltann.environment({"DELTANN": str(deltann.binary)}),
                            cwd=moved.parent, timeout=120)
    assert script.returncode == 3, script.stderr  # A and B still diverge
    again = json.loads(script.stdout)
    assert again["jump"]["name"] == expected
    assert again["model"] == str(moved / "repro.onnx")


def residual_network(rs):
    """conv1 > relu1 > (conva, convb) > add > relu > gap > flat > fc: the Add reads two
    non-constant tensors, so a reproducer of it has to take in their common source."""
    def w(*shape):
        return rs.standard_normal(shape).astype(np.float32) * 0.3

    inits = {f"{k}_{p}": w(*s) for k, shapes in
             {"conv1": ((8, 3, 3, 3), (8,)), "conva": ((8, 8, 3, 3), (8,)),
              "convb": ((8, 8, 1, 1), (8,))}.items() for p, s in zip("wb", shapes)}
    inits.update({"fc_w": w(10, 8), "fc_b": w(10)})

    def conv(name, x, k):
        return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_out"], name=name,
                                kernel_shape=[k, k], pads=[k // 2] * 4)
    nodes = [conv("conv1", "input", 3),
             helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
             conv("conva", "relu1_out", 3), conv("convb", "relu1_out", 1),
             helper.make_node("Add", ["conva_out", "convb_out"], ["add_out"], name="add"),
             helper.make_node("Relu", ["add_out"], ["relu2_out"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["relu2_out"], ["gap_out"], name="gap"),
             helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flat", axis=1),
             helper.make_node("Gemm", ["flat_out", "fc_w", "fc_b"], ["logits"], name="fc",
                              transB=1)]
    graph = helper.make_graph(
        nodes, "residual",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_reproducer_grows_to_one_input(deltann, original, tmp_path):
    _, _, image = original
    model = residual_network(np.random.default_rng(3))
    path = save_with_spec(model, tmp_path / "residual.onnx")
    faulty = onnx.ModelProto()
    faulty.CopyFrom(model)
    node(faulty, "add").op_type = "Sub"
    faulty_path = tmp_path / "residual_sub.onnx"
    onnx.save(faulty, str(faulty_path))
    # A folder name the shell must quote: the written command quotes it.
    out, keep = tmp_path / "repro dir's", tmp_path / "keep"
    result = localize(deltann, "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                      "--b-model", faulty_path, "--reproduce", out, "--keep", keep, "--json",
                      expect_rc=3)
    report = json.loads(result.stdout)
    assert report["jump"]["name"] == "add_out"
    repro = report["reproduce"]
    assert repro["reproduced"], repro
    # {add} reads two tensors; adding convb (the later producer), then conva, leaves relu1_out.
    assert [n["name"] for n in repro["nodes"]] == ["conva", "convb", "add"], repro
    assert repro["input"] == "relu1_out" and repro["trials"] == 1 and repro["windows"] == 3
    np.testing.assert_array_equal(np.load(out / "input.npy"),
                                  captured(keep / "a", "relu1_out").astype(np.float32))
    again = json.loads(run_command(deltann, repro["command"], "--json").stdout)
    assert again["jump"]["name"] == "add_out"
    assert 0.5 <= again["jump"]["rel_l2"] / repro["full_rel_l2"] <= 2


def test_tensor_of_the_wrong_shape_is_a_clear_error(deltann, original, tmp_path):
    _, path, _ = original
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((1, 3, SIZE, SIZE + 1), np.float32))
    result = deltann.run("localize", "--model", path, "--tensor", wrong, "--a", ENV, "--b", ENV,
                         expect_rc=1)
    assert f"has shape [1,3,{SIZE},{SIZE + 1}]" in result.stderr, result.stderr
    assert f"[1,3,{SIZE},{SIZE}]" in result.stderr, result.stderr
    doubles = tmp_path / "doubles.npy"
    np.save(doubles, np.zeros((1, 3, SIZE, SIZE), np.float64))
    result = deltann.run("localize", "--model", path, "--tensor", doubles, "--a", ENV, "--b", ENV,
                         expect_rc=1)
    assert "doubles.npy" in result.stderr, result.stderr
    result = deltann.run("localize", "--model", path, "--tensor", wrong, "--image", "x.png",
                         "--a", ENV, "--b", ENV, expect_rc=2)
    assert "either --image or --tensor" in result.stderr


def test_tensor_gives_the_image_forms_capture(deltann, original, tmp_path):
    _, path, image = original
    keep_image, keep_tensor = tmp_path / "image", tmp_path / "tensor"
    localize(deltann, "--model", path, "--image", image, "--a", ENV, "--b", ENV,
             "--keep", keep_image)
    # The image form left its preprocessed tensor in the (test-private) cache.
    tensors = list((deltann.cache_dir / "tensors").rglob("*.npy"))
    assert len(tensors) == 1, tensors
    fresh_cache = tmp_path / "fresh-cache"
    result = localize(deltann, "--model", path, "--tensor", tensors[0], "--a", ENV, "--b", ENV,
                      "--keep", keep_tensor, "--cache", fresh_cache, "--json")
    report = json.loads(result.stdout)
    assert report["tensor"] == str(tensors[0]) and "image" not in report
    assert not (fresh_cache / "tensors").exists()  # no preprocessing for a raw tensor
    index_a = json.loads((keep_image / "a" / "index.json").read_text())
    index_b = json.loads((keep_tensor / "a" / "index.json").read_text())
    assert [t["name"] for t in index_a["tensors"]] == [t["name"] for t in index_b["tensors"]]
    for t in index_a["tensors"]:
        np.testing.assert_array_equal(np.load(keep_image / "a" / t["file"]),
                                      np.load(keep_tensor / "a" / t["file"]))


def test_raw_tensor_model_refuses_an_image(deltann, original, tmp_path):
    model, path, image = original
    faulty, _ = inject(model, "bn_epsilon")
    faulty_path = tmp_path / "faulty.onnx"
    onnx.save(faulty, str(faulty_path))
    out = tmp_path / "repro"
    localize(deltann, "--model", path, "--image", image, "--a", ENV, "--b", ENV,
             "--b-model", faulty_path, "--reproduce", out, expect_rc=3)
    spec = json.loads((out / "repro.spec.json").read_text())
    assert spec["input"] == {"name": "conv2_out", "kind": "tensor", "shape": [1, 8, SIZE, SIZE]}
    assert spec["output"]["name"] == "bn2_out" and spec["output"]["classes"] == 8 * SIZE * SIZE
    result = deltann.run("localize", "--model", out / "repro.onnx", "--image", image, "--a", ENV,
                         "--b", ENV, expect_rc=1)
    assert "raw tensor" in result.stderr and "--tensor" in result.stderr, result.stderr


def test_no_divergence_writes_no_reproducer(deltann, original, tmp_path):
    _, path, image = original
    out = tmp_path / "repro"
    result = localize(deltann, "--model", path, "--image", image, "--a", ENV, "--b", ENV,
                      "--reproduce", out, "--json")
    repro = json.loads(result.stdout)["reproduce"]
    assert repro["reproduced"] is False and "nothing to reproduce" in repro["note"]
    assert not (out / "repro.onnx").exists()
