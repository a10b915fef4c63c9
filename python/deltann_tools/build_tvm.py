"""deltann's build step for the `tvm` engine (the build-tool protocol of docs/PROTOCOL.md).

    build_tvm.py --describe
    build_tvm.py --model M.onnx --spec SPEC.json --env ENV --out OUT.so

`--describe` prints the build knobs (opt, disable, device, tune) and, for `disable=each`, the
passes each opt level runs. A build reads the resolved environment string and the model spec
that deltann passes, compiles with tvm_compile.compile_model and prints its one-line JSON
report; a failure exits 1 with one paragraph on stderr, which deltann records as a finding with
stage "compile".
"""
import argparse
import json
import sys
from typing import Any

from deltann_tools import tvm_compile
from deltann_tools.environment import EnvironmentStringError, parse_environment


def describe() -> dict[str, Any]:
    d = tvm_compile.describe()
    knobs = []
    for knob in d["knobs"]:
        if knob["name"] == "disable":
            # A set knob for deltann: any '+'-joined subset of the pass names, or none.
            knob = dict(knob, values=[v for v in knob["values"] if v != "none"], subset=True)
        knobs.append(knob)
    return {
        "name": "tvm",
        "version": d["version"],
        "formats": ["onnx"],  # what the compiler reads; the worker loads what it writes
        "knobs": knobs,
        "each": {"disable": {"by": "opt",
                             "members": {k: v["passes"] for k, v in d["opt_levels"].items()}}},
        "opt_levels": d["opt_levels"],
        "targets": d["targets"],
    }


def first_input_name(model: str) -> str:
    import onnx
    graph = onnx.load(model, load_external_data=False).graph
    initialisers = {i.name for i in graph.initializer}
    for value in graph.input:
        if value.name not in initialisers:
            return value.name
    raise tvm_compile.CompileError(f"{model} has no graph input")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="build_tvm", description=__doc__.split("\n")[0])
    ap.add_argument("--describe", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--spec")
    ap.add_argument("--env")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.describe:
        print(json.dumps(describe()))
        return 0
    try:
        if not (args.model and args.spec and args.env and args.out):
            raise tvm_compile.CompileError("--model, --spec, --env and --out are all required")
        with open(args.spec, encoding="utf-8") as f:
            spec = json.load(f)
        knobs = parse_environment(args.env).knobs
        opt = knobs.get("opt", tvm_compile.DEFAULT_OPT)
        device = knobs.get("device", "cpu")
        tune = tvm_compile.parse_tune(knobs.get("tune"))
        isa = knobs.get("isa", "native")
        if isa not in tvm_compile.ISA_MCPU:
            raise tvm_compile.CompileError(f"unknown isa={isa!r}; valid: "
                                           f"{', '.join(tvm_compile.ISA_MCPU)}")
        tvm_compile.check_request(args.model, opt, device, tune)
        input_name = spec["input"].get("name") or first_input_name(args.model)
        report = tvm_compile.compile_model(
            args.model, input_name, [int(d) for d in spec["input"]["shape"]], opt,
            tvm_compile.parse_disable(knobs.get("disable", "none")), device, args.out,
            tvm_compile.default_cuda_arch(), tune, isa)
    except (tvm_compile.CompileError, EnvironmentStringError) as e:
        print(f"build_tvm: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
