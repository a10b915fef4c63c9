#!/usr/bin/env python3
"""Estimates the wall time of a study-sized campaign run as shards on N nodes
(docs/PERFORMANCE.md, "Scale out: plan and merge"; docs/SCALE_OUT.md for the shard unit).

    bench/scale_estimate.py [--nodes 1,4,16] [--mix ort=8,...] [--ms ort=9,...] [...]

The campaign: MODELS models (one plan each) x IMAGES images x the variants of --mix, all in one
CPU hardware group, so that a shard runs every variant over one block of --shard-images images
on one node (timing fairness). Per shard and variant: the worker's start, one first inference,
then (warmup + repeat) runs for each of the block's images in the timing sample and one run for
each other image, each run the engine's per-image time scaled by the model's cost, plus the
per-result round trip (IPC); per shard: preprocessing each image once and, on a node whose cache
does not hold them yet, the artifact steps (conversions, TVM compiles). Shards go to the nodes
longest first (each node runs one shard at a time: `exclusive`); then one merge per model.

Every input is an option with the measured default printed above the table. Only the Python
standard library is needed.
"""
import argparse
import heapq
import math


def pairs(text: str) -> dict:
    """'a=1,b=2' -> {'a': 1.0, 'b': 2.0}"""
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not name or not value:
            raise argparse.ArgumentTypeError(f"'{item}' is not NAME=VALUE")
        out[name.strip()] = float(value)
    return out


def models(text: str) -> list:
    """'MobileNetV2=0.67,ResNet-101=14' -> [('MobileNetV2', 0.67), ...] in order"""
    return list(pairs(text).items())


def shard_seconds(a, block: int, cost: float) -> float:
    timed = a.timing_images * block / a.images  # the sample spreads over the blocks
    per_image_runs = timed * (a.warmup + a.repeat) + (block - timed)
    total = block * a.preprocess_ms / 1000 + a.cold_artifacts * a.artifact_s
    for engine, count in a.mix.items():
        ms = a.ms[engine] * cost
        start = a.start.get(engine, a.start["default"])
        total += count * (start + (1 + per_image_runs) * ms / 1000 + block * a.ipc_ms / 1000)
    return total


def makespan(durations: list, nodes: int) -> float:
    """Longest first onto the node that is free first."""
    free = [0.0] * nodes
    for d in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="1,4,16")
    p.add_argument("--models", type=models, default="model1=1,model2=1,model3=1",
                   help="name=cost: each model's per-image times as a multiple of --ms")
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--shard-images", type=int, default=500)
    p.add_argument("--timing-images", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--mix", type=pairs, default="ort=8,openvino=8,litert=6,libtorch=6,opencv=6,tvm=6",
                   help="variants per engine")
    p.add_argument("--ms", type=pairs, default="ort=9,openvino=8,litert=9,libtorch=21,opencv=30,tvm=200",
                   help="ms per image at model cost 1 and one thread, per engine")
    p.add_argument("--start", type=pairs, default="default=0.25,libtorch=3",
                   help="seconds to start and stop a variant's worker, per engine")
    p.add_argument("--ipc-ms", type=float, default=3.0, help="per result, outside the engine")
    p.add_argument("--preprocess-ms", type=float, default=7.0, help="per image and shard")
    p.add_argument("--cold-artifacts", type=int, default=8,
                   help="artifact steps a shard makes on a node whose cache lacks them (0: cached)")
    p.add_argument("--artifact-s", type=float, default=4.2, help="seconds per artifact step")
    p.add_argument("--plan-s", type=float, default=1.0, help="`deltann plan`, per model")
    p.add_argument("--merge-s-per-million", type=float, default=10.0,
                   help="`deltann merge`, seconds per million results")
    a = p.parse_args()
    if "default" not in a.start:
        p.error("--start needs default=SECONDS")
    missing = sorted(set(a.mix) - set(a.ms))
    if missing:
        p.error(f"--ms has no time for {', '.join(missing)}")
    variants = int(sum(a.mix.values()))
    nodes = [int(n) for n in a.nodes.split(",")]

    blocks = math.ceil(a.images / a.shard_images)
    shards, results_per_model = [], a.images * variants
    for _, cost in a.models:
        for b in range(blocks):
            block = min(a.shard_images, a.images - b * a.shard_images)
            shards.append(shard_seconds(a, block, cost))
    fixed = a.plan_s * len(a.models) + a.merge_s_per_million * results_per_model / 1e6 * len(a.models)

    print(f"inputs: {len(a.models)} models ({', '.join(f'{n} x{c:g}' for n, c in a.models)}) x "
          f"{a.images} images x {variants} variants ({', '.join(f'{e} {int(c)}' for e, c in a.mix.items())})")
    print(f"  ms per image at cost 1, 1 thread: {', '.join(f'{e} {v:g}' for e, v in a.ms.items())}")
    print(f"  timing sample {a.timing_images} images x (warm-up {a.warmup} + repeat {a.repeat}), "
          f"the rest once; {a.shard_images} images per shard, one CPU group: {len(shards)} shards")
    print(f"  per shard: worker start {', '.join(f'{e} {v:g} s' for e, v in a.start.items())} per "
          f"variant; {a.cold_artifacts} artifact steps x {a.artifact_s:g} s on a cold cache; "
          f"preprocessing {a.preprocess_ms:g} ms per image; IPC {a.ipc_ms:g} ms per result")
    print(f"  plan {a.plan_s:g} s per model; merge {a.merge_s_per_million:g} s per million results "
          f"({results_per_model * len(a.models) / 1e6:g} M results in all)")
    print(f"  shard times: {min(shards) / 60:.1f} to {max(shards) / 60:.1f} min "
          f"(sum {hours(sum(shards))})\n")
    print(f"{'nodes':>5} {'wall time':>12} {'node-hours':>11} {'efficiency':>11}")
    for n in nodes:
        wall = makespan(shards, n) + fixed
        ideal = sum(shards) / n + fixed
        print(f"{n:>5} {hours(wall):>12} {n * wall / 3600:>11.1f} {ideal / wall:>10.0%}")


if __name__ == "__main__":
    main()
