"""Bad input: unusable images are recorded and skipped without stopping the run, unusual but valid
images are converted with a note, and bad models, engines and knob values give messages that
say what is wrong and what would be right."""
import io
import json
import os
import re
import struct
import zlib

import numpy as np
import pytest

from deltann_testlib import (Deltann, failures_of, images_by_key, query, results_of,
                             variants_by_env, write_random_images)


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_bad_dataset(folder):
    """Good images plus every kind of bad or odd file the issue lists. Returns
    {file name: expected message fragment} for the unusable ones and
    {file name: expected note fragment} for the odd but usable ones."""
    from PIL import Image

    rs = np.random.RandomState(2024)
    write_random_images(folder, [(8, 8), (12, 9)], seed=5, prefix="good")
    Image.fromarray(rs.randint(0, 256, (10, 10, 3), dtype=np.uint8)).save(
        folder / "good_03.jpg", quality=95)

    buffer = io.BytesIO()
    Image.fromarray(rs.randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "not_an_image.jpg").write_text("this is a text file, not a JPEG\n")
    (folder / "empty.png").write_bytes(b"")
    # A valid PNG structure whose header claims 40000x40000 RGB pixels (a decompression bomb).
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    (folder / "huge_header.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 120)) + png_chunk(b"IEND", b""))

    Image.fromarray(rs.randint(0, 256, (9, 9), dtype=np.uint8), "L").save(folder / "gray.png")
    deep = Image.fromarray(rs.randint(0, 65536, (9, 9)).astype(np.uint16))
    assert deep.mode.startswith("I"), deep.mode
    deep.save(folder / "deep16.png")
    with open(folder / "deep16.png", "rb") as f:
        assert f.read(25)[24] == 16, "PIL must write a 16-bit PNG"
    Image.fromarray(rs.randint(0, 256, (9, 9, 4), dtype=np.uint8), "RGBA").save(
        folder / "rgba.png")

    unusable = {
        "truncated.jpg": "truncated",
        "not_an_image.jpg": "not an image",
        "empty.png": "empty",
        "huge_header.png": "40000x40000 pixels, above the limit",
    }
    odd = {
        "gray.png": "grayscale",
        "deep16.png": "16-bit",
        "rgba.png": "alpha channel dropped",
    }
    return unusable, odd


@pytest.fixture(scope="module")
def bad_images_run(models, deltann_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("bad_images")
    (work / "cache").mkdir()
    deltann = Deltann(deltann_bin, work / "cache")
    folder = work / "images"
    folder.mkdir()
    unusable, odd = write_bad_dataset(folder)
    db = work / "bad.db"
    run = deltann.run("run", "--model", models.tiny, "--images", folder, "--db", db,
                      "--env", "ort:opt=all,threads=1", "--env", "opencv:opt=on,threads=1",
                      "--repeat", 1, "--warmup", 0)
    return {"db": db, "run": run, "folder": folder, "unusable": unusable, "odd": odd}


def test_bad_images_do_not_stop_the_run(bad_images_run):
    run = bad_images_run["run"]
    assert run.returncode == 0
    assert "6 images ready, 4 unusable" in run.stderr, run.stderr


def test_unusable_images_are_recorded_with_the_reason(bad_images_run):
    images = images_by_key(bad_images_run["db"])
    folder = bad_images_run["folder"]
    for name, reason in bad_images_run["unusable"].items():
        row = images[name]
        assert row["status"] == "error", name
        assert str(folder / name) in row["message"], row["message"]
        assert reason in row["message"], row["message"]
        # ... and stderr names the file too.
        lines = [line for line in bad_images_run["run"].stderr.splitlines() if name in line]
        assert lines and reason in lines[0], (name, bad_images_run["run"].stderr)


def test_good_and_converted_images_have_results(bad_images_run):
    db = bad_images_run["db"]
    images = images_by_key(db)
    usable = {"good_01.png", "good_02.png", "good_03.jpg", *bad_images_run["odd"]}
    assert set(images) == usable | set(bad_images_run["unusable"])
    for name, note in bad_images_run["odd"].items():
        assert images[name]["status"] == "ok", images[name]["message"]
        assert note in images[name]["message"], images[name]["message"]
        assert f"note: {name}: " in bad_images_run["run"].stderr
    for name in ("good_01.png", "good_02.png", "good_03.jpg"):
        assert images[name]["status"] == "ok" and images[name]["message"] == "", name
    usable_ids = {images[name]["id"] for name in usable}
    for env, variant in variants_by_env(db).items():
        assert variant["status"] == "done", env
        assert set(results_of(db, variant["id"])) == usable_ids, env
        assert failures_of(db, variant["id"]) == [], env


def test_missing_model_stops_with_its_name(models, deltann, tmp_path):
    missing = tmp_path / "no_such_model.onnx"
    write_random_images(tmp_path / "images", [(8, 8)], seed=1)
    db = tmp_path / "missing.db"
    run = deltann.run("run", "--model", missing, "--images", tmp_path / "images", "--db", db,
                      "--env", "ort", expect_rc=None)
    assert run.returncode != 0, run.describe()
    assert str(missing) in run.stderr, run.stderr
    assert "does not exist" in run.stderr, run.stderr
    assert not db.exists(), "nothing is started for a campaign that cannot run"


def test_model_not_matching_its_spec_fails_at_load(models, deltann, tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)] * 3, seed=2)
    db = tmp_path / "shape.db"
    run = deltann.run("run", "--model", models.wrong_shape, "--images", tmp_path / "images",
                      "--db", db, "--env", "ort:opt=all,threads=1",
                      "--env", "opencv:opt=on,threads=1", "--repeat", 1, "--warmup", 0,
                      expect_rc=3)  # no variant produced a result
    assert "no variant produced a result" in run.stderr
    variants = variants_by_env(db)
    ort = variants["ort:opt=all,device=cpu,threads=1"]
    assert ort["status"] == "failed"
    (failure,) = failures_of(db, ort["id"])
    assert (failure["stage"], failure["image_id"]) == ("load", None)
    assert "[1,3,16,16]" in failure["message"] and "[1,3,8,8]" in failure["message"], \
        failure["message"]
    assert results_of(db, ort["id"]) == {}
    assert "[1,3,16,16]" in run.stderr
    # OpenCV DNN would run any input size through the model (its net reshapes itself to the
    # blob); it must fail at load like ONNX Runtime, not record results for the wrong input.
    opencv = variants["opencv:opt=on,device=cpu,threads=1"]
    assert opencv["status"] == "failed", opencv["status"]
    (failure,) = failures_of(db, opencv["id"])
    assert (failure["stage"], failure["image_id"]) == ("load", None)
    assert "model input 'input' has shape [1,3,16,16] but the spec says [1,3,8,8]" in \
        failure["message"], failure["message"]
    assert results_of(db, opencv["id"]) == {}
    assert "running opencv:opt=on,device=cpu,threads=1" in run.stderr


