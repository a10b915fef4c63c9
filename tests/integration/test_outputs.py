"""What deltann's outputs promise about a campaign: every printed reproduce command reproduces its
finding; the spec that applied is recorded and shown, and defaults are never taken silently; images
that could not be used are listed with the reason by compare, export and the report; names from
files are made safe for terminals and spreadsheets; exit codes a pipeline can act on (README.md,
"Exit codes"; docs/ANALYSIS.md, "What every output states" and "Findings")."""
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from deltann_testlib import Deltann, query, write_random_images

ESC = "\x1b"


def meta(db):
    return {row["key"]: row["value"] for row in query(db, "SELECT key, value FROM meta")}


def written_db(run_stderr):
    """The database a run says it wrote its results to."""
    found = re.search(r"results written to (.+)$", run_stderr, re.MULTILINE)
    assert found, run_stderr
    return found.group(1)


@pytest.fixture(scope="module")
def flip(models, deltann_bin, tmp_path_factory):
    """label_flip.onnx copied without its spec and run with the spec given from another folder,
    non-default timing and an explicit cache: the two ORT levels give different top-1 labels."""
    info = json.loads((models.dir / "label_flip.json").read_text())
    work = tmp_path_factory.mktemp("outputs")
    model = work / "copy" / "flip.onnx"
    model.parent.mkdir()
    shutil.copy(models.label_flip, model)
    spec = work / "specs" / "flip spec.json"
    spec.parent.mkdir()
    shutil.copy(models.dir / "label_flip.spec.json", spec)
    images = work / "images"
    images.mkdir()
    shutil.copy(models.dir / info["input_image"], images / info["input_image"])
    (work / "default-cache").mkdir()
    cache = work / "cache"
    deltann = Deltann(deltann_bin, work / "default-cache")
    envs = [f"ort:opt={info['level_a']},threads=1", f"ort:opt={info['level_b']},threads=1"]
    db = work / "flip.db"
    run = deltann.run("run", "--model", model, "--spec", spec, "--images", images, "--db", db,
                      "--repeat", 3, "--warmup", 2, "--cache", cache, "--env", envs[0],
                      "--env", envs[1])
    compare = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    return {"deltann": deltann, "work": work, "model": model, "spec": spec, "images": images,
            "cache": cache, "db": db, "run": run, "compare": compare, "envs": envs}


# --- reproduce commands ------------------------------------------------------------------------

