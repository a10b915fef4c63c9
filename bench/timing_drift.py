"""Why the timed images are interleaved between variants: two variants that compute the same thing
(ONNX Runtime at opt=all, and the same with an optimizer switched off that the demo model never
uses) are timed while a CPU burst starts half-way, once one after another (two `deltann run`s of
one variant each: the order campaigns used before the interleaving) and once interleaved (one
`deltann run` of both). deltann and the burst are pinned to one core, so the burst slows every
inference that runs while it lasts. Identical variants should have a ratio of medians of 1; the
sequential order gives the variant that ran during the burst a spurious slow-down. Driven by
bench/timing_drift (docs/PERFORMANCE.md, "Interleaved timing").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_overhead import machine

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["ort:opt=all,threads=1", "ort:opt=all,disable=GeluFusion,threads=1"]


def medians_ms(db: Path) -> dict[str, float]:
    """Per variant, the median of its timed samples in ms."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    samples: dict[str, list[int]] = {}
    for env, blob in con.execute("SELECT v.env, r.samples_ns FROM results r"
                                 " JOIN variants v ON v.id = r.variant_id"):
        values = [int.from_bytes(blob[i:i + 8], "little") for i in range(0, len(blob or b""), 8)]
        samples.setdefault(env, []).extend(values)
    con.close()
    return {env: statistics.median(v) / 1e6 for env, v in samples.items() if v}


class Burst:
    """`count` processes spinning on `core` from `start_s` after start() until stop()."""

    def __init__(self, core: int, count: int, start_s: float):
        self.core, self.count, self.start_s = core, count, start_s
        self.procs: list[subprocess.Popen] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        if self.stopped.wait(self.start_s):
            return
        for _ in range(self.count):
            self.procs.append(subprocess.Popen(
                ["taskset", "-c", str(self.core), sys.executable, "-c", "while True: pass"]))

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join()
        for p in self.procs:
            p.kill()
            p.wait()


def campaign(base: list[str], variants: list[str], db: Path, log: Path) -> float:
    argv = [*base, "--db", str(db)]
    for v in variants:
        argv += ["--env", v]
    start = time.monotonic()
    with open(log, "ab") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - start


def ratio(medians: dict[str, float]) -> float:
    a, b = (next(m for env, m in medians.items() if (("disable=" in env) == (i == 1)))
            for i in (0, 1))
    return b / a


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, required=True, help="build folder with deltann")
    parser.add_argument("--demo", type=Path, default=ROOT / "assets" / "demo")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--core", type=int, default=min(os.sched_getaffinity(0)))
    parser.add_argument("--burst", type=int, default=1, help="spinning processes on the core")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("timing_drift.json"))
    a = parser.parse_args()
    deltann = a.build.resolve() / "deltann"
    if not deltann.exists():
        raise SystemExit(f"timing_drift: {deltann} not found (build deltann first)")
    work = Path(tempfile.mkdtemp(prefix="deltann-drift."))
    log = work / "runs.log"
    base = ["taskset", "-c", str(a.core), str(deltann), "run", "--model",
            str(a.demo / "efficientnet-lite0.onnx"), "--images", str(a.demo / "images.txt"),
            "--cache", str(work / "cache"), "--timing-images", "all", "--warmup", "3",
            "--repeat", str(a.repeat), "--quiet"]
    rounds = []
    try:
        # Quiet: fills the cache, and gives the time after which the burst starts (half of it).
        campaign(base, VARIANTS, work / "warm.db", log)
        quiet_s = campaign(base, VARIANTS, work / "quiet.db", log)
        quiet = ratio(medians_ms(work / "quiet.db"))
        print(f"quiet, interleaved: {quiet_s:.1f} s, ratio of medians {quiet:.3f}", flush=True)
        for n in range(a.rounds):
            row = {}
            burst = Burst(a.core, a.burst, quiet_s / 2)
            burst.start()
            try:
                medians = {}
                for i, v in enumerate(VARIANTS):
                    db = work / f"seq{n}_{i}.db"
                    campaign(base, [v], db, log)
                    medians.update(medians_ms(db))
            finally:
                burst.stop()
            row["sequential"] = {"medians_ms": medians, "ratio": ratio(medians)}
            burst = Burst(a.core, a.burst, quiet_s / 2)
            burst.start()
            try:
                db = work / f"int{n}.db"
                campaign(base, VARIANTS, db, log)
            finally:
                burst.stop()
            medians = medians_ms(db)
            row["interleaved"] = {"medians_ms": medians, "ratio": ratio(medians)}
            seq, inter = row["sequential"]["ratio"], row["interleaved"]["ratio"]
            print(f"round {n + 1}: ratio of medians (identical variants) sequential {seq:.3f}, "
                  f"interleaved {inter:.3f}", flush=True)
            rounds.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "variants": VARIANTS,
              "repeat": a.repeat, "burst_processes": a.burst, "quiet_ratio": quiet,
              "quiet_seconds": quiet_s, "rounds": rounds}
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
