"""Worker failures with the test-only engine (src/backends/testing): crashes, aborts, hangs, exits
and engine errors are recorded with the right stage and symptom, a dead worker is restarted for
the remaining images, and one bad variant never stops the campaign.

The testing engine counts images per worker process: with at=run,after=2 the 2nd image of each
process fails. A worker that dies on image 2 is restarted for image 3 (its 1st), so image 4 (its
2nd) fails again; a worker that only reports an error stays alive, so only image 2 fails.
"""
import json

import pytest

from deltann_testlib import (Deltann, failures_of, images_by_key, results_of, variants_by_env,
                             write_random_images)

TIMEOUT_S = 3
ENVS = {
    # short name -> environment string as given
    "segv_load": "testing:fault=segv,at=load",
    "abort_first": "testing:fault=abort,at=first",
    "hang_run": "testing:fault=hang,at=run,after=2",
    "exit_run": "testing:fault=exit,at=run,after=2",
    "error_run": "testing:fault=error,at=run,after=2",
    "healthy": "testing",
}


def canonical(env):
    """The stored form: common knobs first, then the engine's own knobs by name, all explicit."""
    knobs = {"opt": "none", "device": "cpu", "threads": "1", "after": "2", "at": "run",
             "fault": "none"}
    if ":" in env:
        knobs.update(pair.split("=") for pair in env.split(":", 1)[1].split(","))
    order = ["opt", "device", "threads", "after", "at", "fault"]
    return "testing:" + ",".join(f"{k}={knobs[k]}" for k in order)


@pytest.fixture(scope="module")
def campaign(models, deltann_bin, test_workers, tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    (work / "cache").mkdir()
    deltann = Deltann(deltann_bin, work / "cache")
    write_random_images(work / "images", [(8, 8)] * 4, seed=7)
    db = work / "faults.db"
    args = ["run", "--model", models.tiny, "--images", work / "images", "--db", db,
            "--timeout", TIMEOUT_S, "--repeat", 1, "--warmup", 0, "--events", work / "events.jsonl"]
    for env in ENVS.values():
        args += ["--env", env]
    # The folder holds only deltann-worker-testing.
    run = deltann.run(*args, env={"DELTANN_WORKER_DIR": str(test_workers)}, timeout=120)
    variants = variants_by_env(db)
    by_name = {name: variants[canonical(env)] for name, env in ENVS.items()}
    image_ids = [row["id"] for row in images_by_key(db).values()]  # keys sort as img_01..img_04
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    return {"db": db, "run": run, "variants": by_name, "images": image_ids, "events": events}


def failures(campaign, name):
    return failures_of(campaign["db"], campaign["variants"][name]["id"])


def result_images(campaign, name):
    return sorted(results_of(campaign["db"], campaign["variants"][name]["id"]))


def image_numbers(campaign, ids):
    """1-based positions of image ids in the dataset."""
    return [campaign["images"].index(i) + 1 for i in ids]


def test_campaign_survives_and_hangs_are_cut_short(campaign):
    run = campaign["run"]
    assert run.returncode == 0
    assert len(campaign["images"]) == 4
    assert sorted(v["env"] for v in campaign["variants"].values()) == sorted(
        canonical(e) for e in ENVS.values())
    # Two hangs at 3 s each; without hang detection this would take the default 120 s per hang.
    assert run.seconds < 30, f"took {run.seconds:.1f} s"


def test_segv_at_load(campaign):
    (f,) = failures(campaign, "segv_load")
    assert (f["stage"], f["symptom"], f["image_id"]) == ("load", "crash", None)
    assert "SIGSEGV" in f["message"]
    assert campaign["variants"]["segv_load"]["status"] == "failed"
    assert result_images(campaign, "segv_load") == []


def test_abort_at_first_inference(campaign):
    rows = failures(campaign, "abort_first")
    assert rows, "the abort must be recorded"
    for f in rows:
        assert (f["stage"], f["symptom"]) == ("first_inference", "abort"), dict(f)
        assert "SIGABRT" in f["message"]
    numbers = image_numbers(campaign, [f["image_id"] for f in rows])
    # Every restarted worker aborts again on its first image; the variant is abandoned after a
    # few failures in a row rather than trying every image.
    assert numbers[0] == 1 and numbers == sorted(numbers) and len(numbers) < 4, numbers
    assert campaign["variants"]["abort_first"]["status"] == "failed"
    assert result_images(campaign, "abort_first") == []


@pytest.mark.parametrize("name, symptom, message", [
    ("hang_run", "hang", "timeout"),
    ("exit_run", "exit", "exit code 3"),
])
def test_worker_death_during_run_is_restarted(campaign, name, symptom, message):
    rows = failures(campaign, name)
    assert [(f["stage"], f["symptom"]) for f in rows] == [("run", symptom)] * 2, \
        [dict(f) for f in rows]
    for f in rows:
        assert message in f["message"], f["message"]
    assert image_numbers(campaign, [f["image_id"] for f in rows]) == [2, 4]
    # Image 3 ran in a fresh worker after the death on image 2.
    assert image_numbers(campaign, result_images(campaign, name)) == [1, 3]
    assert campaign["variants"][name]["status"] == "done"


def test_engine_error_keeps_the_worker(campaign):
    (f,) = failures(campaign, "error_run")
    assert (f["stage"], f["symptom"]) == ("run", "error")
    assert "injected engine error" in f["message"]
    assert image_numbers(campaign, [f["image_id"]]) == [2]
    assert image_numbers(campaign, result_images(campaign, "error_run")) == [1, 3, 4]
    assert campaign["variants"]["error_run"]["status"] == "done"


def test_healthy_variant_has_every_image(campaign):
    assert failures(campaign, "healthy") == []
    assert image_numbers(campaign, result_images(campaign, "healthy")) == [1, 2, 3, 4]
    assert campaign["variants"]["healthy"]["status"] == "done"


def test_failures_are_reported_on_stderr(campaign):
    stderr = campaign["run"].stderr
    expected = {"segv_load": "load failed (crash)",
                "abort_first": "first_inference failed (abort)",
                "hang_run": "run failed (hang)",
                "exit_run": "run failed (exit)",
                "error_run": "run failed (error)"}
    for name, what in expected.items():
        assert f"{canonical(ENVS[name])}: {what}" in stderr, (name, stderr)
    assert "2 failed" in stderr, stderr


def test_event_log_tells_every_recorded_failure_and_result(campaign):
    """`run --events` writes the campaign's typed events: one per failure and result stored."""
    events = campaign["events"]
    assert events[0]["event"] == "plan" and events[0]["variants"] == len(ENVS), events[0]
    for name, env in ENVS.items():
        variant = canonical(env)
        mine = [e for e in events if e.get("variant") == variant]
        start = {k: v for k, v in mine[0].items() if k != "t"}  # every event carries its time
        assert start == {"event": "variant_start", "variant": variant, "images": 4}, mine
        assert mine[-1]["event"] == "variant_end", mine
        assert len([e for e in mine if e["event"] == "failure"]) == len(failures(campaign, name))
        assert len([e for e in mine if e["event"] == "result"]) == len(result_images(campaign, name))
