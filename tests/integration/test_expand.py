"""`deltann expand`: natural variants of real photos by ImageNet-C's corruptions, with labels
inherited, provenance for every output, byte-identical files for a seed, a cache, unreadable
images named and skipped, and an output list that `deltann run` takes."""
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from deltann_testlib import images_by_key, query, read_list_file, sha256_file

PHOTOS = {"apple.jpg": 948, "orange.jpg": 950}
CORRUPTIONS = ["gaussian_noise", "defocus_blur", "pixelate"]
SEVERITIES = [1, 4]


@pytest.fixture(scope="module")
def demo(demo_folder):
    return demo_folder, demo_folder / "efficientnet-lite0.onnx"


@pytest.fixture
def photo_list(demo, tmp_path):
    """Two demo photos with their labels, and a truncated JPEG without one, in a list file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    lines = []
    for name, label in PHOTOS.items():
        shutil.copy(demo[0] / "images" / name, folder / name)
        lines.append(f"{name} {label}")
    whole = (demo[0] / "images" / "rocket.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(whole[: len(whole) // 3])
    lines.append("broken.jpg")
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    return folder / "images.txt"


def expand(deltann, images, out, seed, corruptions=CORRUPTIONS):
    return deltann.run("expand", "--images", images, "-o", out, "--seed", seed,
                       "--corruptions", ",".join(corruptions),
                       "--severities", ",".join(map(str, SEVERITIES)), timeout=300)


def file_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_expand_photos(deltann, demo, photo_list, tmp_path):
    out = tmp_path / "out"
    r = expand(deltann, photo_list, out, seed=11)
    # The truncated photo is named with the reason, and the others are expanded.
    assert "broken.jpg" in r.stderr and "truncated" in r.stderr, r.describe()

    per_photo = 1 + len(CORRUPTIONS) * len(SEVERITIES)
    listed = read_list_file(out / "images.txt")
    assert len(listed) == len(PHOTOS) * per_photo, listed
    provenance = json.loads((out / "provenance.json").read_text())
    assert set(provenance) == {name for name, _ in listed}
    assert all((out / name).is_file() for name in provenance)

    sources = {name: sha256_file(photo_list.parent / name) for name in PHOTOS}
    made = set()
    for name, label in listed:
        record = provenance[name]
        # Each output has its source's label, path and hash.
        assert label == PHOTOS[record["source"]], (name, label, record)
        assert record["source_sha256"] == sources[record["source"]]
        assert Path(record["source_path"]) == photo_list.parent / record["source"]
        if record["transform"] == "original":
            assert (out / name).read_bytes() == (photo_list.parent / record["source"]).read_bytes()
        else:
            assert record["seed"] == 11 and isinstance(record["call_seed"], int)
            assert record["library"].startswith("corrupt-tta ")
            assert name.endswith(".png")
        made.add((record["source"], record["transform"], record.get("severity")))
    assert made == {(s, "original", None) for s in PHOTOS} | {
        (s, c, v) for s in PHOTOS for c in CORRUPTIONS for v in SEVERITIES}
    assert "broken.jpg" not in {record["source"] for record in provenance.values()}

    # The same seed with a fresh cache gives the same bytes; the same cache reuses its images.
    fresh = tmp_path / "fresh-cache"
    fresh.mkdir()
    deltann.cache_dir, cache = fresh, deltann.cache_dir
    again = tmp_path / "again"
    r = expand(deltann, photo_list, again, seed=11)
    assert f"{len(PHOTOS) * len(CORRUPTIONS) * len(SEVERITIES)} corrupted now" in r.stdout
    assert file_bytes(again) == file_bytes(out)
    deltann.cache_dir = cache
    r = expand(deltann, photo_list, tmp_path / "cached", seed=11)
    assert "0 corrupted now" in r.stdout, r.describe()
    assert file_bytes(tmp_path / "cached") == file_bytes(out)

    # Another seed changes the noise and not the deterministic corruptions.
    other = tmp_path / "other"
    expand(deltann, photo_list, other, seed=12)
    for name in provenance:
        changed = (other / name).read_bytes() != (out / name).read_bytes()
        assert changed == (provenance[name]["transform"] == "gaussian_noise"), name


def test_expand_impulse_noise_is_seeded(deltann, demo, photo_list, tmp_path):
    """impulse_noise draws from scikit-image's own generator, which the tool seeds too."""
    first, second = tmp_path / "first", tmp_path / "second"
    expand(deltann, photo_list, first, seed=3, corruptions=["impulse_noise"])
    deltann.cache_dir = tmp_path / "other-cache"
    deltann.cache_dir.mkdir()
    expand(deltann, photo_list, second, seed=3, corruptions=["impulse_noise"])
    assert file_bytes(first) == file_bytes(second)


