"""`deltann run FILE`: a campaign file (docs/CAMPAIGN_FILE.md) runs the same campaign as the
equivalent flags.

The demo EfficientNet-Lite0 on two of its photos with two ONNX Runtime variants, once from a
campaign file whose paths are relative to its own folder (deltann runs from another folder), once
from flags: the two databases hold the same variants, the same labels per image and the same
recorded run options. A flag beside the file takes the place of the file's value, and a file with
a misspelt key stops the run naming the file, line and key.

By hand (from the repository root):

DELTANN_BIN=$PWD/build/ci/deltann DELTANN_BUILD_DIR=$PWD/build/ci DELTANN_SOURCE_DIR=$PWD \
DELTANN_DEMO_DIR=$PWD/assets/demo PYTHONPATH=python:tests/pylib \
.deps/venv/bin/python -m pytest -q tests/integration/test_campaign_file.py
"""
import json
import os

import pytest

from deltann_testlib import int64s, query, results_of, top_ids, variants_by_env, worker_path

ENVS = ["ort:opt=all,threads=1", "ort:opt=disable,threads=1"]


@pytest.fixture(scope="module")
def demo(demo_folder):
    worker_path("ort", "ONNX Runtime's SDK in .deps/onnxruntime, made by scripts/setup")
    return demo_folder, demo_folder / "efficientnet-lite0.onnx"


def write_campaign(folder, demo, model, **extra):
    """A campaign folder: a list of two demo photos and a campaign file naming the model, the list
    and the database relative to the folder. Returns the file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images.txt").write_text(
        f"{demo / 'images' / 'apple.jpg'} 948\n{demo / 'images' / 'coffee.png'} 967\n")
    lines = [
        "# The demo model on two photos, two ONNX Runtime variants.",
        f"model = {json.dumps(os.path.relpath(model, folder))}",
        'images = "images.txt"',
        'db = "file.db"',
        f"environments = {json.dumps(ENVS)}",
        *[f"{key} = {value}" for key, value in extra.items()],
        "",
        "[timing]",
        "warmup = 0",
        "repeat = 1",
        'timing_images = "all"',
        "",
        "# Placement on a cluster: parsed and checked, ignored on one machine.",
        "[[hardware_group]]",
        'name = "cpu"',
        'match = { engines = ["ort"], devices = ["cpu"] }',
        'constraint = "avx2"',
        "exclusive = true",
        "shard_images = 1",
    ]
    path = folder / "campaign.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def labels_by_variant(db):
    """{env: {image key: top ids}} of every result."""
    images = {row["id"]: row["key"] for row in query(db, "SELECT id, key FROM images")}
    return {env: {images[image_id]: top_ids(row)
                  for image_id, row in results_of(db, variant["id"]).items()}
            for env, variant in variants_by_env(db).items()}


def meta(db, key):
    rows = query(db, "SELECT value FROM meta WHERE key = ?", (key,))
    return rows[0]["value"] if rows else None


def resolved(value):
    """A meta value with its absolute paths resolved: the file's relative model path joined to
    the file's folder (campaign/../../model) is the flags' path spelt another way."""
    if value.startswith("["):
        return [resolved(item) for item in json.loads(value)]
    return os.path.realpath(value) if value.startswith("/") else value


def test_campaign_file_runs_the_campaign_of_its_flags(deltann, demo, tmp_path):
    demo_dir, model = demo
    campaign = write_campaign(tmp_path / "campaign", demo_dir, model, keep_outputs=0)
    elsewhere = tmp_path / "elsewhere"  # relative paths resolve against the file, not here
    elsewhere.mkdir()
    deltann.run("run", campaign, "--quiet", cwd=elsewhere)
    from_file = campaign.parent / "file.db"
    assert from_file.is_file()
    assert not (elsewhere / "file.db").exists()

    from_flags = tmp_path / "flags.db"
    args = ["run", "--model", model, "--images", campaign.parent / "images.txt", "--db",
            from_flags, "--warmup", 0, "--repeat", 1, "--timing-images", "all",
            "--keep-outputs", 0, "--quiet"]
    for env in ENVS:
        args += ["--env", env]
    deltann.run(*args, cwd=elsewhere)

    file_labels = labels_by_variant(from_file)
    assert sorted(file_labels) == sorted(labels_by_variant(from_flags))
    assert sorted(file_labels) == sorted(
        env for env in variants_by_env(from_file))  # every variant has results
    assert file_labels == labels_by_variant(from_flags)
    for env, by_image in file_labels.items():
        assert len(by_image) == 2, (env, by_image)
    # The options that shaped the results, as recorded for reproduce commands, are the same.
    for key in ("run_options", "timing", "images", "spec"):
        assert resolved(meta(from_file, key)) == resolved(meta(from_flags, key)), key
    assert meta(from_file, "timing") == "warmup=0, repeat=1, timing_images=all"
    # keep_outputs = 0: no full output vectors, as with --keep-outputs 0.
    assert all(row["output"] is None for row in query(from_file, "SELECT output FROM results"))


def test_flags_beside_the_file_take_the_place_of_its_values(deltann, demo, tmp_path):
    demo_dir, model = demo
    campaign = write_campaign(tmp_path / "campaign", demo_dir, model)
    override = tmp_path / "override.db"
    deltann.run("run", campaign, "--db", override, "--repeat", 2, "--env", ENVS[0], "--quiet",
                cwd=tmp_path)
    assert override.is_file()
    assert not (campaign.parent / "file.db").exists()
    variants = variants_by_env(override)
    assert len(variants) == 1 and next(iter(variants)).startswith("ort:opt=all")
    for row in results_of(override, next(iter(variants.values()))["id"]).values():
        assert len(int64s(row["samples_ns"])) == 2  # --repeat 2 over the file's repeat = 1
    assert meta(override, "timing") == "warmup=0, repeat=2, timing_images=all"


def test_bad_campaign_file_is_refused_naming_file_line_and_key(deltann, demo, tmp_path):
    demo_dir, model = demo
    campaign = write_campaign(tmp_path / "campaign", demo_dir, model, retry_faild="true")
    result = deltann.run("run", campaign, cwd=tmp_path, expect_rc=1)
    assert f"{campaign}:6: unknown key 'retry_faild'" in result.stderr, result.describe()
    assert "did you mean 'retry_failed'?" in result.stderr
    assert not (campaign.parent / "file.db").exists()
