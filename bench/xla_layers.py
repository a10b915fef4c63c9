#!/usr/bin/env python3
"""Which layers make TensorFlow with XLA slower than without on the CPU (docs/STUDY.md).

Times single Keras layers at MobileNetV2-like sizes, each traced as `tf.function` with
jit_compile off (TensorFlow's graph executor, oneDNN kernels) and on (XLA:CPU), one intra-op
thread, medians over --rounds calls after a warm-up call that also compiles. The ratio XLA/graph is
measured in the same run. Run with the TensorFlow environment's Python:

  .deps/venv-tf/bin/python bench/xla_layers.py [--rounds 30] [--json]
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf

SIZE = [1, 112, 112, 96]  # the activation entering an early MobileNetV2 block


def layers() -> dict:
    return {
        "depthwise 3x3, 96 channels": keras.layers.DepthwiseConv2D(3, padding="same"),
        "depthwise 3x3 stride 2": keras.layers.DepthwiseConv2D(3, strides=2, padding="same"),
        "conv 1x1, 96 -> 24": keras.layers.Conv2D(24, 1),
        "conv 3x3, 96 -> 96": keras.layers.Conv2D(96, 3, padding="same"),
    }


def median_ms(function, x, rounds: int) -> float:
    function(x).numpy()  # trace and, with XLA, compile
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function(x).numpy()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x = tf.random.normal(SIZE, seed=0)
    rows = []
    for name, layer in layers().items():
        layer.build(x.shape)
        spec = [tf.TensorSpec(x.shape)]
        graph = tf.function(lambda t, layer=layer: layer(t), jit_compile=False,
                            input_signature=spec)
        xla = tf.function(lambda t, layer=layer: layer(t), jit_compile=True, input_signature=spec)
        g, a = median_ms(graph, x, args.rounds), median_ms(xla, x, args.rounds)
        rows.append({"layer": name, "graph_ms": g, "xla_ms": a, "xla_over_graph": a / g})
    if args.json:
        print(json.dumps({"tensorflow": tf.__version__, "input": SIZE, "rows": rows}))
    else:
        print(f"TensorFlow {tf.__version__}, input {SIZE}, one thread, {args.rounds} rounds")
        for r in rows:
            print(f"{r['layer']:28s} graph {r['graph_ms']:8.2f} ms   XLA {r['xla_ms']:8.2f} ms   "
                  f"XLA/graph {r['xla_over_graph']:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