def test_expand_refuses_bad_arguments(deltann, photo_list, tmp_path):
    r = deltann.run("expand", "--images", photo_list, "-o", tmp_path / "o", "--severities", "0-3",
                    expect_rc=1)
    assert "--severities" in r.stderr
    r = deltann.run("expand", "--images", photo_list, "-o", tmp_path / "o", "--corruptions",
                    "rain", expect_rc=1)
    assert "unknown corruption rain" in r.stderr and "gaussian_noise" in r.stderr


def test_run_takes_the_expanded_list(deltann, demo, photo_list, tmp_path):
    out = tmp_path / "out"
    deltann.run("expand", "--images", photo_list, "-o", out, "--corruptions", "brightness",
                "--severities", "2", timeout=300)
    if "ort" not in {b["name"] for b in json.loads(deltann.run("backends", "--json").stdout)}:
        pytest.skip("the engine ort is not built here")
    db = tmp_path / "expanded.db"
    deltann.run("run", "--model", demo[1], "--images", out / "images.txt", "--db", db,
                "--env", "ort:threads=1", "--timing-images", 0, timeout=300)
    images = images_by_key(db)
    assert set(images) == {name for name, _ in read_list_file(out / "images.txt")}
    labels = {row[0]: row[1] for row in query(db, "SELECT key, label FROM images")}
    assert labels == dict(read_list_file(out / "images.txt"))

    # Each image's provenance is stored with it, as provenance.json gives it.
    provenance = json.loads((out / "provenance.json").read_text())
    stored = query(db, "SELECT i.key, p.source, p.source_sha256, p.transform, p.family, "
                       "p.severity, p.seed, p.call_seed, p.record FROM image_provenance p "
                       "JOIN images i ON i.id = p.image_id")
    assert {row["key"] for row in stored} == set(provenance)
    for row in stored:
        record = provenance[row["key"]]
        assert json.loads(row["record"]) == record
        assert (row["source"], row["source_sha256"], row["transform"]) == (
            record["source"], record["source_sha256"], record["transform"])
        assert (row["family"], row["severity"], row["seed"], row["call_seed"]) == (
            record.get("family", ""), record.get("severity"), record.get("seed"),
            record.get("call_seed"))
    made = sorted((row["source"], row["transform"], row["severity"]) for row in stored)
    assert made == sorted([(name, "original", None) for name in PHOTOS]
                          + [(name, "brightness", 2) for name in PHOTOS])


def export_photo_set(out):
    """The photo set of python/deltann_tools/export_photos.py in `out`; skips without Debian's
    opencv-doc and scikit-image data, which it copies from."""
    import subprocess
    import sys

    from deltann_tools.export_photos import OPENCV_DATA, SKIMAGE_DATA
    if not (OPENCV_DATA.is_dir() and SKIMAGE_DATA.is_dir()):
        pytest.skip("opencv-doc or scikit-image's data is not installed")
    subprocess.run([sys.executable, "-m", "deltann_tools.export_photos", "--out", out],
                   check=True, capture_output=True, text=True, timeout=120)
    return out / "images.txt"


def test_photo_set_expands_to_over_2000_inputs(deltann, tmp_path):
    """The photo set: 24 real photos, 18 with an ImageNet label; every one is read by the
    dataset loader and expanded (here by one fast corruption; 96 per photo with all of them)."""
    photo_list = export_photo_set(tmp_path / "photos")
    listed = read_list_file(photo_list)
    assert len(listed) == 24 and len({name for name, _ in listed}) == 24
    labelled = {name: label for name, label in listed if label is not None}
    assert len(labelled) == 18
    assert labelled["images/chelsea.png"] == 281 and labelled["images/camera.png"] == 872
    assert 24 * (19 * 5 + 1) >= 2000

    out = tmp_path / "out"
    r = deltann.run("expand", "--images", photo_list, "-o", out, "--corruptions", "brightness",
                    "--severities", "1", timeout=300)
    assert "skipped" not in r.stderr, r.describe()
    expanded = read_list_file(out / "images.txt")
    assert len(expanded) == 48
    provenance = json.loads((out / "provenance.json").read_text())
    assert {provenance[name]["source"] for name, _ in expanded} == {name for name, _ in listed}
    # An unlabelled photo's variants stay unlabelled: they count for differences, not accuracy.
    for name, label in expanded:
        assert label == dict(listed)[provenance[name]["source"]], name


@pytest.mark.long
def test_photo_set_full_expansion(deltann, tmp_path):
    """All 19 corruptions at 5 severities: 2,304 inputs (minutes on two cores)."""
    photo_list = export_photo_set(tmp_path / "photos")
    out = tmp_path / "out"
    deltann.run("expand", "--images", photo_list, "-o", out, "--seed", 1, timeout=3600)
    expanded = read_list_file(out / "images.txt")
    assert len(expanded) == 24 * 96 >= 2000
    assert sum(label is not None for _, label in expanded) == 18 * 96


