"""`deltann localize --db C --images ...`: localisation over a campaign. A tiny network runs as
campaign model A, and a copy with one injected fault as a second model of the same database
(`run --new-model`); localize captures both on many images and must rank the faulty layer first:
its error is what separates the images whose top-1 differs from those where it agrees.

The network: input -> mix (1x1 Conv, R channel) -> act (Relu) -> GAP -> Flatten -> fc; class 1 iff
the red value is above 128. The faulty copy clips `act` at 100 (a Clip instead of the Relu), so
every image brighter than 128 flips to class 0, images between 100 and 128 are changed but keep
their class, and darker ones are untouched. It also adds 1e-3 to `mix`'s bias: an earlier
difference on every image, largest (relatively) on the dark ones, which must not be mistaken for
the cause of the flips.

Skipped with the reason where ONNX Runtime is not built or cannot capture.
"""
import json
import sqlite3

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ENV = "ort:opt=disable,threads=1"
SHAPE = [1, 3, 4, 4]
VALUES = list(range(60, 251, 10))  # one solid grey image per value; 130 and up flip


def spec():
    """Identity preprocessing: the tensor holds the pixel values."""
    return {"name": "campaign_fault", "input": {
        "name": "input", "shape": SHAPE, "layout": "NCHW", "dtype": "float32",
        "channel_order": "RGB", "resize": 4, "crop": 4, "interpolation": "bilinear",
        "scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        "output": {"name": "logits", "classes": 2, "label_offset": 0, "kind": "logits"}}


def network(faulty):
    inits = {"mix_w": np.array([1, 0, 0], np.float32).reshape(1, 3, 1, 1),
             "mix_b": np.array([1e-3 if faulty else 0], np.float32),
             "fc_w": np.array([[0], [1]], np.float32), "fc_b": np.array([128, 0], np.float32),
             "lo": np.array(0, np.float32), "hi": np.array(100, np.float32)}
    act = (helper.make_node("Clip", ["mix_out", "lo", "hi"], ["act_out"], name="act") if faulty
           else helper.make_node("Relu", ["mix_out"], ["act_out"], name="act"))
    nodes = [
        helper.make_node("Conv", ["input", "mix_w", "mix_b"], ["mix_out"], name="mix",
                         kernel_shape=[1, 1]),
        act,
        helper.make_node("GlobalAveragePool", ["act_out"], ["gap_out"], name="gap"),
        helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flat", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "campaign_fault", [helper.make_tensor_value_info("input", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """(database, model A's path, model B's path); None when the campaign could not run."""
    folder = tmp_path_factory.mktemp("campaign")
    paths = {}
    for name, faulty in (("original", False), ("faulty", True)):
        paths[name] = folder / f"{name}.onnx"
        onnx.save(network(faulty), str(paths[name]))
        (folder / f"{name}.spec.json").write_text(json.dumps(spec()))
    images = folder / "images"
    images.mkdir()
    for v in VALUES:
        Image.fromarray(np.full((4, 4, 3), v, np.uint8)).save(images / f"grey{v:03d}.png")
    return folder, paths, images


def run_campaign(deltann, campaign, tmp_path):
    folder, paths, images = campaign
    db = tmp_path / "c.db"
    for name, extra in (("original", []), ("faulty", ["--new-model"])):
        result = deltann.run("run", "--model", paths[name], "--images", images, "--db", db,
                             "--env", ENV, "--repeat", 1, "--warmup", 0, *extra, expect_rc=None)
        if result.returncode != 0 and "ort" in result.stderr and "not" in result.stderr:
            pytest.skip(f"ONNX Runtime is not available: {result.stderr.strip()}")
        assert result.returncode == 0, result.describe()
    return db


def test_campaign_ranks_the_faulty_layer_first(deltann, campaign, tmp_path):
    _, paths, _ = campaign
    db = run_campaign(deltann, campaign, tmp_path)
    result = deltann.run("localize", "--db", db, "--model", paths["original"], "--b-model",
                         paths["faulty"], "--a", ENV, "--b", ENV, "--images", "disagreeing",
                         "--json", expect_rc=None)
    if result.returncode != 0 and "cannot capture" in result.stderr:
        pytest.skip(f"ONNX Runtime cannot capture here: {result.stderr.strip()}")
    assert result.returncode == 3, result.describe()  # a layer separates the groups
    report = json.loads(result.stdout)
    assert report["kind"] == "campaign"
    flips = sum(v > 128 for v in VALUES)
    agree = len(VALUES) - flips
    assert report["groups"] == {"differing": flips, "agreeing": agree}, report["groups"]
    # Every differing image was used, and as many agreeing ones as there are (fewer here).
    assert report["selection"]["differing_used"] == flips
    assert report["selection"]["agreeing_used"] == agree
    ranked = report["ranked_layers"]
    assert ranked[0]["name"] == "act_out", [(r["name"], r["auc"]) for r in ranked]
    assert ranked[0]["auc"] == 1.0
    assert ranked[0]["p_holm"] < 0.01
    # `mix` differs on every image, but more (relatively) on the agreeing, dark ones: significant,
    # in the other direction, so it is neither first nor where the separation starts.
    mix = next(r for r in ranked if r["name"] == "mix_out")
    assert mix["auc"] < 0.5 and mix["p_holm"] < 0.05, mix
    assert report["first_separating"]["name"] == "act_out"
    # Each flipped image's own first jump is the faulty layer.
    top = report["first_jumps"][0]
    assert top == {"layer": "act_out", "differing": flips, "agreeing": top["agreeing"]}, top
    assert len(report["per_image"]) == len(VALUES)
    # Stored with the campaign, in a shape of its own.
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT image_key, json FROM localizations").fetchall()
    assert len(rows) == 1 and rows[0][0] == f"{len(VALUES)} images (campaign)"
    stored = json.loads(rows[0][1])
    assert stored["kind"] == "campaign" and "layers" not in stored
    assert report["stored_as"] == 1

    # The terminal table names the faulty layer as where the separation starts; a cap and a
    # seed choose a reproducible sample.
    text = deltann.run("localize", "--db", db, "--model", paths["original"], "--b-model",
                       paths["faulty"], "--a", ENV, "--b", ENV, "--images", "all",
                       "--max-images", 12, "--seed", 3, expect_rc=3)
    assert "separation starts at layer" in text.stdout and "'act_out'" in text.stdout, \
        text.describe()
    assert "6 of 13 images whose top-1 differs and 6 of 7" in text.stderr, text.describe()


@pytest.mark.parametrize("args,message", [
    (["--images", "some"], "'all' or 'disagreeing'"),
    (["--images", "all", "--image", "grey060.png"], "--images takes no --image"),
    (["--images", "all", "--max-images", "1"], "at least 2"),
])
def test_usage_errors(deltann, campaign, tmp_path, args, message):
    _, paths, _ = campaign
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    result = deltann.run("localize", "--db", db, "--a", ENV, "--b", ENV, *args, expect_rc=2)
    assert message in result.stderr, result.describe()


def test_images_needs_a_database(deltann, campaign):
    _, paths, _ = campaign
    result = deltann.run("localize", "--model", paths["original"], "--a", ENV, "--b", ENV,
                         "--images", "all", expect_rc=2)
    assert "--db" in result.stderr, result.describe()


def test_b_model_must_be_in_the_campaign(deltann, campaign, tmp_path):
    folder, paths, images = campaign
    db = tmp_path / "one.db"
    deltann.run("run", "--model", paths["original"], "--images", images, "--db", db, "--env",
                ENV, "--repeat", 1, "--warmup", 0)
    result = deltann.run("localize", "--db", db, "--b-model", paths["faulty"], "--a", ENV,
                         "--b", ENV, "--images", "all", expect_rc=1)
    assert "holds no model" in result.stderr and "faulty.onnx" in result.stderr, result.describe()
