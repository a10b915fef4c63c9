"""The hardware axis (docs/ENVIRONMENTS.md, "Hardware"): instruction-set caps (`isa`) and OpenCL
devices, each applied through the engine's own mechanism and confirmed by what the engine reports.

- every `isa` value an engine offers here runs tiny_classifier with the environment its
  `--describe` asks for, agrees with ONNX Runtime's Python API within the float32 tolerance, and
  the engine reports the cap in effect (OpenCV's CPU features, LibTorch's CPU capability, the
  vector registers of TVM's library);
- a value above this CPU's instruction set is unavailable with the reason (/proc/cpuinfo);
- a worker started without the environment a cap needs refuses the load rather than run uncapped;
- OpenCV's OpenCL targets run on the OpenCL device (PoCL on a CPU-only machine) and report it; a
  worker started without OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES, where OpenCV 4.6 silently runs on
  the CPU instead, has its first run refused with the reason;
- a campaign passes the environment to its workers and stores the engine's report with the
  variant.

Skipped per engine when its worker was not built; OpenCL checks where no OpenCL device exists.
"""
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from deltann_testlib import (Deltann, WorkerClient, describe_worker, onnxruntime_output,
                             output_of, worker_path, write_random_images)

# Float32 engines against ONNX Runtime on the same model: logits up to ~300, a few ulps
# (test_tiny_engines.py). Measured on three random inputs (logits up to ~230): OpenCV 4.6e-5 at
# every isa value, 3.8e-5 on OpenCL (PoCL): two to three ulps.
ATOL = 1e-4
RTOL = 1e-6


def cpu_flags():
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def isa_knob(description):
    return next(k for k in description["knobs"] if k["name"] == "isa")


def knob_environment(description, knob, value):
    """The `NAME=value` entries the describe asks the worker's environment for."""
    entry = next(k for k in description["knobs"] if k["name"] == knob)
    return entry.get("environment", {}).get(value, [])


@pytest.fixture(scope="module")
def tensor(tmp_path_factory):
    x = np.random.default_rng(7).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    path = tmp_path_factory.mktemp("hw") / "x.npy"
    np.save(path, x)
    return path, x


def spec_of(model):
    return json.loads(model.with_suffix(".spec.json").read_text())


def run_once(worker, artifact, env, spec, tensor_path, worker_env):
    """(loaded reply, output) of one load and one run with `worker_env` in the environment."""
    with WorkerClient(worker, env=worker_env) as w:
        loaded = w.load(artifact, env, spec)
        assert loaded["event"] == "loaded", (loaded, w.log())
        return loaded, output_of(w.run(tensor_path))


# --- availability -------------------------------------------------------------------------------

LEVEL_FLAGS = {"avx512": ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"],
               "avx2": ["avx2", "fma"], "avx": ["avx"], "sse4_2": ["sse4_2"]}


@pytest.mark.parametrize("engine", ["opencv", "libtorch"])
def test_isa_levels_the_cpu_lacks_are_unavailable_with_the_reason(engine):
    description = describe_worker(worker_path(engine, "not built"))
    knob = isa_knob(description)
    assert knob["values"][0] == "native" and knob["default"] == "native"
    assert knob["omit_default"] is True
    flags = cpu_flags()
    for value in knob["values"][1:]:
        missing = [f for f in LEVEL_FLAGS.get(value, []) if f not in flags]
        if missing:
            assert knob["unavailable"][value] == (f"this CPU lacks {', '.join(missing)} "
                                                  "(/proc/cpuinfo)")
        else:
            assert value not in knob.get("unavailable", {})
            assert knob["environment"][value], f"{engine} isa={value} sets nothing"


def test_isa_reasons_from_a_cpu_without_avx512(source_dir):
    """The unavailable reason on a CPU that lacks a level, whatever this one has: the unit tests
    cover the rule (cpu_isa_test.cpp); here the TVM build tool's own copy of it."""
    sys.path.insert(0, str(source_dir / "python"))
    from deltann_tools import tvm_compile
    assert tvm_compile.isa_unavailable({"avx2", "fma"}) == {
        "avx512": "this CPU lacks avx512f, avx512cd, avx512bw, avx512dq, avx512vl (/proc/cpuinfo)"}
    assert tvm_compile.isa_unavailable(set(LEVEL_FLAGS["avx512"] + ["avx2", "fma"])) == {}


# --- OpenCV -------------------------------------------------------------------------------------

OPENCV_ENV = "opencv:opt=on,device=cpu,threads=1"


@pytest.fixture(scope="module")
def opencv():
    worker = worker_path("opencv", "OpenCV's dnn module or libonnx-dev not found at configure time")
    return worker, describe_worker(worker)


