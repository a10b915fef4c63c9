"""Per-layer capture (the worker's capture op) and `deltann localize` (docs/LOCALIZE.md): capture
works on ONNX Runtime and OpenCV DNN for the tiny models and the demo model, tensor names match
across the two engines, their errors are tiny, the table and the JSON carry the documented fields,
and the --db form picks the image whose top-1 differs."""
import json
import shutil

import numpy as np
import pytest

from deltann_testlib import (Deltann, WorkerClient, env_path, worker_path,
                             write_random_images)

LAYER_FIELDS = {"position", "name", "op_a", "op_b", "shape_a", "shape_b", "comparable",
                "max_abs", "mean_abs", "rel_l2", "growth", "growth_basis", "above_threshold"}
TOP_FIELDS = {"a", "b", "options", "matched", "only_a", "only_b", "above_threshold", "jump",
              "layers", "votes", "verdict", "references", "model", "image", "seconds"}


def spec_of(model):
    return json.loads(model.with_suffix(".spec.json").read_text())


def capture(engine, env, model, tensor, out_dir):
    """Loads `model` in ENGINE's worker and captures `tensor`; returns (reply, index)."""
    with WorkerClient(worker_path(engine, "engine not built")) as worker:
        loaded = worker.load(str(model), env, spec_of(model))
        assert loaded["event"] == "loaded", loaded
        reply = worker.request({"op": "capture", "tensor": str(tensor), "out_dir": str(out_dir)})
        # The worker stays usable after a capture: an ordinary run still answers.
        after = worker.run(str(tensor), first=False, warmup=0, repeat=1)
        assert after["event"] == "result", after
    index = json.loads((out_dir / "index.json").read_text()) if reply["event"] == "captured" \
        else None
    return reply, index


@pytest.mark.parametrize("engine,env", [
    ("ort", "ort:opt=all,device=cpu,threads=1"),
    ("opencv", "opencv:opt=on,device=cpu,threads=1"),
])
def test_capture_op_writes_float64_tensors_and_index(models, tmp_path, engine, env):
    x = np.random.default_rng(7).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    reply, index = capture(engine, env, models.tiny, tmp_path / "x.npy", tmp_path / "cap")
    assert reply["event"] == "captured", reply
    assert reply["count"] == len(index["tensors"]) > 0
    assert reply["index"] == str(tmp_path / "cap" / "index.json")
    assert reply["mode"] == index["mode"] and index["mode"].startswith(
        "onnxruntime" if engine == "ort" else "opencv")
    for i, entry in enumerate(index["tensors"]):
        assert set(entry) == {"index", "name", "op", "shape", "file"}
        assert entry["index"] == i and entry["file"] == f"{i:04d}.npy"
        array = np.load(tmp_path / "cap" / entry["file"])
        assert array.dtype == np.float64 and list(array.shape) == entry["shape"]
    # The last captured tensor is the model's output: compare with ONNX Runtime's Python API.
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(models.tiny), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    last = np.load(tmp_path / "cap" / index["tensors"][-1]["file"])
    np.testing.assert_allclose(last.reshape(expected.shape), expected, rtol=1e-5, atol=1e-3)


def test_engine_without_capture_answers_with_an_error(models, tmp_path, test_workers):
    """The testing engine has no capture(): the reply is an error at stage capture and the worker
    goes on answering."""
    with WorkerClient(test_workers / "deltann-worker-testing") as worker:
        loaded = worker.load(str(models.tiny), "testing:opt=none,device=cpu,threads=1,after=9",
                             spec_of(models.tiny))
        if loaded["event"] != "loaded":
            pytest.skip(f"the testing engine does not load this model: {loaded}")
        x = np.zeros((1, 3, 8, 8), np.float32)
        np.save(tmp_path / "x.npy", x)
        reply = worker.request({"op": "capture", "tensor": str(tmp_path / "x.npy"),
                                "out_dir": str(tmp_path / "cap")})
        assert reply["event"] == "error" and reply["stage"] == "capture", reply
        assert "cannot capture" in reply["message"]
        assert worker.run(str(tmp_path / "x.npy"), first=False, warmup=0, repeat=1)["event"] \
            == "result"


def exit_code_of(report):
    """localize exits 3 when a layer diverges (a jump), 0 when none does."""
    return 3 if report["jump"] else 0


