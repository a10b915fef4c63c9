"""Resume after a kill: deltann is SIGKILLed partway through a campaign, the same command is run
again and completes it without storing any (variant, image) twice and without redoing what was
committed before the kill; a further re-run finds nothing to do."""
import os
import re
import signal
import time

import pytest

from deltann_testlib import query, results_checksum, variants_by_env, write_random_images

ENVS = ["ort:opt=disable,threads=1", "ort:opt=all,threads=1", "opencv:opt=on,threads=1"]
IMAGES = 70      # more than one 64-row batch, so a variant can be killed half committed
# Enough timed repetitions of the tiny model (a few microseconds each) that the campaign takes
# a few seconds, leaving time to kill it in the middle.
REPEAT = 4000


def committed_rows(db):
    """{(variant_id, image_id): samples_ns} of what is in the results table now. The timing
    samples differ on every run, so an unchanged blob means the result was not redone."""
    if not db.exists():
        return {}
    try:
        rows = query(db, "SELECT variant_id, image_id, samples_ns FROM results")
    except Exception:  # the table may not exist yet
        return {}
    return {(r["variant_id"], r["image_id"]): r["samples_ns"] for r in rows}


def kill_when_partly_done(proc, db, minimum_rows, deadline_s=60):
    """Polls the database until at least `minimum_rows` results are committed, then SIGKILLs the
    deltann process (only it, as the OOM killer would). Returns the rows seen just after."""
    start = time.monotonic()
    try:
        while time.monotonic() - start < deadline_s:
            if proc.poll() is not None:
                pytest.fail(f"deltann finished (exit {proc.returncode}) before it could be killed; "
                            f"raise REPEAT")
            if len(committed_rows(db)) >= minimum_rows:
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"no {minimum_rows} results committed within {deadline_s} s")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        # The worker's guard ends it once deltann is gone (test_kill_cleanup.py checks that);
        # this only keeps a failed test from leaving deltann itself running.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    return committed_rows(db)


def test_resume_after_sigkill(models, deltann, tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)] * IMAGES, seed=99)
    db = tmp_path / "resume.db"
    args = ["run", "--model", models.tiny, "--images", tmp_path / "images", "--db", db,
            "--repeat", REPEAT, "--warmup", 0, "--timing-images", "all", "--quiet"]
    for env in ENVS:
        args += ["--env", env]

    proc = deltann.start(*args, cwd=tmp_path)
    before = kill_when_partly_done(proc, db, minimum_rows=64)
    total = len(ENVS) * IMAGES
    assert 64 <= len(before) < total, f"{len(before)} of {total} results at the kill"
    statuses = {v["env"]: v["status"] for v in variants_by_env(db).values()}
    assert any(s != "done" for s in statuses.values()), statuses
    print(f"killed with {len(before)} of {total} results committed; variants: {statuses}")

    # Resume: the same command completes the campaign.
    resumed = deltann.run(*args)
    variants = variants_by_env(db)
    assert len(variants) == len(ENVS)
    image_ids = [r["id"] for r in query(db, "SELECT id FROM images ORDER BY id")]
    assert len(image_ids) == IMAGES, "images are not duplicated either"
    for env, variant in variants.items():
        assert variant["status"] == "done", env
        rows = query(db, "SELECT image_id FROM results WHERE variant_id = ? ORDER BY image_id",
                     (variant["id"],))
        assert [r["image_id"] for r in rows] == image_ids, f"{env} lacks or repeats images"
    duplicates = query(db, "SELECT variant_id, image_id, COUNT(*) AS n FROM results "
                           "GROUP BY variant_id, image_id HAVING n > 1")
    assert duplicates == []
    assert query(db, "SELECT COUNT(*) AS n FROM failures")[0]["n"] == 0
    after = committed_rows(db)
    assert len(after) == total
    # What was committed before the kill was kept, not run again.
    changed = [key for key, samples in before.items() if after[key] != samples]
    assert changed == [], f"{len(changed)} results committed before the kill were redone"
    # The resumed run ran exactly the images that had no committed result.
    ran = [int(n) for n in
           re.findall(r"^running \S+ on (\d+) images$", resumed.stderr, re.MULTILINE)]
    assert sum(ran) == total - len(before), resumed.stderr
    count, checksum = results_checksum(db)
    assert count == total

    # A second re-run has nothing left to do: nothing written, nothing run, and quickly.
    again = deltann.run(*args, timeout=60)
    assert "0 variants run, 0 failed, 3 skipped or already complete" in again.stderr, again.stderr
    assert "running " not in again.stderr, again.stderr
    assert results_checksum(db) == (count, checksum)
    assert again.seconds < 10, f"a no-op re-run took {again.seconds:.1f} s"