def test_differences_by_transform_and_severity(deltann, models, tmp_path):
    """A pair that disagrees on an expanded set: label_flip.onnx gives different top-1 labels at
    two ONNX Runtime optimisation levels on its solid-colour image, and corruptions move the
    pixels off that knife edge or not. compare (terminal, --json), export's CSV and the report
    break the differences down by transform and severity; the counts are worked out here from
    the stored results and provenance.json, the intervals by scipy."""
    stats = pytest.importorskip("scipy.stats")
    info = json.loads((models.dir / "label_flip.json").read_text())
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(models.dir / info["input_image"], photos / "flip.png")
    (photos / "images.txt").write_text("flip.png\n")
    out = tmp_path / "out"
    deltann.run("expand", "--images", photos / "images.txt", "-o", out, "--seed", 5,
                "--corruptions", "pixelate,gaussian_noise,brightness", "--severities", "1,3",
                timeout=300)
    db = tmp_path / "shifts.db"
    envs = [f"ort:opt={info['level_a']},threads=1", f"ort:opt={info['level_b']},threads=1"]
    deltann.run("run", "--model", models.label_flip, "--images", out / "images.txt", "--db", db,
                "--env", envs[0], "--env", envs[1], "--repeat", 1, "--warmup", 0, timeout=300)

    # By hand: each image's top-1 at both levels, grouped by its provenance.
    provenance = json.loads((out / "provenance.json").read_text())
    top1 = {}
    for row in query(db, "SELECT v.env, i.key, r.top_ids FROM results r JOIN variants v ON "
                         "v.id = r.variant_id JOIN images i ON i.id = r.image_id"):
        top1.setdefault(row["key"], []).append(json.loads(row["top_ids"])[0])
    # A corruption that leaves the solid image as it was (pixelate) makes a duplicate, which runs
    # once, as its first copy: only the images with results count.
    assert len(top1) >= 4 and all(len(labels) == 2 for labels in top1.values())
    expected = {}
    for key, labels in top1.items():
        record = provenance[key]
        for by, shift in (("transform", record["transform"]),
                          ("severity", str(record.get("severity", "original")))):
            images, differences = expected.get((by, shift), (0, 0))
            expected[(by, shift)] = (images + 1, differences + (labels[0] != labels[1]))
    # The original is the calibrated image: its labels differ.
    assert expected[("transform", "original")] == (1, 1)
    assert {shift for by, shift in expected if by == "severity"} == {"original", "1", "3"}

    report = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    (pair,) = report["pairs"]
    shifts = report["shifts"]
    assert {(s["by"], s["shift"]): (s["images"], s["top1_differences"]) for s in shifts} == expected
    # Per pair: the transforms, original first and then by name; then the severities.
    order = {"original": " "}
    assert [(s["by"], s["shift"]) for s in shifts] == sorted(
        expected, key=lambda group: (group[0] == "severity", order.get(group[1], group[1])))
    for s in shifts:
        assert (s["a"], s["b"]) == (pair["a"], pair["b"])
        assert s["top1_difference_rate"] == s["top1_differences"] / s["images"]
        exact = stats.binomtest(s["top1_differences"], s["images"]).proportion_ci(method="exact")
        assert s["top1_difference_rate_ci_low"] == pytest.approx(exact.low, abs=1e-9)
        assert s["top1_difference_rate_ci_high"] == pytest.approx(exact.high, abs=1e-9)

    # The CSV table: the same rows, each rate with its interval's ends.
    csv_text = deltann.run("export", "--db", db, "--format", "csv", "--table", "shifts").stdout
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(r["by"], r["shift"], int(r["images"]), int(r["top1_differences"])) for r in rows] == [
        (s["by"], s["shift"], s["images"], s["top1_differences"]) for s in shifts]
    for r, s in zip(rows, shifts, strict=True):
        assert float(r["top1_difference_rate_ci_low"]) == pytest.approx(
            s["top1_difference_rate_ci_low"], abs=1e-12)
        assert float(r["top1_difference_rate_ci_high"]) == pytest.approx(
            s["top1_difference_rate_ci_high"], abs=1e-12)

    # The terminal lists only the shifts with a difference; the report has the section.
    text = deltann.run("compare", "--db", db).stdout
    assert "Top-1 differences by transform and severity" in text
    differing = sum(1 for s in shifts if s["top1_differences"] > 0)
    assert f"({len(shifts) - differing} of {len(shifts)} pair x shift rows without" in text
    deltann.run("report", "--db", db, "-o", tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert 'id="shifts"' in html and "100.0% [2.5" in html  # the original: 1 of 1 differs