def test_every_opencv_isa_cap_runs_and_is_in_effect(opencv, models, tensor):
    worker, description = opencv
    knob = isa_knob(description)
    expected = onnxruntime_output(models.tiny, tensor[1])
    ran = 0
    for value in knob["values"]:
        if value in knob.get("unavailable", {}):
            continue
        loaded, got = run_once(worker, models.tiny, OPENCV_ENV + f",isa={value}",
                               spec_of(models.tiny), tensor[0],
                               knob_environment(description, "isa", value))
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL, err_msg=value)
        features = loaded["hardware"]["cpu_features"]
        # OpenCV marks a dispatched feature it was told not to use with '?'.
        disabled = {"native": [], "avx2": ["AVX512-SKX"], "avx": ["AVX512-SKX", "AVX2"],
                    "sse4_2": ["AVX512-SKX", "AVX2", "AVX", "FP16"]}[value]
        for feature in disabled:
            if f"*{feature}" in features or f" {feature}" in features:
                assert f"{feature}?" in features, (value, features)
        if value == "native":
            assert "?" not in features, features
        ran += 1
    assert ran >= 2, knob


def test_opencv_cap_without_its_environment_is_refused(opencv, models):
    worker, description = opencv
    knob = isa_knob(description)
    value = next((v for v in ["avx2", "avx", "sse4_2"] if v not in knob.get("unavailable", {})),
                 None)
    if value is None:
        pytest.skip("no isa cap is available on this CPU")
    with WorkerClient(worker) as w:
        reply = w.load(models.tiny, OPENCV_ENV + f",isa={value}", spec_of(models.tiny))
    assert reply["event"] == "error" and reply["stage"] == "load", reply
    assert f"isa={value} asked, but OpenCV's CPU dispatcher still uses" in reply["message"]
    assert "OPENCV_CPU_DISABLE" in reply["message"]


def opencl_or_skip(description):
    knob = next(k for k in description["knobs"] if k["name"] == "device")
    if "opencl" in knob.get("unavailable", {}):
        pytest.skip(f"OpenCL unavailable: {knob['unavailable']['opencl']}")
    return knob


def test_opencv_opencl_runs_on_the_opencl_device(opencv, models, tensor):
    worker, description = opencv
    knob = opencl_or_skip(description)
    assert "opencl" in description["devices"]
    loaded, got = run_once(worker, models.tiny, "opencv:opt=on,device=opencl,threads=1",
                           spec_of(models.tiny), tensor[0],
                           knob_environment(description, "device", "opencl"))
    np.testing.assert_allclose(got, onnxruntime_output(models.tiny, tensor[1]), atol=ATOL,
                               rtol=RTOL)
    hardware = loaded["hardware"]
    assert hardware["opencl_device"] and hardware["opencl_driver_version"], hardware
    assert hardware["opencl_platform"], hardware
    # FP16 needs cl_khr_fp16: without it OpenCV would run FP32 kernels under the FP16 name.
    if hardware["opencl_fp16"] == "no":
        assert "lacks cl_khr_fp16" in knob["unavailable"]["opencl_fp16"], knob
    else:
        assert "opencl_fp16" not in knob.get("unavailable", {}), knob


def test_opencv_silent_fallback_to_the_cpu_is_refused(opencv, models, tensor):
    """Without OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES OpenCV 4.6 runs DNN on OpenCL only on Intel
    GPUs: it sets the net up for the CPU and says so only in its log. The worker, started here
    without the environment the campaign would give it, must not report that run as OpenCL."""
    worker, description = opencv
    opencl_or_skip(description)
    wanted = knob_environment(description, "device", "opencl")
    device_only = [e for e in wanted if e.startswith("OPENCV_OPENCL_DEVICE=")]
    with WorkerClient(worker, env=device_only) as w:
        loaded = w.load(models.tiny, "opencv:opt=on,device=opencl,threads=1", spec_of(models.tiny))
        if loaded["event"] == "loaded" and "Intel" in loaded["hardware"].get("opencl_vendor", ""):
            pytest.skip("an Intel OpenCL device runs OpenCV DNN without the variable")
        assert loaded["event"] == "loaded", loaded
        reply = w.run(tensor[0])
        assert reply["event"] == "error", reply
        assert "instead of opencl: it fell back" in reply["message"], reply


# --- LibTorch -----------------------------------------------------------------------------------

