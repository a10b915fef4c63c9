#!/usr/bin/env python3
"""What keeping layers in f32 costs in speed under OpenVINO's bf16 (docs/PRECISION.md).

Compiles the source model in f32 and in bf16, and each model written by `deltann precision` with
`--b openvino:precision=bf16` in bf16, all for the CPU with one stream and the same thread count,
then times them interleaved (round-robin, so drift on a shared machine hits every model alike) on
one seeded random input. Prints per model the median latency, its 95% interval (order statistics
of the median) and the ratio to f32 measured in the same run, and as JSON with --json.

  bench/precision_openvino.py --model assets/demo/efficientnet-lite0.onnx \\
      --kept kept.xml [--kept other.xml] [--threads 1] [--rounds 200]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from scipy import stats


def median_interval(samples: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (binomial, p = 1/2)."""
    xs = sorted(samples)
    n = len(xs)
    lo = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    hi = int(stats.binom.isf((1 - confidence) / 2, n, 0.5))
    return xs[max(lo - 1, 0)], xs[min(hi, n - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the source model (ONNX)")
    ap.add_argument("--kept", action="append", default=[], help="a model written by precision")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        print("this CPU has no bf16 support in OpenVINO; nothing to measure", file=sys.stderr)
        return 1
    config = {"NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(args.threads),
              "PERFORMANCE_HINT": "LATENCY"}
    runs = {"f32": (args.model, "f32"), "bf16": (args.model, "bf16")}
    for path in args.kept:
        runs[f"bf16 {Path(path).name}"] = (path, "bf16")
    compiled = {}
    for name, (path, precision) in runs.items():
        compiled[name] = core.compile_model(core.read_model(path), "CPU",
                                            {**config, "INFERENCE_PRECISION_HINT": precision})
    min_shape = compiled["f32"].input(0).get_partial_shape().get_min_shape()
    shape = [d if d > 0 else 1 for d in min_shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    requests = {name: c.create_infer_request() for name, c in compiled.items()}
    for request in requests.values():  # warm-up
        for _ in range(5):
            request.infer([x])
    times: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            start = time.perf_counter()
            request.infer([x])
            times[name].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times["f32"])
    result = []
    for name, samples in times.items():
        med = statistics.median(samples)
        lo, hi = median_interval(samples)
        result.append({"model": name, "median_ms": med, "ci_ms": [lo, hi],
                       "ratio_to_f32": med / base})
    if args.json:
        print(json.dumps({"threads": args.threads, "rounds": args.rounds, "results": result}))
    else:
        print(f"threads {args.threads}, {args.rounds} interleaved rounds")
        for r in result:
            print(f"{r['model']:<40} {r['median_ms']:8.2f} ms  [{r['ci_ms'][0]:.2f}-"
                  f"{r['ci_ms'][1]:.2f}]  x{r['ratio_to_f32']:.3f} of f32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
