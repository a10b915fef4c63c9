"""--jobs N on the demo model and photos (docs/ANALYSIS.md, "Concurrent outputs, serial timing"):
the images outside the timing sample run N variants at a time, and the timed images then run one
at a time, the variants taking turns image by image. The outputs equal those of --jobs 1 bit for
bit, and no timed run happened while another job ran: the events put every timed result after the
timing phase began, which is after every job of the outputs phase ended.

The interleaved timing (docs/ANALYSIS.md, "Interleaved timing") is checked with the test-only
engine too: the order of the result events, and a crash of one variant in the middle of it."""
import json
import os

import pytest

from deltann_testlib import (failures_of, int64s, query, results_of, variants_by_env, worker_path,
                             write_random_images)

ENVS = ["ort:opt=all,device=cpu,threads=1", "opencv:opt=on,device=cpu,threads=1"]
TIMED = 3
REPEAT = 2


@pytest.fixture(scope="module")
def demo(demo_folder):
    worker_path("ort", "the ONNX Runtime SDK was not found at configure time")
    worker_path("opencv", "OpenCV's DNN module was not found at configure time")
    return demo_folder


def campaign(deltann, demo, db, *extra, expect_rc=0):
    args = ["run", "--model", demo / "efficientnet-lite0.onnx", "--images", demo / "images.txt",
            "--db", db, "--timing-images", TIMED, "--repeat", REPEAT, "--warmup", 1, "--quiet",
            *extra]
    for env in ENVS:
        args += ["--env", env]
    return deltann.run(*args, timeout=300, expect_rc=expect_rc)


def stored(db):
    """{(variant env, image key): result row} of every stored result."""
    rows = query(db, "SELECT v.env, i.key, r.* FROM results r"
                     " JOIN variants v ON v.id = r.variant_id JOIN images i ON i.id = r.image_id")
    return {(row["env"], row["key"]): row for row in rows}