def test_every_libtorch_isa_level_runs_and_is_in_effect(models, tiny_torchscript, tensor):
    worker = worker_path("libtorch", "LibTorch not found at configure time")
    description = describe_worker(worker)
    knob = isa_knob(description)
    artifact, spec = tiny_torchscript
    expected = onnxruntime_output(models.tiny, tensor[1])
    reported = {"avx512": "AVX512", "avx2": "AVX2", "baseline": "NO AVX"}
    capabilities = set()
    for value in knob["values"]:
        if value in knob.get("unavailable", {}):
            continue
        loaded, got = run_once(worker, artifact,
                               f"libtorch:opt=none,device=cpu,threads=1,isa={value}", spec,
                               tensor[0], knob_environment(description, "isa", value))
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL, err_msg=value)
        capability = loaded["hardware"]["cpu_capability"]
        if value in reported:
            assert capability == reported[value], (value, loaded)
        capabilities.add(capability)
    assert "NO AVX" in capabilities and len(capabilities) >= 2, capabilities
    # Started without ATEN_CPU_CAPABILITY, a level other than LibTorch's own is refused.
    with WorkerClient(worker) as w:
        reply = w.load(artifact, "libtorch:opt=none,device=cpu,threads=1,isa=baseline", spec)
    assert reply["event"] == "error" and reply["stage"] == "load", reply
    assert "ATEN_CPU_CAPABILITY=default" in reply["message"], reply


# --- TVM ----------------------------------------------------------------------------------------

def test_every_tvm_isa_target_compiles_runs_and_differs_in_code(models, source_dir, tensor,
                                                                tmp_path):
    pytest.importorskip("tvm", reason="building the TVM artifact needs tvm's Python API")
    worker = worker_path("tvm", "TVM not found at configure time")
    tool = source_dir / "python" / "deltann_tools" / "build_tvm.py"
    described = json.loads(subprocess.run([sys.executable, str(tool), "--describe"],
                                          capture_output=True, text=True, check=True,
                                          timeout=300).stdout)
    knob = isa_knob(described)
    expected = onnxruntime_output(models.tiny, tensor[1])
    registers = {}
    for value in knob["values"]:
        if value in knob.get("unavailable", {}):
            continue
        env = f"tvm:opt=3,device=cpu,threads=1,isa={value}"
        out = tmp_path / f"tiny_{value}.so"
        proc = subprocess.run([sys.executable, str(tool), "--model", str(models.tiny), "--spec",
                               str(models.tiny.with_suffix(".spec.json")), "--env",
                               env + ",disable=none", "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["isa"] == value
        mcpu = {"avx512": "skylake-avx512", "avx2": "haswell"}.get(value)
        if mcpu:
            assert f'"mcpu":"{mcpu}"' in report["target"], report
        registers[value] = report["vector_registers"]
        _, got = run_once(worker, out, env, spec_of(models.tiny), tensor[0], [])
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL, err_msg=value)
    # TVM's default is generic x86-64 (SSE only); the named levels use the wider registers, and
    # only avx512 the registers AVX-512 alone has (EVEX: zmm, xmm/ymm16-31, masks).
    assert registers["native"]["ymm"] == 0 and registers["native"]["avx512"] == 0, registers
    if "avx2" in registers:
        assert registers["avx2"]["ymm"] > 0 and registers["avx2"]["avx512"] == 0, registers
    if "avx512" in registers:
        assert registers["avx512"]["avx512"] > 0, registers


# --- campaign -----------------------------------------------------------------------------------

def test_campaign_starts_workers_with_the_environment_and_stores_the_report(
        deltann_bin, models, opencv, tmp_path):
    _, description = opencv
    knob = isa_knob(description)
    cap = next((v for v in ["sse4_2", "avx", "avx2"] if v not in knob.get("unavailable", {})),
               None)
    if cap is None:
        pytest.skip("no isa cap is available on this CPU")
    envs = {f"opencv:isa={cap},threads=1": f"opencv:opt=on,device=cpu,threads=1,isa={cap}"}
    device = next(k for k in description["knobs"] if k["name"] == "device")
    if "opencl" not in device.get("unavailable", {}):
        envs["opencv:device=opencl,threads=1"] = "opencv:opt=on,device=opencl,threads=1"
    images = tmp_path / "images"
    write_random_images(images, [(8, 8)] * 2, seed=5)
    db = tmp_path / "hw.db"
    (tmp_path / "cache").mkdir()
    args = ["run", "--model", models.tiny, "--images", images, "--db", db, "--repeat", 1]
    for env in envs:
        args += ["--env", env]
    Deltann(deltann_bin, tmp_path / "cache").run(*args)
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT env, status || '|' || info_json FROM variants"))
    for stored in envs.values():
        status, _, info = rows[stored].partition("|")
        assert status == "done", rows
        hardware = json.loads(info)["hardware"]
        if "isa=" in stored:
            assert "?" in hardware["cpu_features"], hardware
        else:
            assert hardware["opencl_device"], hardware