def localize_json(deltann, *args):
    result = deltann.run("localize", *args, "--json", expect_rc=None)
    report = json.loads(result.stdout)
    assert result.returncode == exit_code_of(report), result.describe()
    assert TOP_FIELDS <= set(report), set(report)
    for layer in report["layers"]:
        assert LAYER_FIELDS <= set(layer), layer
    return report


@pytest.fixture
def tiny_image(tmp_path):
    (image,) = write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    return image


def test_same_engine_twice_agrees_exactly(models, deltann, tiny_image):
    report = localize_json(deltann, "--model", models.tiny, "--image", tiny_image,
                           "--a", "ort:opt=all,threads=1", "--b", "ort:opt=all,threads=2")
    assert report["matched"] == len(report["layers"]) > 0
    assert report["only_a"] == [] and report["only_b"] == []
    assert all(layer["max_abs"] == 0 and layer["rel_l2"] == 0 for layer in report["layers"])
    assert report["jump"] is None and report["above_threshold"] == 0
    assert report["verdict"] is None and report["votes"] == []


def test_ort_against_opencv_on_the_tiny_model(models, deltann, tiny_image):
    report = localize_json(deltann, "--model", models.tiny, "--image", tiny_image,
                           "--a", "ort:opt=disable", "--b", "opencv:opt=off")
    assert report["a"]["env"] == "ort:opt=disable,device=cpu,threads=1"
    assert report["b"]["env"] == "opencv:opt=off,device=cpu,threads=1"
    assert report["matched"] >= report["a"]["tensors"] - 1  # names match across engines
    assert max(layer["rel_l2"] for layer in report["layers"]) < 1e-4


def test_reference_vote(models, deltann, tiny_image):
    """With ORT as reference for ORT against OpenCV, B (OpenCV) is the one farther from it
    wherever they differ; the vote fields are there and the verdict is never 'a'."""
    report = localize_json(deltann, "--model", models.tiny, "--image", tiny_image,
                           "--a", "ort:opt=disable", "--b", "opencv:opt=off",
                           "--ref", "ort:opt=basic", "--threshold", "0")
    (vote,) = report["votes"]
    assert vote["reference"] == "ort:opt=basic,device=cpu,threads=1"
    assert set(vote) == {"reference", "at_jump", "layers_a_farther", "layers_b_farther",
                         "majority"}
    assert vote["layers_a_farther"] == 0
    assert report["verdict"] in ("b", "undecided")
    for layer in report["layers"]:
        (ref,) = layer["references"]
        assert ref["rel_a"] == 0


def test_table_on_the_demo_model(deltann_bin, tmp_path):
    demo = env_path("DELTANN_DEMO_DIR", "the demo model made by scripts/setup")
    model = demo / "efficientnet-lite0.onnx"
    if not model.is_file():
        pytest.skip(f"{model} missing (run scripts/setup)")
    image = next((demo / "images").iterdir())
    cache = tmp_path / "cache"
    cache.mkdir()
    deltann = Deltann(deltann_bin, cache)
    result = deltann.run("localize", "--model", model, "--image", image,
                         "--a", "ort:opt=disable", "--b", "opencv", "--keep", tmp_path / "keep",
                         expect_rc=None)
    assert result.returncode in (0, 3), result.describe()
    text = result.stdout
    for expected in ("A: ort:opt=disable,device=cpu,threads=1",
                     "B: opencv:opt=on,device=cpu,threads=1", "matched ", "rel L2", "growth",
                     "matched layers above rel L2", "took "):
        assert expected in text, result.describe()
    assert result.seconds < 60, result.describe()
    # The kept captures: names match for (nearly) every layer and the errors are tiny.
    a = json.loads((tmp_path / "keep" / "a" / "index.json").read_text())
    b = json.loads((tmp_path / "keep" / "b" / "index.json").read_text())
    names_a = {t["name"] for t in a["tensors"]}
    names_b = {t["name"] for t in b["tensors"]}
    assert len(names_a & names_b) >= 0.9 * len(names_a), sorted(names_a ^ names_b)[:10]
    report = localize_json(deltann, "--model", model, "--image", image,
                           "--a", "ort:opt=all", "--b", "opencv:opt=off")
    assert report["matched"] >= 0.9 * report["a"]["tensors"]
    assert max(layer["rel_l2"] for layer in report["layers"]) < 1e-4
    assert "fusion" in report["a"]["mode"] and "fus" in report["b"]["mode"]