def test_more_threads_than_the_machine_can_use_are_refused_with_the_range(models, deltann,
                                                                          tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    db = tmp_path / "threads.db"
    cores = len(os.sched_getaffinity(0))
    run = deltann.run("run", "--model", models.tiny, "--images", tmp_path / "images",
                      "--db", db, "--env", "ort:threads=100000", expect_rc=None)
    assert run.returncode != 0, run.describe()
    assert f"threads=100000: must be 1..{4 * cores} on this machine (4x its {cores} cores)" in \
        run.stderr, run.stderr
    assert not db.exists(), "a bad environment stops everything before any work"


def test_unknown_knob_value_lists_valid_values(models, deltann, tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)], seed=3)
    db = tmp_path / "knob.db"
    run = deltann.run("run", "--model", models.tiny, "--images", tmp_path / "images",
                      "--db", db, "--env", "ort:opt=fast", expect_rc=None)
    assert run.returncode != 0, run.describe()
    assert "'fast'" in run.stderr and "opt" in run.stderr, run.stderr
    assert "valid values: disable, basic, extended, all" in run.stderr, run.stderr
    assert not db.exists(), "a bad environment stops everything before any work"


def test_unknown_framework_is_skipped_with_built_engines(models, deltann, tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)] * 2, seed=4)
    db = tmp_path / "framework.db"
    run = deltann.run("run", "--model", models.tiny, "--images", tmp_path / "images",
                      "--db", db, "--env", "foo:opt=1", "--env", "ort:opt=all,threads=1",
                      "--repeat", 1, "--warmup", 0)
    variants = variants_by_env(db)
    foo = variants["foo:opt=1"]
    assert foo["status"] == "skipped"
    (failure,) = failures_of(db, foo["id"])
    assert (failure["stage"], failure["symptom"]) == ("plan", "unsupported")
    for word in ("'foo'", "not built", "ort", "opencv"):
        assert word in failure["message"], failure["message"]
    assert "skipped foo:opt=1" in run.stderr and "opencv" in run.stderr, run.stderr
    assert ", ort" in run.stderr, run.stderr
    ort = variants["ort:opt=all,device=cpu,threads=1"]
    assert ort["status"] == "done" and len(results_of(db, ort["id"])) == 2
    report = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    statuses = {v["env"]: (v["status"], v["failures"]) for v in report["variants"]}
    # A plan-stage skip is not an engine failure.
    assert statuses["foo:opt=1"] == ("skipped", 0)


