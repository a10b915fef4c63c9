#!/usr/bin/env python3
"""Compile an ONNX classifier with Apache TVM (Relax) into an exported VM library.

deltann's TVM worker loads the library this writes; see docs/TVM.md for the meaning of every
knob value and for the runtime conventions of the exported library.

  python -m deltann_tools.tvm_compile --describe
  python -m deltann_tools.tvm_compile --model M.onnx --input-name input \
      --input-shape 1,3,224,224 --opt 3 --disable FuseOps+FoldConstant --device cpu --out M.so
  python -m deltann_tools.tvm_compile ... --tune 200    # MetaSchedule, 200 measured trials

--describe prints one JSON object (the knobs, the opt levels, the targets).
A build prints one JSON line (compile time, TVM version, target, pipeline, ...) and exits 0.
Any failure exits 1 with one paragraph on stderr that says what failed.
"""
import argparse
import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import metadata
from typing import Any

from deltann_tools import tvm_tune
from deltann_tools.environment import set_members

# The ordered deltann opt levels (least to most optimisation). Each one is a recipe:
#   pipeline   "generic" = tvm.relax.pipeline.default_build_pipeline() (what tvm.compile uses
#              for CPU targets by default: LegalizeOps, no constant folding, no fusion);
#              "target" = tvm.relax.pipeline.get_default_pipeline(target) (adds
#              AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR; on CUDA also DLight).
#   opt_level  PassContext(opt_level=...).
#   llvm       extra attributes of the llvm target (the CPU code, and the CUDA host code).
#   config     PassContext(config=...).
# Levels that turned out to produce identical code are documented in docs/TVM.md.
OPT_LEVELS: dict[str, dict[str, Any]] = {
    "0": {
        "pipeline": "generic",
        "opt_level": 0,
        "llvm": {"opt-level": 0},
        "config": {"tirx.disable_vectorize": True, "tirx.disable_cse_tir": True},
        "help": "no fusion or constant folding, no TIR vectorisation/CSE, LLVM -O0",
    },
    "1": {
        "pipeline": "generic",
        "opt_level": 1,
        "llvm": {},
        "config": {},
        "help": "tvm.compile's CPU default: legalise every op to its own kernel, no fusion, "
                "LLVM -O3",
    },
    "2": {
        "pipeline": "target",
        "opt_level": 2,
        "llvm": {"opt-level": 1},
        "config": {},
        "help": "target pipeline (FoldConstant + FuseOps + FuseTIR), LLVM -O1",
    },
    "3": {
        "pipeline": "target",
        "opt_level": 3,
        "llvm": {},
        "config": {},
        "help": "target pipeline (FoldConstant + FuseOps + FuseTIR), LLVM -O3 (deltann default)",
    },
    "4": {
        "pipeline": "target",
        "opt_level": 3,
        "llvm": {"fast-math": True},
        "config": {},
        "help": "level 3 plus LLVM fast-math (reassociation, no NaN/Inf guarantees)",
    },
}
DEFAULT_OPT = "3"
# The levels whose pipeline fuses operators into the kernels MetaSchedule tunes.
TUNABLE_LEVELS = [k for k, v in OPT_LEVELS.items() if v["pipeline"] == "target"]

# Relax passes of the pipelines, in order. A pass listed in DISABLEABLE may be named in
# --disable (PassContext(disabled_pass=...)); the rest are needed to produce a VM executable
# at all (disabling them makes codegen fail), so deltann refuses them up front.
GENERIC_PASSES = [
    "DispatchSampling", "DispatchSortScan", "LegalizeOps", "RewriteDataflowReshape",
    "ToNonDataflow", "RemovePurityChecking", "CallTIRRewrite", "StaticPlanBlockMemory",
    "RewriteCUDAGraph", "LowerAllocTensor", "KillAfterLastUse", "LowerRuntimeBuiltin",
    "ComputePrimValue", "VMShapeLower", "AttachGlobalSymbol",
]
TARGET_PASSES = [
    "DispatchSampling", "DispatchSortScan", "LegalizeOps", "AnnotateTIROpPattern",
    "FoldConstant", "FuseOps", "FuseTIR", "RewriteDataflowReshape", "ToNonDataflow",
    "RemovePurityChecking", "CallTIRRewrite", "StaticPlanBlockMemory", "LowerAllocTensor",
    "KillAfterLastUse", "LowerRuntimeBuiltin", "ComputePrimValue", "VMShapeLower",
    "AttachGlobalSymbol",
]
# Passes that can be switched off, still give a working executable, and measurably change
# the generated library (checked on tiny_classifier and EfficientNet-Lite0 with TVM 0.27).
# TIR lowering passes carry their registered tirx. prefix. Others (LegalizeOps,
# CallTIRRewrite, LowerAllocTensor) break codegen, or change nothing on CPU
# (DispatchSampling, DispatchSortScan, ToNonDataflow, tirx.VectorizeLoop, tirx.UnrollLoop,
# s_tir.LoopPartition, s_tir.HoistIfThenElse: unscheduled CPU code has nothing for them).
DISABLEABLE = [
    "AnnotateTIROpPattern", "FoldConstant", "FuseOps", "FuseTIR", "RewriteDataflowReshape",
    "StaticPlanBlockMemory", "KillAfterLastUse", "tirx.CommonSubexprElim", "tirx.StorageRewrite",
]