def test_outputs_equal_one_job_and_no_timed_run_is_concurrent(deltann, demo, tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("--jobs 2 needs two cores")
    serial_db, parallel_db, events = tmp_path / "one.db", tmp_path / "two.db", tmp_path / "ev.jsonl"
    campaign(deltann, demo, serial_db)
    r = campaign(deltann, demo, parallel_db, "--jobs", 2, "--events", events)
    assert "outputs phase: 2 variants at a time" in r.stderr, r.describe()

    one, two = stored(serial_db), stored(parallel_db)
    images = query(parallel_db, "SELECT key, timed FROM images WHERE status = 'ok'")
    assert len(images) >= TIMED + 2, images
    assert set(one) == set(two) == {(env, i["key"]) for env in ENVS for i in images}
    for key, row in two.items():
        # The same engine on the same tensor: outputs bit for bit, whatever ran beside it.
        assert row["output"] is not None and row["output"] == one[key]["output"], key
        assert row["top_ids"] == one[key]["top_ids"], key
    timed_keys = {i["key"] for i in images if i["timed"]}
    assert len(timed_keys) == TIMED
    for (env, key), row in two.items():
        assert len(int64s(row["samples_ns"])) == (REPEAT if key in timed_keys else 0), (env, key)
    # Load and first-inference times come from the timing phase, measured alone.
    for v in query(parallel_db, "SELECT env, status, load_ns, first_ns FROM variants"):
        assert v["status"] == "done" and v["load_ns"] and v["first_ns"], v

    log = [json.loads(line) for line in events.read_text().splitlines()]
    phases = [(n, e) for n, e in enumerate(log) if e["event"] == "phase"]
    assert [(e["phase"], e["jobs"]) for _, e in phases] == [("outputs", 2), ("timing", 1)], phases
    timing_starts = phases[1][0]
    results = [(n, e) for n, e in enumerate(log) if e["event"] == "result"]
    assert len(results) == len(two)
    for n, e in results:
        # Timed results only in the timing phase, untimed ones only in the outputs phase.
        assert e["timed"] == (n > timing_starts), e
        assert e["timed"] == (e["image"] in timed_keys), e
    # In the timing phase the variants take turns image by image, the first of each turn
    # rotating.
    turns = [(e["variant"], e["image"]) for n, e in results if n > timing_starts]
    assert_interleaved(turns, len(ENVS))
    ends = [e for e in log if e["event"] == "variant_end"]
    assert sorted(e["variant"] for e in ends) == sorted(ENVS) and all(
        e["status"] == "done" for e in ends), ends


def assert_interleaved(turns, variants):
    """`turns`, the (variant, image) of the timed results in event order, are rounds of one image
    each: every variant runs it in turn, and the variant that goes first rotates."""
    assert len(turns) % variants == 0, turns
    rounds = [turns[i:i + variants] for i in range(0, len(turns), variants)]
    order = [v for v, _ in rounds[0]]
    assert len(set(order)) == variants, rounds[0]
    for n, turn in enumerate(rounds):
        assert len({image for _, image in turn}) == 1, turn
        assert [v for v, _ in turn] == order[n % variants:] + order[:n % variants], (n, rounds)


def run_testing(deltann, models, test_workers, tmp_path, envs, *extra, images=5, timed=4):
    write_random_images(tmp_path / "images", [(8, 8)] * images, seed=11)
    db, events = tmp_path / "t.db", tmp_path / "events.jsonl"
    args = ["run", "--model", models.tiny, "--images", tmp_path / "images", "--db", db,
            "--timing-images", timed, "--repeat", REPEAT, "--warmup", 1, "--quiet",
            "--events", events, *extra]
    for env in envs:
        args += ["--env", env]
    r = deltann.run(*args, env={"DELTANN_WORKER_DIR": str(test_workers)}, timeout=120)
    log = [json.loads(line) for line in events.read_text().splitlines()]
    return r, db, log


def test_one_job_times_the_variants_in_turns_after_loading_each(deltann, models, test_workers,
                                                                 tmp_path):
    """--jobs 1: every worker is loaded (alone, one after another) before the first timed result;
    then the timed images run in rounds; each variant's untimed images follow in its worker."""
    envs = ["testing:threads=1", "testing:threads=2", "testing:threads=3"]
    r, db, log = run_testing(deltann, models, test_workers, tmp_path, envs)
    assert r.returncode == 0, r.describe()
    results = [(n, e) for n, e in enumerate(log) if e["event"] == "result"]
    timed = [(n, e) for n, e in results if e["timed"]]
    assert len(timed) == 4 * len(envs) and len(results) == 5 * len(envs), results
    loads = [n for n, e in enumerate(log) if e["event"] == "worker_loaded"]
    assert len(loads) == len(envs) and max(loads) < timed[0][0], log
    assert_interleaved([(e["variant"], e["image"]) for _, e in timed], len(envs))
    # The timed results all come before the untimed ones, which go variant by variant.
    assert max(n for n, _ in timed) < min(n for n, e in results if not e["timed"])
    for v in variants_by_env(db).values():
        assert v["status"] == "done" and v["load_ns"] and v["first_ns"], dict(v)
        for row in results_of(db, v["id"]).values():
            assert len(int64s(row["samples_ns"])) in (0, REPEAT), dict(row)


def test_a_crash_in_the_interleaved_timing_costs_only_its_variant(deltann, models, test_workers,
                                                                  tmp_path):
    """A worker that dies in its turn is recorded and restarted at its next turn; one that
    aborts at every first inference is given up after three in a row. The healthy variant beside
    them gets every timed result, and the rounds go on without the one given up."""
    envs = ["testing:fault=segv,at=run,after=2", "testing:fault=abort,at=first",
            "testing:threads=2"]
    r, db, log = run_testing(deltann, models, test_workers, tmp_path, envs, images=5, timed=5)
    assert r.returncode == 0, r.describe()
    variants = variants_by_env(db)
    segv = next(v for env, v in variants.items() if "fault=segv" in env)
    abort = next(v for env, v in variants.items() if "fault=abort" in env)
    healthy = next(v for env, v in variants.items() if "fault=none" in env)
    assert healthy["status"] == "done", dict(healthy)
    rows = results_of(db, healthy["id"])
    assert len(rows) == 5 and all(len(int64s(r["samples_ns"])) == REPEAT for r in rows.values())
    # Each worker of the crashing variant dies at its 2nd image: images 2 and 4 fail.
    crashes = failures_of(db, segv["id"])
    assert [f["symptom"] for f in crashes] == ["crash", "crash"], [dict(f) for f in crashes]
    assert len(results_of(db, segv["id"])) == 3 and segv["status"] == "done"
    assert abort["status"] == "failed" and not results_of(db, abort["id"])
    assert [f["symptom"] for f in failures_of(db, abort["id"])] == ["abort"] * 3
    # The rounds went on after the abandonment: the healthy variant's last results come after
    # the abort variant ended.
    events = [(e["event"], e.get("variant")) for e in log]
    ended = events.index(("variant_end", abort["env"]))
    assert sum(1 for e in events[ended:] if e == ("result", healthy["env"])) >= 2, log


def test_more_jobs_than_cores_is_refused(deltann, demo, tmp_path):
    cores = len(os.sched_getaffinity(0))
    db = tmp_path / "c.db"
    r = campaign(deltann, demo, db, "--jobs", cores + 1, expect_rc=1)
    assert f"--jobs {cores + 1}" in r.stderr and f"{cores} cores" in r.stderr, r.describe()
    assert not db.exists(), "a refused run must not create its database"


def test_a_crashing_variant_beside_a_healthy_one_loses_nothing(deltann, models, test_workers,
                                                              tmp_path):
    """Concurrent jobs keep the campaign's promise: a worker that dies in the outputs phase is
    recorded with its image and restarted, the job beside it runs on, and every result is
    stored."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("--jobs 2 needs two cores")
    write_random_images(tmp_path / "images", [(8, 8)] * 6, seed=5)
    db = tmp_path / "c.db"
    args = ["run", "--model", models.tiny, "--images", tmp_path / "images", "--db", db,
            "--timing-images", 2, "--repeat", 1, "--warmup", 0, "--jobs", 2, "--quiet",
            "--env", "testing:fault=segv,at=run,after=2", "--env", "testing:threads=2"]
    r = deltann.run(*args, env={"DELTANN_WORKER_DIR": str(test_workers)}, timeout=120)
    variants = {v["env"]: v for v in query(db, "SELECT * FROM variants")}
    crashing = next(v for env, v in variants.items() if "fault=segv" in env)
    healthy = next(v for env, v in variants.items() if "fault=none" in env)
    assert healthy["status"] == "done", r.describe()
    assert query(db, "SELECT count(*) AS n FROM results WHERE variant_id = ?",
                 (healthy["id"],))[0]["n"] == 6
    # Each worker process crashes on its 2nd image; the images that fail are recorded by name.
    crashes = query(db, "SELECT image_id, symptom FROM failures WHERE variant_id = ?",
                    (crashing["id"],))
    assert crashes and all(c["symptom"] == "crash" and c["image_id"] for c in crashes), crashes
    got = query(db, "SELECT count(*) AS n FROM results WHERE variant_id = ?",
                (crashing["id"],))[0]["n"]
    assert got + len(crashes) == 6, (got, crashes)