def test_reproduce_command_gives_the_same_finding(flip, deltann_bin, tmp_path):
    (finding,) = [f for f in flip["compare"]["findings"] if f["kind"] == "label_difference"]
    command = finding["reproduce"]
    words = shlex.split(command)
    for option, value in (("--spec", str(flip["spec"])), ("--repeat", "3"), ("--warmup", "2"),
                          ("--cache", str(flip["cache"])), ("--images", str(flip["images"]))):
        assert words[words.index(option) + 1] == value, command
    # Pasted into a shell in another folder, with deltann on PATH, as a user would.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = flip["deltann"].environment({
        "PATH": f"{deltann_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(tmp_path)})
    results = []
    for _ in range(2):
        proc = subprocess.run(["/bin/sh", "-c", command + " --json"], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        again = json.loads(proc.stdout)
        same = [(f["title"], f["variants"], f["images"])
                for f in again["findings"] if f["kind"] == "label_difference"]
        assert same == [(finding["title"], finding["variants"], finding["images"])], again
        results.append(written_db(proc.stderr))
    # Each paste ran afresh into a new database, with the campaign's options.
    assert results[0] != results[1]
    original = meta(flip["db"])
    for db in results:
        assert not db.startswith(str(elsewhere)), db
        repeated = meta(db)
        for key in ("spec", "spec_source", "run_options", "timing", "images"):
            assert repeated[key] == original[key], key


# --- FLOPs and share of peak -------------------------------------------------------------------

# label_flip.onnx on [1,3,4,4]: Conv 1x1 3->1 (2 * 3 * 16 outputs = 96), BatchNormalization (16
# elements), GlobalAveragePool (1), Flatten (1), Concat (2) -- docs/ANALYSIS.md, "FLOPs and peak".
LABEL_FLIP_FLOPS = 96 + 16 + 1 + 1 + 2


def test_compare_json_carries_flops_rate_and_share_of_peak(flip):
    compare = flip["compare"]
    assert compare["models"][0]["flops"] == LABEL_FLIP_FLOPS
    peak = json.loads(compare["meta"]["cpu_peak"])
    assert peak["gflops_per_core"] > 0 and peak["isa"] and peak["cores"] >= 1
    for variant in compare["variants"]:
        assert variant["flops"] == LABEL_FLIP_FLOPS
        expected = LABEL_FLIP_FLOPS / (variant["median_ms"] * 1e6)
        assert variant["gflops"] == pytest.approx(expected, rel=1e-9)
        assert variant["peak_gflops"] == pytest.approx(peak["gflops_per_core"])  # threads=1
        assert variant["peak_share"] == pytest.approx(expected / peak["gflops_per_core"], rel=1e-9)
    # The same columns in the CSV export, and in the terminal's variants table.
    rows = list(csv.DictReader(io.StringIO(flip["deltann"].run(
        "export", "--db", flip["db"], "--format", "csv", "--table", "variants").stdout)))
    assert [int(row["flops"]) for row in rows] == [LABEL_FLIP_FLOPS] * 2
    assert all(float(row["peak_share"]) > 0 for row in rows)
    assert "GFLOP/s" in flip["deltann"].run("compare", "--db", flip["db"]).stdout


# --- the spec that applied ---------------------------------------------------------------------

def test_the_spec_is_recorded_and_shown(flip):
    recorded = meta(flip["db"])
    assert recorded["spec"] == str(flip["spec"])
    assert recorded["spec_source"] == str(flip["spec"])
    options = json.loads(recorded["run_options"])
    assert options[:2] == ["--spec", str(flip["spec"])]
    assert options[options.index("--repeat") + 1] == "3"
    assert "ImageNet defaults" not in flip["run"].stderr
    text = flip["deltann"].run("compare", "--db", flip["db"]).stdout
    assert text.startswith(f"Model spec: {flip['spec']}\n"), text
    assert flip["compare"]["meta"]["spec_source"] == str(flip["spec"])


def test_a_model_without_its_spec_says_imagenet_defaults_apply(flip, tmp_path):
    """The copy alone: its sidecar is missing, so the ImageNet defaults apply, and every verb says
    so instead of giving other numbers with no word."""
    deltann, model = flip["deltann"], flip["model"]
    image = next(flip["images"].iterdir())
    db = tmp_path / "defaults.db"
    run = deltann.run("run", "--model", model, "--images", flip["images"], "--db", db,
                      "--env", flip["envs"][0], "--repeat", 1, "--warmup", 0, expect_rc=None)
    for verb in (["localize", "--model", model, "--image", image, "--a", flip["envs"][0],
                  "--b", flip["envs"][1]],
                 ["bisect", "--model", model, "--image", image, "--a", flip["envs"][0],
                  "--b", flip["envs"][1]]):
        result = deltann.run(*verb, expect_rc=None)
        for fragment in ("no flip.spec.json beside it", "ImageNet defaults apply",
                         "1x3x224x224 NCHW RGB", "mean [0.485, 0.456, 0.406]"):
            assert fragment in result.stderr, result.describe()
    assert "ImageNet defaults apply" in run.stderr and "1x3x224x224" in run.stderr
    recorded = meta(db)
    assert recorded["spec"] == ""
    assert recorded["spec_source"] == "ImageNet defaults (no flip.spec.json beside the model)"
    assert "--spec" not in json.loads(recorded["run_options"])
    text = deltann.run("compare", "--db", db).stdout
    assert text.startswith("Model spec: ImageNet defaults (no flip.spec.json beside the model)")
    # The 4x4 model cannot take the defaults' 224x224 input: no variant produced a result.
    assert run.returncode == 3, run.describe()
    assert "no variant produced a result" in run.stderr


# --- unusable images, names from files -------------------------------------------------------

@pytest.fixture(scope="module")
def odd_names(models, deltann_bin, tmp_path_factory):
    """A campaign whose file names hold an escape sequence and a spreadsheet formula, with two
    images that cannot be used (one of them under the escape-sequence name)."""
    work = tmp_path_factory.mktemp("names")
    (work / "cache").mkdir()
    deltann = Deltann(deltann_bin, work / "cache")
    images = work / "images"
    _, other = write_random_images(images, [(8, 8), (8, 8)], seed=3)
    other.rename(images / "=1+1.png")
    (images / f"esc{ESC}[31mred.jpg").write_text("not an image\n")
    (images / "not_an_image.jpg").write_text("not an image either\n")
    model = work / "tiny.onnx"
    shutil.copy(models.tiny, model)
    shutil.copy(models.dir / "tiny_classifier.spec.json", work / "tiny.spec.json")
    db = work / "names.db"
    run = deltann.run("run", "--model", model, "--images", images, "--db", db,
                      "--env", "ort:threads=1", "--repeat", 1, "--warmup", 0)
    return {"deltann": deltann, "work": work, "db": db, "run": run}


UNUSABLE = {f"esc{ESC}[31mred.jpg", "not_an_image.jpg"}


def test_terminal_output_shows_control_characters_escaped(odd_names):
    deltann, db = odd_names["deltann"], odd_names["db"]
    outputs = [odd_names["run"].stderr, odd_names["run"].stdout,
               deltann.run("compare", "--db", db).stdout]
    for text in outputs:
        assert ESC not in text, text
    assert "esc\\x1b[31mred.jpg" in odd_names["run"].stderr
    assert "esc\\x1b[31mred.jpg" in outputs[2]


def test_compare_lists_unusable_images_with_the_reason(odd_names):
    deltann, db = odd_names["deltann"], odd_names["db"]
    text = deltann.run("compare", "--db", db).stdout
    assert "2 images unusable" in text, text
    table = text[text.index("2 images unusable"):].split("\n\n")[0].splitlines()
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {"esc\\x1b[31mred.jpg", "not_an_image.jpg"}, table
    report = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    listed = report["unusable_images"]
    assert {u["key"] for u in listed} == UNUSABLE
    for u in listed:
        assert u["path"].endswith(u["key"]) and u["reason"], u
        assert u["reason"].replace(ESC, "\\x1b") in rows[u["key"].replace(ESC, "\\x1b")]


def test_export_lists_unusable_images_and_quotes_formulas(odd_names, tmp_path):
    deltann, db = odd_names["deltann"], odd_names["db"]
    exported = json.loads(deltann.run("export", "--db", db, "--format", "json").stdout)
    assert {u["key"] for u in exported["unusable_images"]} == UNUSABLE
    assert exported["context"]["usable_images"] == 2
    table = deltann.run("export", "--db", db, "--format", "csv", "--table", "unusable_images",
                        "-o", tmp_path / "unusable.csv")
    assert table.returncode == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "unusable.csv").read_text())))
    assert {row["key"] for row in rows} == UNUSABLE
    assert all(row["reason"] for row in rows)
    results = list(csv.DictReader(io.StringIO(
        deltann.run("export", "--db", db, "--format", "csv").stdout)))
    assert sorted(row["image"] for row in results) == ["'=1+1.png", "img_01.png"]