DEVICES = {"cpu": "llvm", "cuda": "cuda"}
# `isa`: the CPU the llvm target compiles for. native is TVM's default (no -mcpu: generic x86-64,
# SSE2 only); the others name an LLVM CPU of that instruction-set level. Each value is a separate
# artifact (the settings are part of the cache key). A level this CPU lacks is unavailable:
# its library would die of an illegal instruction here. /proc/cpuinfo flags each level needs:
ISA_MCPU = {"native": None, "avx512": "skylake-avx512", "avx2": "haswell"}
ISA_FLAGS = {"avx512": ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"],
             "avx2": ["avx2", "fma"]}
# The arch CUDA kernels are compiled for when the build machine has no GPU to ask (A100).
FALLBACK_CUDA_ARCH = "sm_80"

# MetaSchedule tuning (tune=N): N measured candidates in all, searched with TVM's XGBoost cost
# model, in rounds of TUNE_TRIALS_PER_ROUND; a fixed seed so that the same budget on the same
# machine searches the same way. Tuning needs the fused kernels of the target pipeline, so it
# applies to the levels that run it (not 0 and 1, which compile every op on its own).
TUNE_TRIALS_PER_ROUND = 16
TUNE_SEED = 1
# One core: the schedules are searched and measured for a single thread, the setting deltann's
# timing comparisons use by default (threads=1); see docs/TVM.md.
TUNE_NUM_CORES = 1


def default_cuda_arch() -> str:
    """The compute capability of this machine's first GPU (nvidia-smi), else the fallback.

    nvcc is given `-gencode arch=compute_XY,code=sm_XY`: the library holds machine code for that
    arch only, so it must match the GPU that will run it (DELTANN_TVM_CUDA_ARCH overrides, for
    a build machine compiling for another machine's GPU). The arch is part of the build tool's
    description, and so of the artifact cache key.
    """
    if os.environ.get("DELTANN_TVM_CUDA_ARCH"):
        return os.environ["DELTANN_TVM_CUDA_ARCH"]
    import subprocess
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        first = out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else ""
        major, _, minor = first.partition(".")
        if major.isdigit() and minor.isdigit():
            return f"sm_{major}{minor}"
    except (OSError, subprocess.SubprocessError):
        pass
    return FALLBACK_CUDA_ARCH


class CompileError(Exception):
    """A failure reported as one paragraph on stderr (exit 1)."""


def level_passes(level: str) -> list[str]:
    """Names in DISABLEABLE that the given opt level actually runs."""
    spec = OPT_LEVELS[level]
    relax = TARGET_PASSES if spec["pipeline"] == "target" else GENERIC_PASSES
    skipped = set()
    if spec["config"].get("tirx.disable_vectorize"):
        skipped.add("tirx.VectorizeLoop")
    if spec["config"].get("tirx.disable_cse_tir"):
        skipped.add("tirx.CommonSubexprElim")
    return [p for p in DISABLEABLE if (p in relax or "." in p) and p not in skipped]


def parse_disable(text: str | None) -> list[str]:
    names = set_members(text)
    unknown = [n for n in names if n not in DISABLEABLE]
    if unknown or not all(names):
        raise CompileError(
            f"unknown pass name(s) in disable={text!r}: {', '.join(unknown) or '(empty)'}; "
            f"valid names are: {', '.join(DISABLEABLE)} (join several with '+', or 'none')")
    return list(dict.fromkeys(names))


