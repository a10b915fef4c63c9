"""How much of a campaign's wall time is spent outside the engines, and what run and analysis cost
in memory. Driven by bench/campaign_overhead (see docs/PERFORMANCE.md, "Campaign overhead").

For each campaign it starts the real `deltann run` with `--events FILE`, times it from outside and
takes the time inside engine calls from the campaign's database: each variant's load (`load_ns`),
first inference (`first_ns`), warm-up (not stored: estimated as warm-up count x the median timed
run of the variant's first image) and every timed run (`samples_ns`). The rest of the wall time is
split along the events' timestamps ("t") into planning, setup (database and image preprocessing),
artifacts, worker process starts and stops, IPC (with the per-image work around the engine call)
and storage, and the analysis that `deltann run` prints at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Phases outside the engine, in the order the table prints them.
PHASES = ["planning", "setup", "artifacts", "process", "ipc", "storage", "analysis"]
PHASE_TEXT = {
    "planning": "planning (start, spec, dataset, engines)",
    "setup": "setup (lock, database, preprocessing)",
    "artifacts": "artifacts (conversion, compile, cache)",
    "process": "worker process starts and stops",
    "ipc": "IPC and per-image work around the engine",
    "storage": "storage (results, rows, statuses)",
    "analysis": "analysis (`run` prints the comparison)",
}

# The 200-image campaign's engines: single-threaded, so that two cores hold the engine and
# deltann without one waiting for the other, and quick enough for a few minutes in all.
DEFAULT_LARGE_ENVS = ["ort:opt=all,threads=1", "opencv:opt=on,threads=1"]


# ---------------------------------------------------------------------------------------------
# The dataset: real photos, each with content of its own.


def read_demo_list(demo: Path) -> list[tuple[Path, int]]:
    entries = []
    for line in (demo / "images.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        path, label = line.split()[:2]
        entries.append((demo / path, int(label)))
    return entries


def derive_images(demo: Path, count: int, out: Path) -> Path:
    """Writes `count` photos derived from the demo's: photo i is demo photo i mod 9 cropped to a
    box drawn from a generator seeded with i (60-100% of each side), flipped on every other pass,
    and rescaled so that its shorter side is 160-480 pixels. Returns a list file with the source
    photos' labels (a crop keeps most of the subject). Deterministic: the same files every run."""
    from PIL import Image  # from the project's venv (scripts/setup)

    sources = read_demo_list(demo)
    out.mkdir(parents=True, exist_ok=True)
    lines, seen = [], set()
    for i in range(count):
        path, label = sources[i % len(sources)]
        rng = random.Random(i)
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = image.crop((x, y, x + cw, y + ch))
        if (i // len(sources)) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        short = rng.randint(160, 480)
        scale = short / min(image.size)
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        if digest in seen:
            raise SystemExit(f"campaign_overhead: derived image {i} repeats another's pixels")
        seen.add(digest)
        name = f"img{i:04d}_{path.stem}.jpg"
        image.save(out / name, quality=92)
        lines.append(f"{name} {label}")
    listing = out / "images.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


# ---------------------------------------------------------------------------------------------
# Running a command and measuring it.


def vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Runs argv (no shell), its output to `log`. Returns the wall time between the start and the
    end on the wall clock (the events' clock), the peak RSS of the process itself (its VmHWM,
    sampled every 20 ms) and of the largest process of its tree (wait4's ru_maxrss)."""
    with open(log, "wb") as out:
        start = time.time()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        own_peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                value = vm_hwm_kib(child.pid)
                if value:
                    own_peak[0] = max(own_peak[0], value)
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        end = time.time()
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    return {"start": start, "end": end, "wall_s": end - start, "rc": child.returncode,
            "own_peak_rss_mib": own_peak[0] / 1024 if own_peak[0] else None,
            "tree_peak_rss_mib": usage.ru_maxrss / 1024,
            # CPU time of the process and the children it waited for (its workers): on a shared
            # machine the wall time also holds the time spent waiting for a core.
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "load_at_end": os.getloadavg()[0]}


# ---------------------------------------------------------------------------------------------
# Reading a campaign back: its database and its events.


def engine_time(db: Path) -> dict[str, dict]:
    """Per variant, nanoseconds inside engine calls as the workers measured them."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    timing = dict(con.execute("SELECT key, value FROM meta")).get("timing", "warmup=0, repeat=1")
    warmup = int(timing.split("warmup=")[1].split(",")[0])
    out = {}
    for vid, env, load_ns, first_ns in con.execute(
            "SELECT id, env, load_ns, first_ns FROM variants"):
        samples = [list(memoryview(blob).cast("q")) for (blob,) in con.execute(
            "SELECT samples_ns FROM results WHERE variant_id = ? ORDER BY rowid", (vid,))]
        if not samples:
            continue  # skipped, or failed before its first result
        timed = sum(sum(s) for s in samples)
        # The worker runs the warm-up only after the first inference of its process (the first
        # image); each warm-up run is taken to cost what that image's timed runs did.
        warm = warmup * statistics.median(samples[0]) if samples and samples[0] else 0
        out[env] = {"load_ns": load_ns or 0, "first_ns": first_ns or 0, "warmup_ns": warm,
                    "timed_ns": timed, "results": len(samples)}
    con.close()
    return out


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def breakdown(events: list[dict], engines: dict[str, dict], run: dict) -> dict:
    """Splits the wall time of one `deltann run` along its events (docs/PROTOCOL.md)."""
    seconds = {p: 0.0 for p in PHASES}
    seconds["inference"] = 0.0

    def first_of(name: str) -> dict | None:
        return next((e for e in events if e["event"] == name), None)

    plan, ready, end = first_of("plan"), first_of("images_ready"), first_of("campaign_end")
    if not (plan and ready and end):
        raise SystemExit("campaign_overhead: the event log lacks plan, images_ready or campaign_end"
                         " (a deltann from before the timed events?)")
    seconds["planning"] = plan["t"] - run["start"]
    seconds["setup"] = ready["t"] - plan["t"]
    seconds["analysis"] = run["end"] - end["t"]
    # From images_ready to campaign_end, walk the events: each span is given to what happened in it.
    t = ready["t"]
    variant_started = None
    for e in events:
        if e["t"] < ready["t"] or e["event"] in ("plan", "images_ready", "note"):
            continue
        kind = e["event"]
        span = e["t"] - t
        if kind == "variant_start":
            seconds["storage"] += span  # variant rows, statuses, the previous variant's last batch
            variant_started = e
        elif kind == "artifact":
            seconds["artifacts"] += span
        elif kind == "worker_loaded":
            start_s, load_s = e["start_ns"] / 1e9, e["load_ns"] / 1e9
            seconds["artifacts"] += max(0.0, span - start_s)  # up to the process start
            seconds["process"] += start_s - load_s
            seconds["inference"] += load_s
        elif kind in ("result", "failure"):
            if kind == "failure" and e.get("stage") in ("convert", "compile"):
                seconds["artifacts"] += span
            else:
                store_s = e.get("store_ns", 0) / 1e9
                seconds["storage"] += store_s
                seconds["ipc"] += span - store_s  # the engine's share is moved out below
        elif kind == "variant_end":
            # After the last image: the worker told to quit and waited for. A variant skipped or
            # complete before it started is bookkeeping (storage).
            if variant_started is not None and variant_started.get("variant") == e["variant"]:
                seconds["process"] += span
            else:
                seconds["storage"] += span
            variant_started = None
        elif kind == "campaign_end":
            seconds["storage"] += span
        t = e["t"]
    inside_runs = sum((v["first_ns"] + v["warmup_ns"] + v["timed_ns"]) / 1e9
                      for v in engines.values())
    seconds["ipc"] -= inside_runs
    seconds["inference"] += inside_runs
    wall = run["wall_s"]
    outside = wall - seconds["inference"]
    return {"wall_s": wall, "inference_s": seconds["inference"], "outside_s": outside,
            "outside_fraction": outside / wall,
            "phases_s": {p: seconds[p] for p in PHASES},
            "unaccounted_s": outside - sum(seconds[p] for p in PHASES)}


# ---------------------------------------------------------------------------------------------
# The campaigns.


def campaign(name: str, deltann: Path, args: list[str], work: Path, env: dict[str, str],
             note: str) -> dict:
    folder = work / name
    folder.mkdir()
    db, events = folder / "campaign.db", folder / "events.jsonl"
    argv = [str(deltann), "run", *args, "--db", str(db), "--events", str(events), "--quiet"]
    print(f"-- {name}: {note}", flush=True)
    run = run_measured(argv, env, folder / "run.log")
    if run["rc"] != 0:
        sys.stderr.write((folder / "run.log").read_text()[-4000:])
        raise SystemExit(f"campaign_overhead: `deltann run` for {name} exited {run['rc']}")
    log = read_events(events)
    engines = engine_time(db)
    plan = next(e for e in log if e["event"] == "plan")
    artifacts = [e for e in log if e["event"] == "artifact"]
    result = {"name": name, "note": note, "argv": argv[1:], "images": plan["images"],
              "variants_planned": plan["variants"], "variants_run": sorted(engines),
              "results": sum(v["results"] for v in engines.values()),
              "worker_starts": sum(1 for e in log if e["event"] == "worker_loaded"),
              "artifacts_built": sum(1 for e in artifacts if not e["cached"]),
              "artifacts_cached": sum(1 for e in artifacts if e["cached"]),
              "own_peak_rss_mib": run["own_peak_rss_mib"],
              "tree_peak_rss_mib": run["tree_peak_rss_mib"], "cpu_s": run["cpu_s"],
              "load_average_1min_at_end": run["load_at_end"]}
    result.update(breakdown(log, engines, run))
    return result


def analysis(deltann: Path, scale_bench: Path | None, db: Path | None, images: int, variants: int,
             work: Path, env: dict[str, str]) -> dict | None:
    if db is None:
        if scale_bench is None or not scale_bench.exists():
            print("-- analysis: skipped (bench_analysis_scale not built; give --analysis-db)")
            return None
        db = Path(tempfile.gettempdir()) / "deltann-bench" / f"analysis_{images}x{variants}x5_s1.db"
        print(f"-- analysis: making (or reusing) {db} with {scale_bench.name}", flush=True)
        subprocess.run([str(scale_bench), "--images", str(images), "--variants", str(variants),
                        "--db", str(db), "--rounds", "1", "--phases", "none"], check=True,
                       stdout=subprocess.DEVNULL)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    stored = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    con.close()
    print(f"-- analysis: deltann compare --json on {stored} stored results", flush=True)
    run = run_measured([str(deltann), "compare", "--db", str(db), "--json"], env,
                       work / "compare.json")
    if run["rc"] != 0:
        raise SystemExit(f"campaign_overhead: deltann compare exited {run['rc']}")
    peak = run["tree_peak_rss_mib"]
    return {"db": str(db), "results": stored, "wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
            "load_average_1min_at_end": run["load_at_end"], "peak_rss_mib": peak,
            "peak_rss_mib_per_million_results": peak / (stored / 1e6),
            "target_s": 5.0, "target_mib": 500.0}


# ---------------------------------------------------------------------------------------------
# Output.


def share(seconds: float, wall: float) -> str:
    return f"{seconds:.2f} ({100 * seconds / wall:.1f}%)"


def print_table(campaigns: list[dict], compare: dict | None) -> None:
    print()
    if campaigns:
        print_campaigns(campaigns)
    if compare:
        print()
        print(f"analysis: deltann compare --json, {compare['results']} stored results: "
              f"{compare['wall_s']:.2f} s wall, {compare['cpu_s']:.2f} s CPU (target < "
              f"{compare['target_s']:.0f} s; load {compare['load_average_1min_at_end']:.1f}), "
              f"peak RSS {compare['peak_rss_mib']:.0f} MiB (target < {compare['target_mib']:.0f} "
              f"MiB), {compare['peak_rss_mib_per_million_results']:.0f} MiB per million results")


def print_campaigns(campaigns: list[dict]) -> None:
    head = f"{'':44}" + "".join(f"{c['name']:>16}" for c in campaigns)
    print(head)

    def row(label: str, values: list[str]) -> None:
        print(f"{label:44}" + "".join(f"{v:>16}" for v in values))

    row("images x variants run", [f"{c['images']} x {len(c['variants_run'])}" for c in campaigns])
    row("wall time s", [f"{c['wall_s']:.2f}" for c in campaigns])
    row("CPU time s (deltann and workers)", [f"{c['cpu_s']:.2f}" for c in campaigns])
    row("load average at the end (1 min)",
        [f"{c['load_average_1min_at_end']:.1f}" for c in campaigns])
    row("inside engine calls s", [f"{c['inference_s']:.2f}" for c in campaigns])
    row("outside s", [f"{c['outside_s']:.2f}" for c in campaigns])
    for p in PHASES:
        row(f"  {PHASE_TEXT[p]}", [share(c["phases_s"][p], c["wall_s"]) for c in campaigns])
    row("  unaccounted s", [f"{c['unaccounted_s']:.3f}" for c in campaigns])
    row("outside inference", [f"{100 * c['outside_fraction']:.1f}%" for c in campaigns])
    row("target", [f"<= {c['target_percent']}%" for c in campaigns])
    row("worker starts", [str(c["worker_starts"]) for c in campaigns])
    row("artifacts built / cached",
        [f"{c['artifacts_built']} / {c['artifacts_cached']}" for c in campaigns])
    row("peak RSS deltann run MiB", [f"{c['own_peak_rss_mib'] or 0:.0f}" for c in campaigns])
    row("peak RSS largest process MiB", [f"{c['tree_peak_rss_mib']:.0f}" for c in campaigns])


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               "?")
    return {"cpu": cpu, "cores": os.cpu_count(),
            "load": Path("/proc/loadavg").read_text().split()[:3],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def photo_campaign(a: argparse.Namespace, deltann: Path, envs: list[str], work: Path,
                   env: dict[str, str]) -> dict:
    listing = derive_images(a.demo, a.images, work / "photos")
    args = ["--model", str(a.demo / "efficientnet-lite0.onnx"), "--images", str(listing),
            "--warmup", str(a.warmup), "--repeat", str(a.repeat), "--cache", str(work / "cache")]
    for e in envs:
        args += ["--env", e]
    c = campaign(f"{a.images} photos", deltann, args, work, env,
                 f"{', '.join(envs)}; --warmup {a.warmup} --repeat {a.repeat}; fresh cache")
    c["target_percent"] = 5
    return c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, required=True, help="build folder with deltann")
    parser.add_argument("--demo", type=Path, default=ROOT / "assets" / "demo")
    parser.add_argument("--out", type=Path, default=Path("campaign_overhead.json"),
                        help="JSON results")
    parser.add_argument("--images", type=int, default=200, help="photos in the large campaign")
    parser.add_argument("--env", action="append", help="environment of the large campaign "
                        f"(repeatable; default {' '.join(DEFAULT_LARGE_ENVS)})")
    parser.add_argument("--warmup", type=int, default=3, help="large campaign (deltann's default)")
    parser.add_argument("--repeat", type=int, default=5, help="large campaign (deltann's default)")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo campaign")
    parser.add_argument("--no-photos", action="store_true", help="skip the large campaign")
    parser.add_argument("--no-analysis", action="store_true", help="skip the compare measurement")
    parser.add_argument("--demo-option", action="append", default=[],
                        help="extra `deltann run` option for the demo, e.g. "
                        "--demo-option=--timeout=30 (repeatable; none: `deltann run` defaults)")
    parser.add_argument("--analysis-db", type=Path, help="database for compare (default: made by "
                        "bench_analysis_scale, 50 000 x 20)")
    parser.add_argument("--smoke", action="store_true",
                        help="3 images, one engine, --repeat 1 --warmup 0, no demo, no analysis")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = parser.parse_args()
    if a.smoke:
        a.images, a.env, a.repeat, a.warmup = 3, ["ort:opt=all,threads=1"], 1, 0
        a.no_demo = a.no_analysis = True
        a.no_photos = False
    deltann = a.build.resolve() / "deltann"
    if not deltann.exists():
        raise SystemExit(f"campaign_overhead: {deltann} not found (build deltann first)")
    envs = a.env or DEFAULT_LARGE_ENVS
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="deltann-campaign-overhead."))
    try:
        results = {"machine": machine(), "deltann": str(deltann), "campaigns": []}
        print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
              f"load {' '.join(results['machine']['load'])}; {results['machine']['date']}")
        if not a.no_demo:
            extra = [part for option in a.demo_option for part in option.split("=", 1)]
            c = campaign("demo", deltann, extra, work, env,
                         "deltann run defaults: assets/demo, every demo environment, default cache"
                         + (f"; {' '.join(a.demo_option)}" if a.demo_option else ""))
            c["target_percent"] = 10
            results["campaigns"].append(c)
        if not a.no_photos:
            results["campaigns"].append(photo_campaign(a, deltann, envs, work, env))
        if not a.no_analysis:
            scale = a.build.resolve() / "bench" / "bench_analysis_scale"
            results["analysis"] = analysis(deltann, scale, a.analysis_db, 50000, 20, work, env)
        print_table(results["campaigns"], results.get("analysis"))
        a.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten: {a.out}")
    finally:
        if a.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