def test_report_has_the_unusable_images_section(odd_names, tmp_path):
    deltann, db = odd_names["deltann"], odd_names["db"]
    report = tmp_path / "report.html"
    deltann.run("report", "--db", db, "-o", report)
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="unusable">'):]
    section = section[:section.index("</section>")]
    assert "<h2>2 images unusable</h2>" in section
    assert section.count("<tr><td") == 2
    assert "not_an_image.jpg" in section and "esc\ufffd[31mred.jpg" in section
    assert ESC not in html


def test_names_that_are_not_utf8_are_shown_escaped(models, deltann, tmp_path):
    """An unusable file with a Latin-1 name: the JSON lists it with U+FFFD for the byte instead of
    failing, the terminal with an escape."""
    images = tmp_path / "images"
    write_random_images(images, [(8, 8)], seed=4)
    with open(os.path.join(os.fsencode(images), b"caf\xe9.jpg"), "w") as f:
        f.write("not an image\n")
    db = tmp_path / "latin1.db"
    run = deltann.run("run", "--model", models.tiny, "--images", images, "--db", db,
                      "--env", "ort:threads=1", "--repeat", 1, "--warmup", 0, "--json")
    assert [u["key"] for u in json.loads(run.stdout)["unusable_images"]] == ["caf\ufffd.jpg"]
    assert "caf\\xe9.jpg" in run.stderr, run.describe()
    text = deltann.run("compare", "--db", db).stdout
    assert "1 images unusable" in text and "caf\\xe9.jpg" in text, text


# --- exit codes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("envs, says", [
    (["testing:fault=segv,at=load"], "1 failed"),
    (["nosuchengine"], "1 skipped"),
])
def test_run_exits_3_when_no_variant_produced_a_result(models, deltann, test_workers, tmp_path,
                                                       envs, says):
    write_random_images(tmp_path / "images", [(8, 8)] * 2, seed=1)
    args = ["run", "--model", models.tiny, "--images", tmp_path / "images",
            "--db", tmp_path / "none.db", "--repeat", 1, "--warmup", 0]
    for env in envs:
        args += ["--env", env]
    result = deltann.run(*args, env={"DELTANN_WORKER_DIR": str(test_workers)}, expect_rc=3)
    assert "no variant produced a result" in result.stderr and says in result.stderr, \
        result.describe()
    # One variant with results is enough: failures of the others are findings, not an exit code.
    args += ["--env", "testing"]
    deltann.run(*args, env={"DELTANN_WORKER_DIR": str(test_workers)}, expect_rc=0)