def import_tvm() -> Any:
    """Imports tvm and its Relax compiler without torch (docs/TVM.md, "Importing TVM without
    torch"). tvm_ffi imports torch whenever it is installed, and then, on every import, tries to
    JIT-build a C++ extension against it (the torch-c-dlpack addon: faster DLPack exchange with
    torch tensors, which deltann never makes); with the project venv's torch that build fails,
    after seconds. Two places ask for it (tvm_ffi itself, which TVM_FFI_DISABLE_TORCH_C_DLPACK
    switches off, and tvm.relax.base_py_module, which no variable does), so torch is made
    unimportable for the duration of the import: both then skip the extension, and the compiler
    has no use for torch. A process that has already imported torch keeps it."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TVM_FFI_DISABLE_TORCH_C_DLPACK", "1")
    hide_torch = "torch" not in sys.modules
    if hide_torch:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
    try:
        import tvm
        from tvm import relax  # noqa: F401
    except Exception as e:  # ImportError, or a broken native library
        raise CompileError(f"cannot import tvm ({type(e).__name__}: {e}); install "
                           "apache-tvm from python/requirements.txt into the venv") from e
    finally:
        if hide_torch and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return tvm


def cpu_flags() -> set[str]:
    """The first processor's flags in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def isa_unavailable(flags: set[str]) -> dict[str, str]:
    """The isa values this CPU cannot run, with the reason."""
    out = {}
    for isa, needed in ISA_FLAGS.items():
        missing = [f for f in needed if f not in flags]
        if missing:
            out[isa] = f"this CPU lacks {', '.join(missing)} (/proc/cpuinfo)"
    return out


# Registers only AVX-512 has: zmm, the upper 16 vector registers (xmm16-31, ymm16-31) and the
# mask registers k1-k7. LLVM prefers 256-bit vectors on Skylake-X, so AVX-512 code often shows as
# EVEX instructions on ymm registers rather than on zmm.
AVX512_REGISTERS = re.compile(r"%(zmm\d+|[xy]mm(1[6-9]|2\d|3[01])|k[1-7])\b")


def vector_registers(library: str) -> dict[str, int] | None:
    """How many instructions of the library's code name xmm, ymm and zmm registers (SSE, AVX,
    AVX-512 widths) and registers only AVX-512 has (`avx512`), from objdump's disassembly: the
    code path an isa value produced. None where objdump is missing."""
    try:
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", library], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    counts = {"xmm": 0, "ymm": 0, "zmm": 0, "avx512": 0}
    for line in text.splitlines():
        for reg in ("xmm", "ymm", "zmm"):
            if "%" + reg in line:
                counts[reg] += 1
        if AVX512_REGISTERS.search(line):
            counts["avx512"] += 1
    return counts


def check_isa(isa: str, registers: dict[str, int] | None) -> None:
    """Refuses a library whose code breaks the cap: AVX-512 registers under isa=avx2 or native."""
    if registers is None or isa == "avx512":
        return
    if registers["avx512"]:
        raise CompileError(f"isa={isa} produced {registers['avx512']} instructions on registers "
                           "only AVX-512 has (zmm, xmm16-31/ymm16-31, k1-k7)")


def make_target(tvm: Any, device: str, level: str, cuda_arch: str, tuned: bool = False,
                isa: str = "native") -> Any:
    llvm = {"kind": "llvm", **OPT_LEVELS[level]["llvm"]}
    if ISA_MCPU[isa]:
        llvm["mcpu"] = ISA_MCPU[isa]
    if device == "cpu":
        # MetaSchedule needs the core count it schedules parallel loops for.
        return tvm.target.Target({**llvm, "num-cores": TUNE_NUM_CORES} if tuned else llvm)
    # No GPU is needed to compile: the arch is given, nvcc does the rest.
    return tvm.target.Target({"kind": "cuda", "arch": cuda_arch}, host=llvm)


