"""Device identity (docs/ENVIRONMENTS.md, "Hardware"): a campaign on tiny_classifier with OpenCV
natively and capped at AVX2 stores the machine it ran on with each variant, and `compare`
(terminal and --json), the export (JSON and CSV) and the HTML report show it; the pair differs
only in isa, and the findings say so. Skipped where the OpenCV worker was not built or this CPU
lacks AVX2 (the cap would be unavailable, not run)."""
import csv
import io
import json
import sqlite3

import pytest

from deltann_testlib import Deltann, describe_worker, worker_path, write_random_images

NATIVE = "opencv:opt=on,device=cpu,threads=1"
AVX2 = "opencv:opt=on,device=cpu,threads=1,isa=avx2"


def cpuinfo_model():
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return ""


@pytest.fixture(scope="module")
def campaign(deltann_bin, models, tmp_path_factory):
    worker = worker_path("opencv", "OpenCV's dnn module or libonnx-dev not found at configure time")
    isa = next(k for k in describe_worker(worker)["knobs"] if k["name"] == "isa")
    if "avx2" not in isa["values"] or "avx2" in isa.get("unavailable", {}):
        pytest.skip("isa=avx2 is unavailable here: " + isa.get("unavailable", {}).get("avx2", ""))
    folder = tmp_path_factory.mktemp("device")
    images = folder / "images"
    write_random_images(images, [(8, 8)] * 3, seed=11)
    (folder / "cache").mkdir()
    deltann = Deltann(deltann_bin, folder / "cache")
    db = folder / "hw.db"
    deltann.run("run", "--model", models.tiny, "--images", images, "--db", db, "--repeat", 1,
                "--env", "opencv:threads=1", "--env", "opencv:isa=avx2,threads=1")
    return deltann, db, folder


def test_each_variant_stores_the_machine_it_ran_on(campaign):
    _, db, _ = campaign
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT env, info_json FROM variants"))
    assert set(rows) == {NATIVE, AVX2}
    for env, info in rows.items():
        stored = json.loads(info)
        host = stored["host"]
        assert host["cpu_model"] == cpuinfo_model()
        assert "avx2" in host["isa_flags"] and "fma" in host["isa_flags"]
        assert host["isa_level"] in ("avx2", "avx512")
        assert host["logical_cores"] >= 1
        # A busy core's clock: any core of the last twenty years, even a shared one.
        assert 200 < host["cpu_mhz_measured"] < 7000
        assert isinstance(host["gpus"], list)
        assert stored["hardware"]["cpu_features"], env  # the engine's report, kept beside it


def stored_isa_level(db):
    with sqlite3.connect(db) as con:
        (info,) = con.execute("SELECT info_json FROM variants LIMIT 1").fetchone()
    return json.loads(info)["host"]["isa_level"]


def test_compare_shows_the_device_identity_and_the_hardware_axis(campaign):
    deltann, db, _ = campaign
    data = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    variants = {v["env"]: v for v in data["variants"]}
    level = stored_isa_level(db)
    assert variants[NATIVE]["isa"] == f"native ({level})"
    assert variants[AVX2]["isa"] == "avx2"
    assert variants[AVX2]["device_identity"] == f"{cpuinfo_model()}, isa avx2, device cpu"
    assert variants[NATIVE]["engine_hardware"]["cpu_features"]
    (pair,) = data["pairs"]
    assert pair["axis"] == "isa"
    assert pair["device_differences"] == [f"isa native ({level}) vs avx2"]
    # tiny_classifier gives the same output under every cap (docs/ENVIRONMENTS.md): the
    # hardware finding says what the cap changed.
    (finding,) = [f for f in data["findings"] if f["kind"] == "hardware"]
    assert f"{NATIVE} vs {AVX2}: differs only in isa: " in finding["title"]
    assert "0/3 labels differ" in finding["title"]
    assert finding["variants"] == [NATIVE, AVX2]

    text = deltann.run("compare", "--db", db).stdout
    assert f"on {cpuinfo_model()}, isa avx2, device cpu" in text
    assert "Pairs on different hardware" in text and f"isa native ({level}) vs avx2" in text
    assert "[hardware]" in text and "differs only in isa" in text


def test_export_and_report_carry_the_device_identity(campaign):
    deltann, db, folder = campaign
    document = json.loads(deltann.run("export", "--db", db, "--format", "json").stdout)
    variants = {v["env"]: v for v in document["variants"]}
    assert variants[AVX2]["cpu_model"] == cpuinfo_model()
    assert variants[AVX2]["cpu_mhz_measured"] > 200
    assert "avx2" in variants[AVX2]["cpu_isa_flags"]
    assert document["pairs"][0]["device_differences"]
    assert any(f["kind"] == "hardware" for f in document["findings"])

    table = deltann.run("export", "--db", db, "--format", "csv", "--table", "variants").stdout
    rows = {row["env"]: row for row in csv.DictReader(io.StringIO(table))}
    assert rows[AVX2]["isa"] == "avx2"
    assert rows[AVX2]["host"]
    assert json.loads(rows[NATIVE]["cpu_isa_flags"])

    report = folder / "report.html"
    deltann.run("report", "--db", db, "-o", report)
    html = report.read_text(encoding="utf-8")
    assert '<section id="devices">' in html
    assert "isa avx2" in html
    assert "differs only in isa" in html
