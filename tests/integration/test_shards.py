"""A campaign planned as shards (deltann plan), each shard run on its own (deltann run --plan), and
the shard databases merged (deltann merge) give what one `deltann run` of the same campaign gives:
the same labels, numbers and findings (only timings differ). Also: a finished shard is not run
again, a merge with a shard missing names it and the indices to resubmit, an edited plan folder is
refused, and `deltann status` tells done from missing and failed (docs/SCALE_OUT.md)."""
import json
import shutil
import socket
import subprocess

import pytest
from deltann_testlib import query, write_random_images

ENVS = ["ort:opt=all,threads=1", "opencv:opt=on,threads=1"]
IMAGES = 5
TIMING = ["--warmup", 0, "--repeat", 1, "--timing-images", 3]
# What depends on the clock (or on which machine ran what) and so differs between two runs.
TIMING_FIELDS = {
    "compile_ms", "cv", "first_inference_ms", "gflops", "load_ms", "median_ms",
    "median_bootstrap_ci_high_ms", "median_bootstrap_ci_low_ms", "median_ci_high_ms",
    "median_ci_low_ms", "p90_ms", "p99_ms", "p_adjusted", "p_value", "peak_gflops", "peak_share",
    "significant", "speed_ratio", "speed_ratio_ci_high", "speed_ratio_ci_low",
    "cpu_mhz_measured", "cpu_mhz_reported"}
TIMING_FINDINGS = {"slowdown", "unstable_timing"}
# Meta that describes the runs rather than the results: when and where, and the plan's own keys.
RUN_META = {"created_at", "host", "cpu_peak", "plan_hash", "shards_merged"}


@pytest.fixture(scope="module")
def demo(demo_folder):
    return demo_folder


def image_list(demo, folder):
    """Five demo photos with their labels, and the first named again (a duplicate, which must stay
    in its first copy's shard)."""
    lines = [line.split("#")[0].split() for line in (demo / "images.txt").read_text().splitlines()]
    entries = [f"{demo / path} {label}" for path, label in (e for e in lines if e)][:IMAGES]
    listing = folder / "images.txt"
    listing.write_text("\n".join(entries + [entries[0]]) + "\n")
    return listing


def dead_pid():
    """The pid of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def campaign_args(demo, listing):
    args = ["--model", demo / "efficientnet-lite0.onnx", "--images", listing, *TIMING]
    for env in ENVS:
        args += ["--env", env]
    return args


def comparable(summary, *dbs):
    """The comparison without what the clock decides, and with the database's name taken out."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            for db in dbs:
                value = value.replace(str(db), "DB")
            return value
        return value
    summary = dict(summary)
    summary["meta"] = {k: v for k, v in summary.get("meta", {}).items()
                       if k not in RUN_META and not k.startswith("shard:")}
    summary["findings"] = [f for f in summary.get("findings", [])
                           if f.get("kind") not in TIMING_FINDINGS]
    return strip(summary)


def write_provenance(listing):
    """A provenance.json beside the list, as `deltann expand` writes one: each image as the
    'fog' variant of a source, severities 1, 2, 3, ... in list order."""
    keys = [line.split()[0] for line in listing.read_text().splitlines()]
    records = {key: {"source": f"src{i}.jpg", "source_sha256": f"{i:064x}", "transform": "fog",
                     "family": "weather", "severity": i % 5 + 1, "seed": 1, "call_seed": 100 + i}
               for i, key in enumerate(dict.fromkeys(keys))}
    (listing.parent / "provenance.json").write_text(json.dumps(records))


