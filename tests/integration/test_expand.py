"""`deltann expand`: natural variants of real photos by ImageNet-C's corruptions, with labels
inherited, provenance for every output, byte-identical files for a seed, a cache, unreadable
images named and skipped, and an output list that `deltann run` takes."""
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
