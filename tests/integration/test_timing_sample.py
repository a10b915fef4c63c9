"""Two phases in a campaign: every distinct image runs once for its outputs, and only the timing
sample (--timing-images K, chosen by content hash and kept in the database) is timed with warm-up
and repeats. A duplicate image (the same content under two paths, the same path twice in a list)
runs once and is recorded as the duplicate of its first copy."""
import json
import shutil

from deltann_testlib import int64s, query, sha256_file, write_random_images

ENVS = ["testing:threads=1", "testing:threads=2"]
IMAGES = 5
REPEAT = 3


def campaign(deltann, model, workers, images, db, *extra, expect_rc=0):
    args = ["run", "--model", model, "--images", images, "--db", db, "--repeat", REPEAT,
            "--warmup", 1, "--json", *extra]
    for env in ENVS:
        args += ["--env", env]
    return deltann.run(*args, env={"DELTANN_WORKER_DIR": str(workers)}, timeout=120,
                       expect_rc=expect_rc)


def test_only_the_sample_is_timed_and_every_image_has_outputs(deltann, models, test_workers,
                                                              tmp_path):
    paths = write_random_images(tmp_path / "images", [(8, 8)] * IMAGES, seed=11)
    db = tmp_path / "c.db"
    r = campaign(deltann, models.tiny, test_workers, tmp_path / "images", db,
                 "--timing-images", 2)
    assert "2 of 5 images are timed" in r.stderr, r.describe()
    assert "2 images timed" in r.stderr, r.describe()

    # The sample is in the database: the two images with the smallest content hashes.
    images = query(db, "SELECT id, key, sha256, timed FROM images ORDER BY id")
    assert len(images) == IMAGES
    by_hash = sorted(images, key=lambda i: i["sha256"])
    assert {i["id"] for i in images if i["timed"]} == {i["id"] for i in by_hash[:2]}
    assert {i["sha256"] for i in images} == {sha256_file(p) for p in paths}
    timing = query(db, "SELECT value FROM meta WHERE key = 'timing'")[0]["value"]
    assert timing == f"warmup=1, repeat={REPEAT}, timing_images=2"

    timed_ids = {i["id"] for i in images if i["timed"]}
    variants = query(db, "SELECT id, env FROM variants")
    assert len(variants) == len(ENVS)
    for v in variants:
        rows = query(db, "SELECT image_id, samples_ns, top_ids FROM results WHERE variant_id = ?",
                     (v["id"],))
        # Outputs for every image; timing rows (REPEAT samples) for exactly the two sampled ones.
        assert len(rows) == IMAGES, v["env"]
        assert all(json.loads(row["top_ids"]) for row in rows)
        timed = {row["image_id"] for row in rows if len(int64s(row["samples_ns"])) == REPEAT}
        untimed = [row for row in rows if row["image_id"] not in timed_ids]
        assert timed == timed_ids, v["env"]
        assert all(len(int64s(row["samples_ns"])) == 0 for row in untimed), v["env"]

    # The comparison's timing comes from the sample, and says how large it is.
    summary = json.loads(r.stdout)
    for v in summary["variants"]:
        assert v["images"] == IMAGES and v["timed_images"] == 2, v
        assert v["samples"] == 2 * REPEAT, v
    text = deltann.run("compare", "--db", db).stdout
    assert "timed images" in text, text


def test_resuming_with_another_sample_size_is_refused(deltann, models, test_workers, tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)] * IMAGES, seed=12)
    db = tmp_path / "c.db"
    campaign(deltann, models.tiny, test_workers, tmp_path / "images", db, "--timing-images", 2)
    before = query(db, "SELECT count(*) AS n FROM results")[0]["n"]
    r = campaign(deltann, models.tiny, test_workers, tmp_path / "images", db,
                 "--timing-images", 3, expect_rc=1)
    assert "timing_images=2" in r.stderr and "--timing-images" in r.stderr, r.describe()
    assert query(db, "SELECT count(*) AS n FROM results")[0]["n"] == before
    assert sum(i["timed"] for i in query(db, "SELECT timed FROM images")) == 2
    # The same size resumes; nothing is left to do.
    again = campaign(deltann, models.tiny, test_workers, tmp_path / "images", db,
                     "--timing-images", 2)
    assert "0 results written" in again.stderr, again.describe()


def test_a_bad_sample_size_is_refused(deltann, models, test_workers, tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)], seed=13)
    r = campaign(deltann, models.tiny, test_workers, tmp_path / "images", tmp_path / "c.db",
                 "--timing-images", "some", expect_rc=None)
    assert r.returncode != 0
    assert "--timing-images takes a number of images (0 or more) or 'all', not 'some'" in r.stderr


def test_a_duplicate_image_runs_once(deltann, models, test_workers, tmp_path):
    first, second = write_random_images(tmp_path / "images", [(8, 8)] * 2, seed=14)
    shutil.copyfile(first, tmp_path / "images" / "copy_of_first.png")
    listing = tmp_path / "images" / "list.txt"
    listing.write_text(f"{first.name}\n{second.name}\n{first.name}\ncopy_of_first.png\n")
    db = tmp_path / "c.db"
    r = campaign(deltann, models.tiny, test_workers, listing, db)
    assert "2 duplicate entries run once" in r.stderr, r.describe()
    assert "copy_of_first.png: same content as img_01.png" in r.stderr, r.describe()

    images = {i["key"]: i for i in query(db, "SELECT * FROM images")}
    assert len(images) == 4
    first_id = images["img_01.png"]["id"]
    for key in ("img_01.png (line 3)", "copy_of_first.png"):
        assert images[key]["status"] == "duplicate", images[key]
        assert images[key]["duplicate_of"] == first_id, images[key]
    assert images["img_01.png (line 3)"]["message"] == "duplicate of line 1 (img_01.png)"
    assert images["copy_of_first.png"]["message"].startswith("same content as img_01.png")
    # Each distinct image ran once per variant: two results each, none for a duplicate.
    for v in query(db, "SELECT id FROM variants"):
        ran = query(db, "SELECT image_id FROM results WHERE variant_id = ? ORDER BY image_id",
                    (v["id"],))
        assert [row["image_id"] for row in ran] == sorted(
            [first_id, images["img_02.png"]["id"]])
