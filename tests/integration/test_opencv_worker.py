"""deltann-worker-opencv (OpenCV DNN) driven over the worker protocol (docs/PROTOCOL.md): the
spec's input shape is checked against the one the ONNX model declares. OpenCV's network reshapes
itself to any blob, so without that check a 300x300 tensor would run through a 224x224 model and
the variant would report `done`.

- a spec whose shape the model does not declare is a load error naming both shapes;
- dimensions the model leaves open (symbolic) take the spec's size;
- (a tensor of another shape than the spec's is a run error: test_worker_conformance.py, for
  every worker);
- an input name the model lacks is a load error listing the inputs it has.

Skipped when the worker was not built. By hand: see tests/integration/conftest.py.
"""
import json

import numpy as np
import pytest

from deltann_testlib import WorkerClient, onnxruntime_output, output_of, worker_path

ENV = "opencv:opt=on,device=cpu,threads=1"
ATOL = 1e-4
RTOL = 1e-6


@pytest.fixture(scope="module")
def worker():
    return worker_path("opencv", "OpenCV's dnn module or libonnx-dev not found at configure time")


def spec_of(model):
    return json.loads(model.with_suffix(".spec.json").read_text())


def with_size(spec, size):
    spec = json.loads(json.dumps(spec))
    spec["input"].update(shape=[1, 3, size, size], resize=size, crop=size)
    return spec


def test_spec_shape_the_model_does_not_declare_is_a_load_error(worker, models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    with WorkerClient(worker) as w:
        # wrong_shape.onnx declares [1,3,16,16]; its spec claims [1,3,8,8].
        reply = w.load(models.wrong_shape, ENV, spec_of(models.wrong_shape))
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert reply["message"] == ("model input 'input' has shape [1,3,16,16] but the spec says "
                                    "[1,3,8,8] (NCHW)"), reply
        # The study's case: a larger image than the model was made for.
        reply = w.load(models.tiny, ENV, with_size(spec_of(models.tiny), 300))
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "[1,3,8,8]" in reply["message"] and "[1,3,300,300]" in reply["message"], reply
        # The worker stays usable, and a failed load leaves no model behind.
        assert "before a successful load" in w.run(tmp_path / "x.npy")["message"]
        assert w.load(models.tiny, ENV, spec_of(models.tiny))["event"] == "loaded"


def test_open_dimensions_take_the_specs_size(worker, models, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(models.tiny))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, name in zip(dims, ["batch", None, "height", "width"]):
        if name:
            d.dim_param = name
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, str(dynamic))
    x = np.random.default_rng(3).uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x16.npy", x)
    with WorkerClient(worker) as w:
        assert w.load(dynamic, ENV, with_size(spec_of(models.tiny), 16))["event"] == "loaded"
        got = output_of(w.run(tmp_path / "x16.npy"))
    np.testing.assert_allclose(got, onnxruntime_output(dynamic, x), atol=ATOL, rtol=RTOL)


def test_unknown_input_name_is_a_load_error(worker, models):
    spec = spec_of(models.tiny)
    spec["input"]["name"] = "image"
    with WorkerClient(worker) as w:
        reply = w.load(models.tiny, ENV, spec)
        assert reply["event"] == "error" and reply["stage"] == "load", reply
        assert "no input named 'image'; it has: input" in reply["message"], reply
