"""--jobs N on the demo model and photos (docs/ANALYSIS.md, "Concurrent outputs, serial timing"):
the images outside the timing sample run N variants at a time, and the timed images then run one
variant at a time. The outputs equal those of --jobs 1 bit for bit, and no timed run happened
while another job ran: the events put every timed result after the timing phase began, which is
after every job of the outputs phase ended."""
import json
import os

import pytest

from deltann_testlib import int64s, query, worker_path, write_random_images

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
    # In the timing phase the variants take turns: one variant's timed results, then the other's.
    order = [e["variant"] for n, e in results if n > timing_starts]
    assert order == sorted(order, key=order.index) and len(set(order)) == len(ENVS), order
    ends = [e for e in log if e["event"] == "variant_end"]
    assert sorted(e["variant"] for e in ends) == sorted(ENVS) and all(
        e["status"] == "done" for e in ends), ends


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