def test_sharded_campaign_equals_one_run(deltann, tmp_path, demo):
    listing = image_list(demo, tmp_path)
    write_provenance(listing)
    args = campaign_args(demo, listing)
    plan = tmp_path / "plan"
    planned = deltann.run("plan", *args, "--shard-images", 2, "--out", plan, timeout=300)
    assert "3 shards" in planned.stdout and "shards 0-2" in planned.stdout, planned.describe()

    # The same inputs give byte-identical plan files.
    again = tmp_path / "plan-again"
    deltann.run("plan", *args, "--shard-images", 2, "--out", again, timeout=300)
    names = sorted(str(p.relative_to(plan)) for p in plan.rglob("*.json"))
    assert names == sorted(str(p.relative_to(again)) for p in again.rglob("*.json"))
    for name in names:
        assert (plan / name).read_bytes() == (again / name).read_bytes(), name
    shards = [json.loads((plan / "shards" / f"{i:04d}.json").read_text()) for i in range(3)]
    assert [len(s["images"]) for s in shards] == [3, 2, 1]  # the duplicate stays with its first
    assert all(s["variants"] == shards[0]["variants"] for s in shards)
    assert sum(len(s["timed_images"]) for s in shards) == 3

    # The index from --shard, Slurm's array task id, and a Kubernetes Indexed Job's index.
    deltann.run("run", "--plan", plan, "--shard", 0, timeout=300)
    deltann.run("run", "--plan", plan, env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "4242"},
                timeout=300)

    # A merge with a shard missing names it and the indices to run again; nothing is written.
    r = deltann.run("merge", plan, "-o", tmp_path / "partial.db", expect_rc=1)
    assert "shard 2" in r.stderr and "--array=2" in r.stderr, r.describe()
    assert not (tmp_path / "partial.db").exists()
    r = deltann.run("status", plan, expect_rc=3)
    assert "shard 2 [cpu] missing" in r.stdout and "--array=2" in r.stdout, r.describe()
    # --partial merges what exists and still names what is missing.
    r = deltann.run("merge", plan, "-o", tmp_path / "partial.db", "--partial")
    assert "merged 2 of 3 shards" in r.stderr and "--array=2" in r.stderr, r.describe()
    assert query(tmp_path / "partial.db", "SELECT count(*) AS n FROM results")[0]["n"] == 2 * 4
    # A shard that started on this host and whose process is gone is a failure.
    (plan / "state" / "0002.json").write_text(json.dumps(
        {"state": "started", "pid": dead_pid(), "node": {"host": socket.gethostname()}}))
    r = deltann.run("status", plan, expect_rc=3)
    assert "shard 2 [cpu] failed" in r.stdout and "gone" in r.stdout, r.describe()

    local = tmp_path / "local"
    deltann.run("run", "--plan", plan, "--local-dir", local,
                env={"JOB_COMPLETION_INDEX": "2"}, timeout=300)
    assert list(local.iterdir()) == [], "the node-local database is removed once published"
    r = deltann.run("status", plan)
    assert "3 done" in r.stdout, r.describe()

    # Running a finished shard again does nothing.
    result = plan / "results" / "shard-0000.db"
    before = result.stat().st_mtime_ns
    r = deltann.run("run", "--plan", plan, "--shard", 0)
    assert "already done" in r.stderr, r.describe()
    assert result.stat().st_mtime_ns == before

    # Each shard database records where it ran.
    node = json.loads(query(plan / "results" / "shard-0001.db",
                            "SELECT value FROM meta WHERE key = 'node'")[0]["value"])
    assert node["host"] and node["cpu"] and node["job"]["SLURM_JOB_ID"] == "4242"
    assert "gpus" in node

    merged = tmp_path / "campaign.db"
    r = deltann.run("merge", plan, "-o", merged)
    assert "merged 3 of 3 shards" in r.stderr, r.describe()

    single = tmp_path / "single.db"
    deltann.run("run", *args, "--db", single, "--quiet", timeout=600)

    # Same rows: images (with the duplicate and the timing sample), variants, results.
    def rows(db, sql):
        return [dict(r) for r in query(db, sql)]
    image_sql = ("SELECT i.key, i.sha256, i.label, i.status, i.timed, d.key AS duplicate_of "
                 "FROM images i LEFT JOIN images d ON d.id = i.duplicate_of ORDER BY i.key")
    assert rows(merged, image_sql) == rows(single, image_sql)
    result_sql = ("SELECT v.env, i.key, r.top_ids, r.top_scores, r.output, length(r.samples_ns) "
                  "AS samples FROM results r JOIN variants v ON v.id = r.variant_id JOIN images i "
                  "ON i.id = r.image_id ORDER BY v.env, i.key")
    assert rows(merged, result_sql) == rows(single, result_sql)
    assert len(rows(merged, result_sql)) == len(ENVS) * IMAGES
    # The provenance of the images, each kept once by the merge.
    provenance_sql = ("SELECT i.key, p.source, p.source_sha256, p.transform, p.family, "
                      "p.severity, p.seed, p.call_seed, p.record FROM image_provenance p JOIN "
                      "images i ON i.id = p.image_id ORDER BY i.key")
    assert rows(merged, provenance_sql) == rows(single, provenance_sql)
    assert len(rows(merged, provenance_sql)) == IMAGES

    a = json.loads(deltann.run("compare", "--db", merged, "--json").stdout)
    b = json.loads(deltann.run("compare", "--db", single, "--json").stdout)
    assert comparable(a, merged, single) == comparable(b, merged, single)


