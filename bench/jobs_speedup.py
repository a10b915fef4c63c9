"""What `deltann run --jobs N` gains on a campaign much larger than its timing sample: the same
campaign with --jobs 1 and --jobs N, alternating, each round into fresh databases over one warm
cache. Prints each round's wall times and the median ratio, checks that both give the same outputs
bit for bit, and writes a JSON file. Driven by bench/jobs_speedup (docs/PERFORMANCE.md,
"Concurrent outputs").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_overhead import derive_images, machine, run_measured

ROOT = Path(__file__).resolve().parent.parent
# Single-threaded engines, so that N jobs fill N cores and none waits for another's threads.
DEFAULT_ENVS = ["ort:opt=all,threads=1", "opencv:opt=on,threads=1",
                "openvino:precision=f32,threads=1", "libtorch@onnx>torchscript:threads=1"]


def outputs(db: Path) -> dict[tuple[str, str], bytes]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT v.env, i.key, r.output, r.top_ids FROM results r JOIN variants v"
                       " ON v.id = r.variant_id JOIN images i ON i.id = r.image_id").fetchall()
    con.close()
    return {(env, key): (output or b"") + top.encode() for env, key, output, top in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, required=True, help="build folder with deltann")
    parser.add_argument("--demo", type=Path, default=ROOT / "assets" / "demo")
    parser.add_argument("--images", type=int, default=120, help="photos derived from the demo's")
    parser.add_argument("--timing-images", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", help="environment (repeatable; default "
                        f"{' '.join(DEFAULT_ENVS)}; unavailable engines are skipped by deltann)")
    parser.add_argument("--out", type=Path, default=Path("jobs_speedup.json"))
    a = parser.parse_args()
    deltann = a.build.resolve() / "deltann"
    if not deltann.exists():
        raise SystemExit(f"jobs_speedup: {deltann} not found (build deltann first)")
    work = Path(tempfile.mkdtemp(prefix="deltann-jobs."))
    try:
        listing = derive_images(a.demo, a.images, work / "photos")
        base = [str(deltann), "run", "--model", str(a.demo / "efficientnet-lite0.onnx"),
                "--images", str(listing), "--cache", str(work / "cache"), "--timing-images",
                str(a.timing_images), "--quiet"]
        for e in a.env or DEFAULT_ENVS:
            base += ["--env", e]
        # A first run fills the cache (tensors, artifacts) so that the rounds compare campaigns.
        warm = run_measured([*base, "--db", str(work / "warm.db")], {}, work / "warm.log")
        if warm["rc"] != 0:
            raise SystemExit(f"jobs_speedup: the warm-up campaign failed: {work / 'warm.log'}")
        rounds = []
        for r in range(a.rounds):
            walls = {}
            for jobs in ((1, a.jobs) if r % 2 == 0 else (a.jobs, 1)):
                db = work / f"r{r}-j{jobs}.db"
                ran = run_measured([*base, "--db", str(db), "--jobs", str(jobs)], {},
                                   work / f"r{r}-j{jobs}.log")
                if ran["rc"] != 0:
                    raise SystemExit(f"jobs_speedup: --jobs {jobs} failed: {work}")
                walls[jobs] = ran["wall_s"]
            same = outputs(work / f"r{r}-j1.db") == outputs(work / f"r{r}-j{a.jobs}.db")
            rounds.append({"wall_s_jobs_1": walls[1], f"wall_s_jobs_{a.jobs}": walls[a.jobs],
                           "speedup": walls[1] / walls[a.jobs], "outputs_equal": same})
            print(f"round {r + 1}: --jobs 1 {walls[1]:.1f} s, --jobs {a.jobs} {walls[a.jobs]:.1f} s"
                  f" ({walls[1] / walls[a.jobs]:.2f}x), outputs equal: {same}")
        speedup = statistics.median(r["speedup"] for r in rounds)
        result = {"machine": machine(), "images": a.images, "timing_images": a.timing_images,
                  "envs": a.env or DEFAULT_ENVS, "jobs": a.jobs, "rounds": rounds,
                  "median_speedup": speedup}
        print(f"median speedup of --jobs {a.jobs} over --jobs 1: {speedup:.2f}x "
              f"({a.images} images, {a.timing_images} timed; load {result['machine']['load']})")
        a.out.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if all(r["outputs_equal"] for r in rounds) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