# --- entries that are not image files: loops, devices, FIFOs, folders, long names, duplicates ---

def write_animated_gif(path, frames=3):
    from PIL import Image

    images = [Image.new("RGB", (8, 8), (60 * n, 20, 200 - 60 * n)) for n in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def write_awkward_folder(folder):
    """Three good images next to entries that are not image files. Returns {key: reason} for the
    entries a folder scan must report as unusable."""
    write_random_images(folder, [(8, 8), (12, 9), (9, 9)], seed=7, prefix="good")
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")  # two links pointing at each other
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    os.symlink("self.png", folder / "self.png")  # a link to itself
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("/dev/zero", folder / "zero.png")
    write_animated_gif(folder / "anim.gif")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "sub").mkdir()
    return {
        "loop_a.jpg": "symlink loop",
        "loop_b.jpg": "symlink loop",
        "self.png": "symlink loop",
        "pipe.jpg": "not a regular file",
        "zero.png": "not a regular file",
        "anim.gif": "GIF",
    }


COUNTS = re.compile(r"(\d+) images ready, (\d+) unusable, .*?; (\d+) results written")


def counts_match_the_database(run, db, results_before=0):
    """The counts `run` printed are what the database holds: every image row, and the result rows
    this run added to the `results_before` already there."""
    match = COUNTS.search(run.stderr)
    assert match, run.stderr
    ready, unusable, written = (int(g) for g in match.groups())
    statuses = [row["status"] for row in query(db, "SELECT status FROM images")]
    assert ready == statuses.count("ok"), (run.stderr, statuses)
    assert unusable == statuses.count("error"), (run.stderr, statuses)
    results = query(db, "SELECT COUNT(*) AS n FROM results")[0]["n"]
    assert written == results - results_before, (run.stderr, results)
    return ready, unusable, written


def assert_no_raw_errors(run):
    assert "filesystem error" not in run.stderr, run.stderr
    assert "unexpected error" not in run.stderr, run.stderr


def run_tiny(deltann, models, images, db, *extra, expect_rc=0):
    return deltann.run("run", "--model", models.tiny, "--images", images, "--db", db,
                       "--env", "ort:opt=all,threads=1", "--repeat", 1, "--warmup", 0, *extra,
                       expect_rc=expect_rc)


def assert_unusable(db, expected, stderr):
    images = images_by_key(db)
    for key, reason in expected.items():
        assert key in images, (key, sorted(images))
        row = images[key]
        assert row["status"] == "error", (key, row["message"])
        assert reason in row["message"], (key, row["message"])
        assert f"image skipped: {row['message']}" in stderr, (key, stderr)


def assert_good_have_results(db, good):
    images = images_by_key(db)
    (variant,) = variants_by_env(db).values()
    assert variant["status"] == "done"
    assert set(results_of(db, variant["id"])) == {images[key]["id"] for key in good}
    for key in good:
        assert images[key]["status"] == "ok", (key, images[key]["message"])


def test_folder_scan_reports_every_entry_it_cannot_use(models, deltann, tmp_path):
    folder = tmp_path / "images"
    unusable = write_awkward_folder(folder)
    db = tmp_path / "awkward.db"
    run = run_tiny(deltann, models, folder, db)
    assert_no_raw_errors(run)
    assert_unusable(db, unusable, run.stderr)
    assert_good_have_results(db, ["good_01.png", "good_02.png", "good_03.png"])
    assert counts_match_the_database(run, db) == (3, len(unusable), 3)
    # A file the scan does not pick up is named, with the extensions it does pick up.
    (line,) = [line for line in run.stderr.splitlines() if "notes.txt" in line]
    assert ".jpg" in line and ".png" in line, line


