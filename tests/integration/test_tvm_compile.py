"""python/deltann_tools/tvm_compile.py: the TVM build step of deltann's compiler axis.

Runs the tool as a subprocess (argument lists, the same Python as pytest) and checks the
exported libraries with TVM's own Python runtime against ONNX Runtime.
Skipped with a reason where tvm, onnx or onnxruntime cannot be imported.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (python/requirements.txt)")
np = pytest.importorskip("numpy")
ort = pytest.importorskip("onnxruntime", reason="the reference output needs onnxruntime")
pytest.importorskip("onnx", reason="make_test_models.py and the TVM frontend need onnx")

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = ROOT / "python"
# TVM's output must match ONNX Runtime's within this (float32, tiny model).
ATOL, RTOL = 1e-4, 1e-4
SHAPE = [1, 3, 8, 8]


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "deltann_tools.tvm_compile", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def tiny(models):
    return models.tiny


@pytest.fixture(scope="module")
def described():
    r = run_tool("--describe")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def compile_tiny(tiny, out, *extra):
    return run_tool("--model", str(tiny), "--input-name", "input",
                    "--input-shape", ",".join(map(str, SHAPE)), "--out", str(out), *extra)


def test_describe(described):
    assert described["name"] == "tvm"
    assert described["version"] == tvm.__version__
    knobs = {k["name"]: k for k in described["knobs"]}
    assert {"opt", "disable", "device"} <= set(knobs)
    assert knobs["opt"]["values"] == list(described["opt_levels"])
    assert knobs["opt"]["default"] in knobs["opt"]["values"]
    assert knobs["disable"]["default"] == "none"
    assert {"FuseOps", "FoldConstant"} <= set(knobs["disable"]["values"])
    assert set(described["targets"]) == {"cpu", "cuda"}
    for level in described["opt_levels"].values():
        assert {"pipeline", "opt_level", "config", "passes"} <= set(level)
        assert set(level["passes"]) <= set(knobs["disable"]["values"])


def run_python(code):
    env = dict(os.environ,
               PYTHONPATH=str(PYTHON_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TVM_FFI_DISABLE_TORCH_C_DLPACK", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_describe_imports_neither_tvm_nor_torch():
    """--describe reads the version from package metadata (docs/TVM.md, "Importing TVM without
    torch"): importing TVM would take seconds before every campaign."""
    r = run_python("import sys\nfrom deltann_tools import build_tvm\nbuild_tvm.describe()\n"
                   "print(sorted(m for m in ('tvm', 'tvm_ffi', 'torch') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_compiler_import_leaves_torch_and_its_extension_alone():
    """tvm_ffi would import torch and try (and fail) to JIT-build its torch C++ extension on every
    import; the tool imports TVM with torch hidden, and hides it no longer than that."""
    # Without torch imported, the extension's loader returns before building anything.
    r = run_python("import sys\nfrom deltann_tools import tvm_compile\n"
                   "tvm_compile.import_tvm()\n"
                   "print(sys.modules.get('torch', 'absent'))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["absent"], r.stdout


def test_every_opt_level_matches_onnxruntime(tiny, tmp_path, described):
    from tvm import relax
    x = np.random.default_rng(0).uniform(0, 255, SHAPE).astype("float32")
    sess = ort.InferenceSession(str(tiny), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {"input": x})[0]
    for opt in described["opt_levels"]:
        so = tmp_path / f"tiny_opt{opt}.so"
        r = compile_tiny(tiny, so, "--opt", opt, "--device", "cpu")
        assert r.returncode == 0, f"opt={opt}: {r.stderr}"
        info = json.loads(r.stdout.strip().splitlines()[-1])
        assert info["tvm_version"] == tvm.__version__ and info["compile_s"] >= 0
        assert info["opt_level"] == described["opt_levels"][opt]["opt_level"]
        assert info["disabled_passes"] == []
        lib = tvm.runtime.load_module(str(so))
        vm = relax.VirtualMachine(lib, tvm.cpu())
        got = vm["main"](tvm.runtime.tensor(x)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL, err_msg=f"opt={opt}")
    assert not list(tmp_path.glob(".tvm-*")), "temporary export files left behind"


def test_disable_passes(tiny, tmp_path):
    so = tmp_path / "tiny_disabled.so"
    r = compile_tiny(tiny, so, "--disable", "FuseOps+FoldConstant")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["disabled_passes"] == ["FuseOps", "FoldConstant"]
    assert so.is_file()


def test_unknown_pass_is_refused(tiny, tmp_path):
    so = tmp_path / "never.so"
    r = compile_tiny(tiny, so, "--disable", "FuseOps+NoSuchPass")
    assert r.returncode == 1
    assert "NoSuchPass" in r.stderr and "FoldConstant" in r.stderr and "FuseTIR" in r.stderr
    assert r.stdout == "" and not so.exists()


def test_shape_other_than_the_models_is_refused_naming_both(tiny, tmp_path):
    """The ONNX frontend's shape_dict overrides the declared input shape without a word: a model
    made for 8x8 would be compiled for 16x16 and its variant would report results."""
    so = tmp_path / "never.so"
    r = run_tool("--model", str(tiny), "--input-name", "input", "--input-shape", "1,3,16,16",
                 "--out", str(so))
    assert r.returncode == 1, r.stderr
    assert "model input 'input' has shape [1,3,8,8] but the spec says [1,3,16,16]" in r.stderr
    assert r.stdout == "" and not so.exists()
    r = run_tool("--model", str(tiny), "--input-name", "image", "--input-shape", "1,3,8,8",
                 "--out", str(so))
    assert r.returncode == 1 and "no input named 'image'; it has: input" in r.stderr, r.stderr


def test_open_dimensions_take_the_given_size(tiny):
    import onnx
    from deltann_tools.tvm_compile import CompileError, check_declared_shape

    model = onnx.load(str(tiny))
    for d, name in zip(model.graph.input[0].type.tensor_type.shape.dim, ["n", None, "h", "w"]):
        if name:
            d.dim_param = name
    check_declared_shape(model, "input", [1, 3, 16, 16])
    expected = r"has shape \[\?,3,\?,\?\] but the spec says \[1,4,8,8\]"
    with pytest.raises(CompileError, match=expected):
        check_declared_shape(model, "input", [1, 4, 8, 8])


def test_compile_failure_exits_1(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    r = run_tool("--model", str(bad), "--input-name", "input", "--input-shape", "1,3,8,8",
                 "--out", str(tmp_path / "bad.so"))
    assert r.returncode == 1
    assert "failed while" in r.stderr and not (tmp_path / "bad.so").exists()


@pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists(),
                    reason="no nvcc: cannot compile for CUDA")
def test_cuda_compile(tiny, tmp_path):
    env_path = os.environ.get("PATH", "")
    if shutil.which("nvcc") is None:
        os.environ["PATH"] = env_path + os.pathsep + "/usr/local/cuda/bin"
    try:
        so = tmp_path / "tiny_cuda.so"
        r = compile_tiny(tiny, so, "--device", "cuda", "--cuda-arch", "sm_90")
    finally:
        os.environ["PATH"] = env_path
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert '"cuda"' in info["target"] and info["pipeline"] == "cuda-dlight"
    assert '"arch":"sm_90"' in info["target"].replace(" ", "")
    # The kernels are compiled in (a fatbin: its magic number, and an embedded CUDA ELF for
    # sm_90), not kept as CUDA source that the GPU machine would need TVM's compiler to load.
    data = so.read_bytes()
    assert b"__global__" not in data
    assert (0xBA55ED50).to_bytes(4, "little") in data
    assert b"sm_90" in data or b"\x7fELF" in data[1024:]


def test_tune_knob_is_described(described):
    knob = next(k for k in described["knobs"] if k["name"] == "tune")
    assert knob["values"] == ["off"] and knob["default"] == "off"
    # Any positive trial budget; left out of variant names while off, so that the names of
    # untuned variants stay as they were.
    assert knob["integer"] is True and knob["omit_default"] is True


@pytest.mark.parametrize("args, message", [
    (["--opt", "1", "--tune", "2"], "needs the fused kernels of opt 2, 3, 4; opt=1"),
    (["--tune", "0"], "bad tune='0'"),
    (["--tune", "many"], "bad tune='many'"),
])
def test_tuning_that_cannot_run_is_refused(tiny, tmp_path, args, message):
    so = tmp_path / "never.so"
    r = compile_tiny(tiny, so, *args)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert r.stdout == "" and not so.exists()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_tuning_for_cuda_without_a_gpu_is_refused(tiny, tmp_path):
    r = compile_tiny(tiny, tmp_path / "never.so", "--device", "cuda", "--tune", "2")
    assert r.returncode == 1 and "measures every candidate on the GPU" in r.stderr, r.stderr


@pytest.mark.long
def test_tuned_build_matches_onnxruntime(tiny, tmp_path):
    """A MetaSchedule search of two trials: the library computes the same function, and the
    build's stdout is still its one JSON line (the search's progress tables go to stderr)."""
    from tvm import relax
    so = tmp_path / "tiny_tuned.so"
    r = compile_tiny(tiny, so, "--tune", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    info = json.loads(lines[0])
    assert info["pipeline"] == "target+metaschedule(2)"
    assert info["tuning"]["trials"] == 2 and info["tuning"]["tasks"] >= 1
    assert 1 <= info["tuning"]["measured"] <= 2
    x = np.random.default_rng(1).uniform(0, 255, SHAPE).astype("float32")
    expected = ort.InferenceSession(str(tiny), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(so)), tvm.cpu())
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), expected,
                               atol=ATOL, rtol=RTOL)