def test_captures_form_compares_stored_folders(models, deltann, tiny_image, tmp_path):
    """--captures localises folders captured earlier (here kept by --keep) exactly as the run
    that made them, with the given labels; a folder without index.json and mixing it with a
    model are refused."""
    keep = tmp_path / "keep"
    live = localize_json(deltann, "--model", models.tiny, "--image", tiny_image,
                         "--a", "ort:opt=disable", "--b", "opencv:opt=off", "--ref", "reference",
                         "--keep", keep)
    stored = json.loads(deltann.run("localize", "--captures", keep / "a", keep / "b",
                                    keep / "ref0", "--a", "A-label", "--b", "B-label",
                                    "--ref", "R-label", "--json",
                                    expect_rc=exit_code_of(live)).stdout)
    assert stored["captures"][0].endswith("a") and stored["references"][0]["env"] == "R-label"
    assert stored["a"]["env"] == "A-label" and stored["b"]["env"] == "B-label"
    assert stored["votes"][0]["reference"] == "R-label"
    assert [(l["name"], l["rel_l2"]) for l in stored["layers"]] == \
        [(l["name"], l["rel_l2"]) for l in live["layers"]]
    assert stored["jump"] == live["jump"]
    (tmp_path / "empty").mkdir()
    bad = deltann.run("localize", "--captures", keep / "a", tmp_path / "empty", expect_rc=1)
    assert "index.json" in bad.stderr, bad.describe()
    mixed = deltann.run("localize", "--captures", keep / "a", keep / "b", "--model", models.tiny,
                        expect_rc=2)
    assert "--captures" in mixed.stderr, mixed.describe()


def test_database_form_picks_the_flipped_image(models, deltann, tmp_path):
    info = json.loads((models.dir / "label_flip.json").read_text())
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(models.dir / info["input_image"], images / info["input_image"])
    # Two more images first in the campaign, on which both levels agree or differ less.
    write_random_images(images, [(8, 8), (8, 8)], seed=11, prefix="a_")
    env_a, env_b = f"ort:opt={info['level_a']}", f"ort:opt={info['level_b']}"
    db = tmp_path / "flip.db"
    deltann.run("run", "--model", models.label_flip, "--images", images, "--db", db,
                "--env", env_a, "--env", env_b, "--repeat", 1, "--warmup", 0)
    result = deltann.run("localize", "--db", db, "--a", env_a, "--b", env_b, "--json",
                         expect_rc=None)
    report = json.loads(result.stdout)
    assert result.returncode == exit_code_of(report), result.describe()
    assert report["image"].endswith(info["input_image"]), result.describe()
    assert "top-1 differs" in result.stderr
    assert report["matched"] > 0
    # --image KEY names another image of the campaign.
    other = sorted(p.name for p in images.iterdir() if p.name != info["input_image"])[0]
    report = localize_json(deltann, "--db", db, "--a", env_a, "--b", env_b, "--image", other)
    assert report["image"].endswith(other)


@pytest.mark.parametrize("args,rc,message", [
    (["--a", "ort"], 2, "--b ENV"),
    (["--a", "ort", "--b", "ort"], 2, "--model"),
    (["--a", "nosuchengine", "--b", "ort", "--image", "IMAGE"], 1, "nosuchengine"),
    (["--a", "ort", "--b", "ort", "--image", "/nonexistent.png"], 1, "nonexistent.png"),
    (["--a", "testing", "--b", "ort", "--image", "IMAGE"], 1, "cannot capture"),
])
def test_errors(models, deltann, tiny_image, test_workers, tmp_path, args, rc, message):
    args = [str(tiny_image) if a == "IMAGE" else a for a in args]
    extra = {}
    if "testing" in args:
        # The testing engine lives in its own folder: give localize a folder with both engines.
        both = tmp_path / "workers"
        both.mkdir()
        (both / "deltann-worker-testing").symlink_to(test_workers / "deltann-worker-testing")
        (both / "deltann-worker-ort").symlink_to(worker_path("ort", "engine not built"))
        extra = {"DELTANN_WORKER_DIR": str(both)}
    model = [] if args == ["--a", "ort"] or "--model" in message else ["--model", models.tiny]
    result = deltann.run("localize", *model, *args, env=extra, expect_rc=None)
    assert result.returncode == rc, result.describe()
    assert message in result.stderr, result.describe()