def use_nvcc(tvm: Any) -> None:
    """Makes TVM put compiled CUDA kernels (a fatbin for the target's arch) into the library.

    TVM 0.27's CUDA codegen compiles the kernels only when the CUDA runtime module
    (libtvm_runtime_cuda.so) is loaded in the compiling process and a compile callback is
    registered; otherwise it keeps the CUDA C source in the exported library, and loading it
    on the GPU machine then needs TVM's Python compiler there ("fmt=='cuda' requires
    tvm_callback_cuda_compile"). So: load the CUDA driver library (the real one, or the CUDA
    toolkit's link stub on a machine without a GPU: creating the module calls no driver
    function), then TVM's CUDA runtime, and register the callback with nvcc as its backend
    (its default, NVRTC, needs the cuda-bindings package).
    """
    import ctypes
    import shutil

    os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        nvcc = shutil.which("nvcc")
        if nvcc is None:
            raise CompileError("compiling for CUDA needs nvcc on PATH") from None
        stub = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))),
                            "lib64", "stubs", "libcuda.so")
        try:
            ctypes.CDLL(stub, mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            raise CompileError(f"no CUDA driver library and no toolkit stub ({stub}): {e}") from e
    runtime = os.path.join(os.path.dirname(tvm.__file__), "lib", "libtvm_runtime_cuda.so")
    try:
        ctypes.CDLL(runtime, mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise CompileError(f"cannot load TVM's CUDA runtime {runtime}: {e}") from e
    importlib.import_module("tvm.support.nvcc")  # registers tvm_callback_cuda_compile


def check_cuda_binary(path: str) -> None:
    """Refuses a CUDA library that still carries kernel source instead of a fatbin."""
    with open(path, "rb") as f:
        if b"__global__" in f.read():
            raise CompileError(f"{path}: the CUDA kernels were exported as source, not "
                               "compiled; the GPU machine could not load them without TVM's "
                               "compiler")


def cuda_pipeline(tvm: Any, relax: Any, target: Any) -> Any:
    """get_default_pipeline(cuda) without DLight's gpu.Matmul rule.

    In 0.27 that rule fails on EfficientNet-Lite0's fused convolutions ("There are some
    consumers of the cache-write stage that are not properly inlined"); the remaining rules
    (GEMV, Reduction, GeneralReduction, Fallback) give every kernel thread bindings.
    """
    from tvm.relax.backend.cuda import pipeline as cuda
    from tvm.s_tir import dlight as dl

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        legalize = [
            relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(),
            dl.ApplyDefaultSchedule(dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                    dl.gpu.Fallback()),
        ]
        with target:
            return tvm.transform.Sequential(
                cuda.library_dispatch_passes(target) + legalize
                + cuda.dataflow_lower_passes(target) + cuda.finalize_passes(target))(mod)

    return _pipeline


def tvm_version() -> str | None:
    """The installed apache-tvm's version from its package metadata, or None when it is not
    installed. Importing tvm to ask it would take seconds (tvm_ffi imports torch), and --describe
    runs before every campaign that names an engine with a build step."""
    try:
        return metadata.version("apache-tvm")
    except metadata.PackageNotFoundError:
        return None


def describe(cuda_arch: str | None = None) -> dict[str, Any]:
    cuda_arch = cuda_arch or default_cuda_arch()
    version = tvm_version()
    return {
        "name": "tvm",
        "version": version,
        "knobs": [
            {"name": "opt", "values": list(OPT_LEVELS), "default": DEFAULT_OPT,
             "help": "deltann optimisation level: " + "; ".join(
                 f"{k}: {v['help']}" for k, v in OPT_LEVELS.items())},
            {"name": "disable", "values": ["none", *DISABLEABLE], "default": "none",
             "help": "'+'-separated pass names for PassContext(disabled_pass=...)"},
            {"name": "device", "values": list(DEVICES), "default": "cpu",
             "help": "cpu: llvm target; cuda: cuda target with an llvm host"},
            {"name": "isa", "values": list(ISA_MCPU), "default": "native", "omit_default": True,
             "unavailable": isa_unavailable(cpu_flags()),
             "help": "CPU code of the llvm target: native = TVM's default (no -mcpu, generic "
                     "x86-64); " + ", ".join(f"{k}: -mcpu={v}" for k, v in ISA_MCPU.items() if v)},
            {"name": "tune", "values": ["off"], "default": "off", "integer": True,
             "omit_default": True,
             "help": "off: TVM's default schedules; N: MetaSchedule search with N measured "
                     f"trials on this machine (opt {', '.join(TUNABLE_LEVELS)} only)"},
        ],
        "opt_levels": {
            k: {"pipeline": v["pipeline"], "opt_level": v["opt_level"],
                "config": v["config"], "llvm": v["llvm"], "passes": level_passes(k)}
            for k, v in OPT_LEVELS.items()
        },
        "targets": {
            "cpu": {"kind": "llvm", "note": "no mcpu (isa=native): generic x86-64 code, portable"},
            "cuda": {"kind": "cuda", "arch": cuda_arch, "host": "llvm",
                     "pipeline": "cuda-dlight",
                     "note": "CUDA kernels need a DLight schedule, so every opt level uses the "
                             "target pipeline with DLight GEMV/Reduction/GeneralReduction/"
                             "Fallback (not Matmul); opt_level, config and llvm attributes "
                             "of the level still apply; needs nvcc on PATH"},
        },
    }


def check_declared_shape(proto: Any, input_name: str, input_shape: list[int]) -> None:
    """Refuses an input shape that the model's declared one does not allow, naming both. The
    frontend's shape_dict would otherwise override the declaration without a word, compiling a
    224x224 model for 300x300 tensors. Dimensions the model leaves open (a symbolic or absent
    size) take the given size; that is what shape_dict is for."""
    graph = proto.graph
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    declared = next((value for value in inputs if value.name == input_name), None)
    if declared is None:
        raise CompileError(f"model has no input named {input_name!r}; it has: "
                           f"{', '.join(value.name for value in inputs)}")
    if not declared.type.tensor_type.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
            for d in declared.type.tensor_type.shape.dim]
    if len(dims) != len(input_shape) or any(
            d not in (-1, s) for d, s in zip(dims, input_shape, strict=True)):
        text = "[" + ",".join("?" if d < 0 else str(d) for d in dims) + "]"
        raise CompileError(f"model input '{input_name}' has shape {text} but the spec says "
                           f"[{','.join(str(s) for s in input_shape)}]")


def compile_model(model: str, input_name: str, input_shape: list[int], level: str,
                  disabled: list[str], device: str, out: str, cuda_arch: str,
                  tune: int = 0, isa: str = "native") -> dict[str, Any]:
    tvm = import_tvm()
    from tvm import relax
    try:
        import onnx
        from tvm.relax.frontend.onnx import from_onnx
    except Exception as e:
        raise CompileError(f"cannot import the ONNX frontend ({type(e).__name__}: {e})") from e
    spec = OPT_LEVELS[level]
    target = make_target(tvm, device, level, cuda_arch, tuned=tune > 0, isa=isa)
    registers: dict[str, int] | None = None
    # CUDA kernels must be scheduled (thread bindings): only the target pipeline does that.
    pipeline_name = "cuda-dlight" if device == "cuda" else spec["pipeline"]
    start = time.perf_counter()
    stage = "loading the ONNX model"
    try:
        proto = onnx.load(model)
        check_declared_shape(proto, input_name, input_shape)
        stage = "importing the ONNX graph into Relax"
        mod = from_onnx(proto, shape_dict={input_name: input_shape}, dtype_dict="float32")
        stage = "compiling"
        if device == "cuda":
            use_nvcc(tvm)
        if tune:
            pipeline_name += f"+metaschedule({tune})"
            pipeline = tvm_tune.tuned_pipeline(tvm, relax, target, cuda=device == "cuda")
        elif device == "cuda":
            pipeline = cuda_pipeline(tvm, relax, target)
        elif pipeline_name == "target":
            pipeline = relax.pipeline.get_default_pipeline(target)
        else:
            pipeline = relax.pipeline.default_build_pipeline()
        # The target scope tells TVM's CUDA compile callback which arch to build for.
        with target, tvm.transform.PassContext(opt_level=spec["opt_level"],
                                               config=spec["config"], disabled_pass=disabled):
            database: Any = contextlib.nullcontext()
            tuning: dict[str, Any] = {}
            if tune:
                mod = tvm_tune.fused(tvm, relax, target, mod)
                stage = f"tuning ({tune} trials)"
                database, tuning = tvm_tune.tune(mod, target, tune, TUNE_TRIALS_PER_ROUND,
                                                 TUNE_SEED)
                stage = "compiling with the tuned schedules"
            with database:
                exe = tvm.compile(mod, target=target, relax_pipeline=pipeline)
            stage = "exporting the library"
            folder = os.path.dirname(os.path.abspath(out))
            fd, tmp = tempfile.mkstemp(prefix=".tvm-", suffix=".so", dir=folder)
            os.close(fd)
            try:
                exe.export_library(tmp)
                if device == "cuda":
                    check_cuda_binary(tmp)
                registers = vector_registers(tmp)
                check_isa(isa, registers)
                os.replace(tmp, out)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except CompileError:
        raise
    except Exception as e:
        msg = " ".join(str(e).split())
        if len(msg) > 1500:
            msg = msg[:1500] + " ..."
        raise CompileError(f"TVM {tvm.__version__} failed while {stage} {model} for "
                           f"{target} (opt={level}, disable={'+'.join(disabled) or 'none'}"
                           f"{f', tune={tune}' if tune else ''}): "
                           f"{type(e).__name__}: {msg}") from e
    return {
        "compile_s": round(time.perf_counter() - start, 3),
        "tvm_version": tvm.__version__,
        "target": str(target),
        "isa": isa,
        "vector_registers": registers,
        "pipeline": pipeline_name,
        "opt_level": spec["opt_level"],
        "disabled_passes": disabled,
        "config": {**spec["config"], **({"llvm": spec["llvm"]} if spec["llvm"] else {})},
        **({"tuning": tuning} if tune else {}),
    }


def parse_tune(text: str | None) -> int:
    """The trial budget of tune=off|N (0 for off)."""
    if text in (None, "off"):
        return 0
    if not text.isdigit() or int(text) <= 0:
        raise CompileError(f"bad tune={text!r}: expected off or a positive number of trials")
    return int(text)


def check_request(model: str, level: str, device: str, tune: int = 0) -> None:
    """Refuses an unknown opt level or device, a tuning request that cannot run, or a missing
    model, before TVM is imported."""
    if level not in OPT_LEVELS:
        raise CompileError(f"unknown opt={level!r}; valid values are {', '.join(OPT_LEVELS)}")
    if device not in DEVICES:
        raise CompileError(f"unknown device={device!r}; valid values are cpu, cuda")
    if tune and level not in TUNABLE_LEVELS:
        raise CompileError(f"tune={tune} needs the fused kernels of opt "
                           f"{', '.join(TUNABLE_LEVELS)}; opt={level} compiles every operator "
                           "on its own")
    if tune and device == "cuda" and not tvm_tune.gpu_present():
        raise CompileError(f"tune={tune} on cuda measures every candidate on the GPU, and this "
                           "machine has none (nvidia-smi lists no GPU)")
    if not os.path.isfile(model):
        raise CompileError(f"model {model!r} does not exist")


def parse_shape(text: str) -> list[int]:
    try:
        shape = [int(x) for x in text.split(",")]
    except ValueError:
        shape = []
    if not shape or any(d <= 0 for d in shape):
        raise CompileError(
            f"bad --input-shape {text!r}: expected positive integers like 1,3,224,224")
    return shape


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tvm_compile", description=__doc__.split("\n")[0])
    ap.add_argument("--describe", action="store_true", help="print the knobs as JSON and exit")
    ap.add_argument("--model", help="ONNX model")
    ap.add_argument("--input-name", help="name of the model's input")
    ap.add_argument("--input-shape", help="static input shape, e.g. 1,3,224,224")
    ap.add_argument("--opt", default=DEFAULT_OPT, help=f"one of {', '.join(OPT_LEVELS)}")
    ap.add_argument("--disable", default="none", help="'+'-separated pass names, or none")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--cuda-arch", default=None,
                    help="e.g. sm_80, sm_90 (default: this machine's GPU, else sm_80)")
    ap.add_argument("--out", help="library to write (.so)")
    ap.add_argument("--tune", default="off",
                    help="off, or the number of MetaSchedule trials to measure")
    args = ap.parse_args(argv)
    if args.describe:
        print(json.dumps(describe(args.cuda_arch)))
        return 0
    try:
        missing = [f"--{n.replace('_', '-')}" for n in ("model", "input_name", "input_shape", "out")
                   if not getattr(args, n)]
        if missing:
            raise CompileError(f"missing {', '.join(missing)}")
        tune = parse_tune(args.tune)
        check_request(args.model, args.opt, args.device, tune)
        if not args.out.endswith(".so"):
            raise CompileError(f"--out {args.out!r} must end in .so")
        disabled = parse_disable(args.disable)
        shape = parse_shape(args.input_shape)
        result = compile_model(args.model, args.input_name, shape, args.opt, disabled,
                               args.device, args.out, args.cuda_arch or default_cuda_arch(),
                               tune)
    except CompileError as e:
        print(f"tvm_compile: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