def test_list_file_reports_bad_entries_and_duplicates(models, deltann, tmp_path):
    folder = tmp_path / "images"
    write_awkward_folder(folder)
    long_name = "x" * 300 + ".jpg"
    lines = ["good_01.png 0", "good_01.png 0", "./good_02.png 1", "good_02.png 2",
             "loop_a.jpg", "self.png 1", "pipe.jpg", "/dev/zero", "zero.png", "sub",
             long_name, "good_03.png 7", "anim.gif"]
    listing = folder / "list.txt"
    listing.write_text("".join(line + "\n" for line in lines))
    db = tmp_path / "list.db"
    run = run_tiny(deltann, models, listing, db)
    assert_no_raw_errors(run)
    # A line naming an image already named runs as that line: a duplicate, not an error.
    images = images_by_key(db)
    for key, first, reason in [("good_01.png (line 2)", "good_01.png", "duplicate of line 1"),
                               ("good_02.png", "./good_02.png", "conflicting label")]:
        row = images[key]
        assert row["status"] == "duplicate", (key, row["message"])
        assert row["duplicate_of"] == images[first]["id"], key
        assert reason in row["message"], (key, row["message"])
        assert f"duplicate image: {key}: {row['message']}" in run.stderr, (key, run.stderr)
    assert_unusable(db, {
        "loop_a.jpg": "symlink loop",
        "self.png": "symlink loop",
        "pipe.jpg": "not a regular file",
        "/dev/zero": "not a regular file",
        "zero.png": "not a regular file",
        "sub": "not a regular file",
        long_name: "name too long",
        "good_03.png": "label 7 is out of range",
        "anim.gif": "GIF",
    }, run.stderr)
    assert_good_have_results(db, ["good_01.png", "./good_02.png"])
    assert counts_match_the_database(run, db) == (2, len(lines) - 4, 2)
    assert "2 duplicate entries run once" in run.stderr, run.stderr
    # Resuming writes nothing new, and says so.
    again = run_tiny(deltann, models, listing, db)
    assert counts_match_the_database(again, db, results_before=2) == (2, len(lines) - 4, 0)


def test_single_image_file_runs_that_image(models, deltann, tmp_path):
    write_random_images(tmp_path, [(8, 8)], seed=9, prefix="photo")
    db = tmp_path / "one.db"
    run = run_tiny(deltann, models, tmp_path / "photo_01.png", db)
    assert_no_raw_errors(run)
    assert "IHDR" not in run.stderr and "\ufffd" not in run.stderr, run.stderr
    images = images_by_key(db)
    assert list(images) == ["photo_01.png"], list(images)
    assert_good_have_results(db, ["photo_01.png"])
    assert counts_match_the_database(run, db) == (1, 0, 1)


def test_binary_list_file_is_refused_without_printing_it(models, deltann, tmp_path):
    blob = tmp_path / "data.bin"
    blob.write_bytes(bytes(range(256)) * 4 + b"\nphoto.png 1\n")
    db = tmp_path / "binary.db"
    run = run_tiny(deltann, models, blob, db, expect_rc=None)
    assert run.returncode == 1, run.describe()
    assert str(blob) in run.stderr and "not a text list file" in run.stderr, run.stderr
    assert_no_raw_errors(run)
    assert all(ch.isprintable() or ch in "\n" for ch in run.stderr), repr(run.stderr)


def test_dataset_that_is_a_symlink_loop_is_named(models, deltann, tmp_path):
    os.symlink("loop", tmp_path / "loop")
    run = run_tiny(deltann, models, tmp_path / "loop", tmp_path / "loop.db", expect_rc=None)
    assert run.returncode == 1, run.describe()
    assert_no_raw_errors(run)
    assert f"{tmp_path / 'loop'}" in run.stderr and "symlink loop" in run.stderr, run.stderr


def test_filesystem_errors_of_any_verb_are_plain_messages(deltann, tmp_path):
    os.symlink("loop.onnx", tmp_path / "loop.onnx")
    write_random_images(tmp_path / "images", [(8, 8)], seed=10)
    loop = tmp_path / "loop.onnx"
    for args in (["run", "--model", loop, "--images", tmp_path / "images", "--db",
                  tmp_path / "x.db", "--env", "ort"],
                 ["bisect", "--model", loop, "--image", tmp_path / "images" / "img_01.png",
                  "--a", "ort:opt=disable", "--b", "ort:opt=basic"]):
        run = deltann.run(*args, expect_rc=None)
        assert run.returncode == 1, run.describe()
        assert_no_raw_errors(run)
        assert f"deltann: symlink loop: {loop}" in run.stderr, run.stderr
