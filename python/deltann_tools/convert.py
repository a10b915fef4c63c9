#!/usr/bin/env python3
"""deltann's conversion build step: one step of a conversion chain such as pytorch>onnx>tflite.

    convert.py --describe
    convert.py --step FROM>TO --in IN --spec SPEC.json --out OUT [--knobs k=v,k=v]

`--describe` prints one JSON line: the formats, the steps with their tool and its version (a step
whose tool is missing is listed with "unavailable"), and the knobs. A step converts IN (whose
model spec is SPEC.json) into OUT, written atomically, and prints one JSON line: the tool, its
version, `convert_s`, the model spec of OUT (input name/shape/layout and output name as the
conversion left them, everything else carried over) and notes on what the tool did. Whatever the
tools print goes to stderr. A failure exits 1 with one paragraph on stderr naming the step, the
reason and the tail of the tool's own output.

The pytorch and torchscript steps run in this process (convert_torch.py, the main venv). The
TensorFlow-side steps (onnx<->tflite, keras>tflite, keras<->onnx) run convert_tf.py with the
Python of the TensorFlow venv (.deps/venv-tf, or $DELTANN_TF_PYTHON): TensorFlow and its
converters pin versions that cannot share a process with the main venv's torch and onnx.
docs/CONVERSIONS.md says what every step does to a model.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from deltann_tools import environment

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

FORMATS = {"pytorch": ".pth", "onnx": ".onnx", "torchscript": ".pt", "tflite": ".tflite",
           "keras": ".keras"}

KNOBS: list[dict[str, Any]] = [
    {"name": "quantize", "values": ["none", "dynamic", "float16"], "default": "none",
     "help": "TFLite converter optimisation: none = float32; dynamic = dynamic-range "
             "quantisation (Optimize.DEFAULT without a representative dataset: int8 weights, "
             "float activations); float16 = Optimize.DEFAULT with float16 weights"},
    {"name": "opset", "values": ["13", "10", "11", "12", "14", "15", "16", "17"], "default": "13",
     "help": "ONNX opset of torch.onnx.export. 13 by default; 10 keeps ReLU6 a plain Clip and "
             "TF-style 'same' padding a plain Pad (what OpenCV 4.6 and onnx2tf need for "
             "EfficientNet-Lite, see docs/CONVERSIONS.md)"},
]

# Every step: which venv runs it, the tool named in reports, the distributions whose versions
# make up tool_version (a label of its own first when several), and the knobs it takes.
# A step: from, to, venv, tool (str); versions, knobs (list of str).
Step = dict[str, Any]
STEPS: list[Step] = [
    {"from": "pytorch", "to": "onnx", "venv": "main", "tool": "torch.onnx.export",
     "versions": ["torch"], "knobs": ["opset"]},
    {"from": "pytorch", "to": "torchscript", "venv": "main", "tool": "torch.jit.trace",
     "versions": ["torch"], "knobs": []},
    {"from": "onnx", "to": "tflite", "venv": "tf", "tool": "onnx2tf + tf.lite.TFLiteConverter",
     "versions": ["onnx2tf", "tensorflow"], "knobs": ["quantize"]},
    {"from": "tflite", "to": "onnx", "venv": "tf", "tool": "tf2onnx",
     "versions": ["tf2onnx"], "knobs": []},
    {"from": "onnx", "to": "torchscript", "venv": "main", "tool": "onnx2torch + torch.jit.trace",
     "versions": ["onnx2torch", "torch"], "knobs": []},
    {"from": "keras", "to": "tflite", "venv": "tf", "tool": "tf.lite.TFLiteConverter",
     "versions": ["tensorflow"], "knobs": ["quantize"]},
    {"from": "keras", "to": "onnx", "venv": "tf", "tool": "tf2onnx",
     "versions": ["tf2onnx", "tensorflow"], "knobs": []},
    {"from": "onnx", "to": "keras", "venv": "tf", "tool": "onnx2tf",
     "versions": ["onnx2tf", "tensorflow"], "knobs": []},
]
# Distributions a step needs besides those in its tool_version.
NEEDS: dict[str, list[str]] = {"main": ["torch", "onnx"],
                               "tf": ["tensorflow", "ai-edge-litert", "onnx"]}

TAIL_LINES, TAIL_CHARS = 12, 1500


class ConvertError(Exception):
    """A failure reported as one paragraph on stderr (exit 1)."""


def tf_python() -> Path:
    default = ROOT / ".deps" / "venv-tf" / "bin" / "python"
    return Path(os.environ.get("DELTANN_TF_PYTHON") or default)


def tf_environment(**extra: str) -> dict[str, str]:
    """The environment of a venv-tf child. The two venvs must not mix: its module path is the folder
    of this package only (convert_tf.py imports deltann_tools.environment), nothing of ours."""
    env = dict(os.environ, PYTHONPATH=str(HERE.parent), **extra)
    env.pop("PYTHONHOME", None)
    return env


def main_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("torch", "onnx", "onnx2torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def tf_versions() -> tuple[dict[str, str | None], str | None]:
    """Versions in the TensorFlow venv ({} and the reason when it cannot be asked).

    A tiny subprocess that reads package metadata only, so --describe stays fast."""
    python = tf_python()
    if not python.exists():
        return {}, (f"no TensorFlow venv: {python} does not exist (scripts/setup creates it from "
                    "python/requirements-tf.txt; $DELTANN_TF_PYTHON overrides the path)")
    try:
        proc = subprocess.run([str(python), str(HERE / "convert_tf.py"), "--versions"],
                              capture_output=True, text=True, timeout=30, env=tf_environment())
        if proc.returncode == 0:
            return json.loads(proc.stdout), None
        why = tail(proc.stderr) or f"exit code {proc.returncode}"
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        why = f"{type(e).__name__}: {e}"
    return {}, f"cannot ask {python} for its package versions: {why}"


def describe() -> dict[str, Any]:
    venvs = {"main": (main_versions(), None), "tf": tf_versions()}
    steps = []
    for s in STEPS:
        found, why = venvs[s["venv"]]
        versions = [(name, found.get(name)) for name in s["versions"]]
        if len(versions) == 1:
            tool_version = versions[0][1]
        else:
            tool_version = ", ".join(f"{n} {v}" for n, v in versions)
        entry = {"from": s["from"], "to": s["to"], "tool": s["tool"],
                 "tool_version": tool_version, "knobs": s["knobs"]}
        missing = [n for n in s["versions"] + NEEDS[s["venv"]] if not found.get(n)]
        if why:
            entry["unavailable"] = why
        elif missing:
            where = ("the main venv" if s["venv"] == "main"
                     else f"the TensorFlow venv ({tf_python()})")
            entry["unavailable"] = f"{', '.join(missing)} not installed in {where}"
        steps.append(entry)
    return {"name": "convert", "formats": FORMATS, "steps": steps, "knobs": KNOBS}


def find_step(text: str) -> Step:
    try:
        formats = environment.parse_chain(text)
    except environment.EnvironmentStringError:
        formats = []
    for s in STEPS:
        if formats == [s["from"], s["to"]]:
            return s
    known = ", ".join(f"{s['from']}>{s['to']}" for s in STEPS)
    raise ConvertError(f"unknown step {text!r}; known steps: {known}")


def parse_knobs(text: str, step: Step) -> dict[str, str]:
    """The step's knobs with defaults filled in; refuses knobs it does not take and bad values."""
    declared = {k["name"]: k for k in KNOBS if k["name"] in step["knobs"]}
    knobs = {name: k["default"] for name, k in declared.items()}
    name_of = f"{step['from']}>{step['to']}"
    try:
        given = environment.parse_knobs(text, f"--knobs {text!r}")
    except environment.EnvironmentStringError as e:
        raise ConvertError(str(e)) from e
    for key, value in given.items():
        if key not in declared:
            takes = ", ".join(declared) or "no knobs"
            raise ConvertError(f"step {name_of} does not take knob {key!r} (it takes {takes})")
        if value not in declared[key]["values"]:
            raise ConvertError(f"bad value {key}={value!r} for step {name_of}; valid values: "
                               f"{', '.join(declared[key]['values'])}")
        knobs[key] = value
    return knobs


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(text: object) -> str:
    """`text` with every run of whitespace or unprintable bytes made one space: an error is one
    paragraph even when a tool's message quotes binary input or spans lines."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last non-empty lines of a tool's output, on one line (for a one-paragraph error)."""
    kept = [one_line(ANSI.sub("", line)) for line in text.splitlines()]
    kept = [line for line in kept if line][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= TAIL_CHARS else "..." + joined[-TAIL_CHARS:]


@contextlib.contextmanager
def output_to(path: str | Path) -> Iterator[None]:
    """Sends this process's stdout and stderr (file descriptors 1 and 2, so C++ code and
    subprocesses included) into `path` for the duration; stdout is reserved for our report."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def run_main_venv(step: Step, src: str, spec: dict[str, Any], tmp_out: str,
                  knobs: dict[str, str], log: Path) -> tuple[dict[str, Any], list[str], float]:
    from deltann_tools import convert_torch  # imported late: it brings in torch
    with output_to(log):
        start = time.perf_counter()
        try:
            out_spec, notes = convert_torch.run(step["from"], step["to"], src, spec, tmp_out, knobs)
        except convert_torch.StepError as e:
            raise ConvertError(str(e)) from e
        except Exception as e:  # a tool failing in a way the step did not foresee
            raise ConvertError(f"{type(e).__name__}: {e}") from e
        convert_s = time.perf_counter() - start
    return out_spec, notes, convert_s


def run_tf_venv(step: Step, src: str, spec_path: str, tmp_out: Path, knobs: dict[str, str],
                log: Path, workdir: str) -> tuple[dict[str, Any], list[str], float]:
    python = tf_python()
    if not python.exists():
        raise ConvertError(f"the TensorFlow venv is missing: {python} does not exist (scripts/"
                           "setup creates it from python/requirements-tf.txt)")
    result = Path(workdir) / "result.json"
    args = [str(python), str(HERE / "convert_tf.py"), "--step", f"{step['from']}>{step['to']}",
            "--in", str(Path(src).resolve()), "--spec", str(Path(spec_path).resolve()),
            "--out", str(tmp_out), "--result", str(result),
            "--knobs", ",".join(f"{k}={v}" for k, v in knobs.items())]
    # TensorFlow's C++ INFO/WARNING lines are noise here; errors still come through.
    env = tf_environment(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    with open(log, "wb") as f:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                              cwd=workdir, env=env)
    try:
        report = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        raise ConvertError(f"the TensorFlow-side converter {how} without a result") from None
    if proc.returncode != 0 or "error" in report:
        raise ConvertError(report.get("error") or f"exit code {proc.returncode}")
    return report["spec"], report["notes"], report["convert_s"]


def convert(step: Step, src: str, spec_path: str, out: str | Path,
            knobs: dict[str, str]) -> dict[str, Any]:
    """Runs one step; returns the report printed on stdout."""
    if not os.path.isfile(src):
        raise ConvertError(f"input {src} does not exist")
    try:
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise ConvertError(f"cannot read the spec {spec_path}: {e}") from e
    shape = spec.get("input", {}).get("shape") if isinstance(spec, dict) else None
    if not (isinstance(shape, list) and len(shape) == 4):
        raise ConvertError(f"the spec {spec_path} has no four-dimensional input shape")
    described = next(s for s in describe()["steps"]
                     if (s["from"], s["to"]) == (step["from"], step["to"]))
    if described.get("unavailable"):
        raise ConvertError(described["unavailable"])

    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything the tools write goes into a private folder beside OUT, so the final rename is
    # atomic (same file system) and nothing is left behind, whatever happens.
    workdir = tempfile.mkdtemp(prefix=f".convert-{step['from']}-{step['to']}-", dir=out.parent)
    log = Path(workdir) / "tool.log"
    tmp_out = Path(workdir) / f"out{FORMATS[step['to']]}"
    try:
        try:
            if step["venv"] == "main":
                out_spec, notes, convert_s = run_main_venv(step, src, spec, str(tmp_out), knobs,
                                                           log)
            else:
                out_spec, notes, convert_s = run_tf_venv(step, src, spec_path, tmp_out, knobs,
                                                         log, workdir)
            if not tmp_out.is_file() or tmp_out.stat().st_size == 0:
                raise ConvertError(f"the tool reported success but wrote no {step['to']} file")
        except ConvertError as e:
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
            reason = str(e).rstrip(".")
            if tail(text):
                reason += f". Last lines of the tool's output: {tail(text)}"
            raise ConvertError(reason) from e
        sys.stderr.write(log.read_text(encoding="utf-8", errors="replace"))
        os.replace(tmp_out, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"tool": step["tool"], "tool_version": described["tool_version"],
            "convert_s": round(convert_s, 3), "spec": out_spec, "notes": notes}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Misuse is a failure like any other: exit 1 with one line, not argparse's exit 2.
        print(f"convert: error: {message} (see convert.py --help)", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="convert", description=__doc__.split("\n")[0])
    ap.add_argument("--describe", action="store_true", help="print the steps as JSON and exit")
    ap.add_argument("--step", help="FROM>TO, e.g. onnx>tflite")
    ap.add_argument("--in", dest="src", help="the artifact to convert")
    ap.add_argument("--spec", help="the input artifact's model spec (JSON)")
    ap.add_argument("--out", help="the artifact to write")
    ap.add_argument("--knobs", default="", help="k=v,k=v (only knobs the step declares)")
    args = ap.parse_args(argv)
    if args.describe:
        print(json.dumps(describe()))
        return 0
    step_name = args.step or "?"
    try:
        missing = [f"--{n}" for n, v in (("step", args.step), ("in", args.src),
                                         ("spec", args.spec), ("out", args.out)) if not v]
        if missing:
            raise ConvertError(f"missing {', '.join(missing)}")
        step = find_step(args.step)
        step_name = f"{step['from']}>{step['to']} ({step['tool']})"
        knobs = parse_knobs(args.knobs, step)
        report = convert(step, args.src, args.spec, args.out, knobs)
    except ConvertError as e:
        print(one_line(f"convert: error: step {step_name} failed on {args.src}: {e}"),
              file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