def test_edited_plan_and_foreign_results_are_refused(deltann, tmp_path, demo):
    listing = image_list(demo, tmp_path)
    plan = tmp_path / "plan"
    deltann.run("plan", *campaign_args(demo, listing), "--shard-images", 3, "--out", plan,
                timeout=300)
    edited = tmp_path / "edited"
    shutil.copytree(plan, edited)
    shard = edited / "shards" / "0001.json"
    manifest = json.loads(shard.read_text())
    manifest["variants"] = manifest["variants"][:1]  # one variant fewer: a different campaign
    shard.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    r = deltann.run("run", "--plan", edited, "--shard", 1, expect_rc=1)
    assert "shards/0001.json was changed after planning" in r.stderr, r.describe()
    assert not (edited / "results" / "shard-0001.db").exists()

    # An image changed since planning: the shard refuses, and its state says why.
    images = tmp_path / "images"
    images.mkdir()
    sources = sorted((demo / "images").glob("*.jpg"))[:2]
    for source in sources:
        shutil.copy(source, images / source.name)
    changed = tmp_path / "changed"
    deltann.run("plan", "--model", demo / "efficientnet-lite0.onnx", "--images", images,
                *TIMING, "--env", ENVS[0], "--out", changed, timeout=300)
    shutil.copy(sources[1], images / sources[0].name)
    r = deltann.run("run", "--plan", changed, "--shard", 0, expect_rc=1)
    assert "changed since planning" in r.stderr, r.describe()
    r = deltann.run("status", changed, expect_rc=3)
    assert "shard 0 [cpu] failed" in r.stdout and "changed since planning" in r.stdout, r.describe()

    r = deltann.run("run", "--plan", plan, "--shard", 7, expect_rc=1)
    assert "shard 7" in r.stderr and "0-1" in r.stderr, r.describe()
    r = deltann.run("run", "--plan", plan, "--model", demo / "efficientnet-lite0.onnx",
                    "--shard", 0, expect_rc=1)
    assert "takes the campaign from the plan folder: --model" in r.stderr, r.describe()
    r = deltann.run("run", "--plan", plan, "--repeat", 9, "--shard", 0, expect_rc=1)
    assert "--repeat cannot be given with it" in r.stderr, r.describe()


def test_a_result_of_another_plan_is_foreign_not_done(deltann, models, test_workers, tmp_path):
    """A shard database copied from another plan's folder is no result of this plan: status calls
    it foreign with its path (not done), and submit refuses to queue anything, naming it."""
    write_random_images(tmp_path / "images", [(8, 8)] * 2, seed=3)
    env = {"DELTANN_WORKER_DIR": str(test_workers)}
    plans = {}
    for name, variant in [("a", "testing:threads=1"), ("b", "testing:threads=2")]:
        plans[name] = tmp_path / name
        deltann.run("plan", "--model", models.tiny, "--images", tmp_path / "images", *TIMING,
                    "--env", variant, "--out", plans[name], env=env)
    deltann.run("run", "--plan", plans["b"], "--shard", 0, "--quiet", env=env)
    foreign = plans["a"] / "results" / "shard-0000.db"
    foreign.parent.mkdir(exist_ok=True)
    shutil.copy(plans["b"] / "results" / "shard-0000.db", foreign)
    hash_b = json.loads((plans["b"] / "plan.json").read_text())["plan_hash"]

    r = deltann.run("status", plans["a"], expect_rc=3)
    assert f"foreign: {foreign} belongs to another plan (plan_hash {hash_b}" in r.stdout, \
        r.describe()
    assert "0 done" in r.stdout and "1 foreign" in r.stdout, r.describe()
    r = deltann.run("submit", "--slurm", "--dry-run", plans["a"], expect_rc=1)
    assert "nothing was submitted" in r.stderr and str(foreign) in r.stderr, r.describe()
