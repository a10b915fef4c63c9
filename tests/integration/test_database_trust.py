"""A campaign database holds the results of the model that produced them, is written by one
campaign at a time, and only by deltann: a changed model file or spec is refused (or added as a
second model with --new-model, never paired with the first), a second `deltann run` on the same
database is refused while the first runs, another program's SQLite file is never written, and the
read-only verbs leave the file byte for byte as it was."""
import fcntl
import hashlib
import json
import shutil
import sqlite3
import subprocess
import time

import pytest

from deltann_testlib import query, write_random_images

ENV_A = "ort:opt=disable,threads=1"
ENV_B = "ort:opt=all,threads=1"


def copy_model(models, name, folder):
    """The tiny generated model NAME with its spec, copied into `folder` as model.onnx."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(models.dir / f"{name}.onnx", folder / "model.onnx")
    shutil.copy(models.dir / f"{name}.spec.json", folder / "model.spec.json")
    return folder / "model.onnx"


def run(deltann, model, images, db, *extra, expect_rc=0):
    return deltann.run("run", "--model", model, "--images", images, "--db", db, "--env", ENV_A,
                       "--env", ENV_B, "--repeat", "2", "--warmup", "0", *extra,
                       expect_rc=expect_rc)


def file_state(db):
    """Bytes of the database and of its WAL, if any: what a read-only verb must not change."""
    state = {}
    for suffix in ("", "-wal"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            state[suffix] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture
def campaign(models, deltann, tmp_path):
    model = copy_model(models, "tiny_classifier", tmp_path / "m")
    images = tmp_path / "images"
    write_random_images(images, [(8, 8)] * 3, seed=5)
    db = tmp_path / "c.db"
    run(deltann, model, images, db)
    return model, images, db


def test_a_changed_model_file_is_refused_and_nothing_is_written(models, deltann, campaign):
    model, images, db = campaign
    before = query(db, "SELECT count(*) AS n FROM variants")[0]["n"]
    # Same path, other content (another network with the same input and classes).
    shutil.copy(models.dir / "label_flip.onnx", model)
    meta_before = {r["key"]: r["value"] for r in query(db, "SELECT key, value FROM meta")}
    r = run(deltann, model, images, db, expect_rc=1)
    assert "already holds results of another model" in r.stderr, r.describe()
    assert "sha256" in r.stderr and "--new-model" in r.stderr, r.describe()
    assert "unexpected" not in r.stderr
    assert len(query(db, "SELECT * FROM models")) == 1
    assert query(db, "SELECT count(*) AS n FROM variants")[0]["n"] == before
    assert {r["key"]: r["value"] for r in query(db, "SELECT key, value FROM meta")} == meta_before


def test_a_changed_spec_is_refused_naming_the_field(deltann, campaign):
    model, images, db = campaign
    spec_path = model.with_name("model.spec.json")
    spec = json.loads(spec_path.read_text())
    spec["input"]["mean"] = [0.5, 0.5, 0.5]
    spec_path.write_text(json.dumps(spec))
    r = run(deltann, model, images, db, expect_rc=1)
    assert "another spec" in r.stderr and "input.mean" in r.stderr, r.describe()


def test_new_model_adds_a_second_model_never_paired_with_the_first(models, deltann, campaign,
                                                                    tmp_path):
    model, images, db = campaign
    shutil.copy(models.dir / "label_flip.onnx", model)
    shutil.copy(models.dir / "label_flip.spec.json", model.with_name("model.spec.json"))
    # label_flip takes 4x4 inputs: other images, same database.
    write_random_images(tmp_path / "small", [(4, 4)] * 2, seed=6)
    r = run(deltann, model, tmp_path / "small", db, "--new-model")
    assert "2 models" in r.stderr, r.describe()
    assert len(query(db, "SELECT * FROM models")) == 2

    out = deltann.run("compare", "--db", db, "--json")
    c = json.loads(out.stdout)
    assert [m["model"] for m in c["models"]] == [1, 2]
    names = {v["env"]: v["model"] for v in c["variants"]}
    assert len(names) == 4, names  # the same two environments of each model, told apart
    assert all(name.endswith(f"[model {k}]") for name, k in names.items())
    for p in c["pairs"]:
        assert names[p["a"]] == names[p["b"]], p
    # The first model's file changed on disk since its results were stored.
    assert c["models"][0]["on_disk"] == "changed"
    assert any("has changed since" in w for w in c["warnings"])
    text = deltann.run("compare", "--db", db).stdout
    assert "warning: model file" in text and "model 2:" in text

    # check compares only within the baseline's model.
    chk = deltann.run("check", "--db", db, "--baseline", f"{ENV_A} [model 1]",
                      "--max-label-diff", "100%", expect_rc=None)
    assert chk.stdout.count("it ran another model") == 2, chk.describe()


def test_compare_says_when_the_model_file_changed_on_disk(models, deltann, campaign):
    model, images, db = campaign
    shutil.copy(models.dir / "label_flip.onnx", model)
    out = deltann.run("compare", "--db", db)
    text = " ".join(out.stdout.split())  # the terminal wraps the warning at 100 columns
    assert "warning: model file" in text and "has changed since" in text
    model.unlink()
    out = deltann.run("compare", "--db", db, "--json")
    assert json.loads(out.stdout)["models"][0]["on_disk"] == "missing"


def test_a_second_run_on_the_same_database_is_refused_while_the_first_holds_it(deltann, campaign):
    model, images, db = campaign
    with open(db.with_name(db.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write("pid 4242 (deltann run, since now)\n")
        lock.flush()
        r = run(deltann, model, images, db, expect_rc=1)
        assert "is in use by pid 4242" in r.stderr and "--wait" in r.stderr, r.describe()
        # --wait waits (saying so) and runs once the holder is gone.
        proc = subprocess.Popen(deltann.command(
            ["run", "--model", model, "--images", images, "--db", db, "--env", ENV_A,
             "--repeat", "2", "--warmup", "0", "--wait", "--quiet"]),
            env=deltann.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "waiting for pid 4242" in err


def test_two_real_runs_cannot_share_a_database(models, deltann, tmp_path, test_workers):
    model = copy_model(models, "tiny_classifier", tmp_path / "m")
    images = tmp_path / "images"
    write_random_images(images, [(8, 8)] * 2, seed=7)
    db = tmp_path / "c.db"
    env = {"DELTANN_WORKER_DIR": str(test_workers)}
    # The testing engine hangs on demand: the first run holds the database until its timeout.
    first = subprocess.Popen(deltann.command(
        ["run", "--model", model, "--images", images, "--db", db, "--env",
         "testing:fault=hang,at=first", "--timeout", "60", "--quiet"]),
        env=deltann.environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = db.with_name(db.name + ".lock")
        for _ in range(200):
            if lock.exists() and lock.read_text().startswith("pid"):
                break
            time.sleep(0.05)
        second = deltann.run("run", "--model", model, "--images", images, "--db", db, "--env",
                             "testing", env=env, expect_rc=1)
        assert f"in use by pid {first.pid}" in second.stderr, second.describe()
    finally:
        first.kill()
        first.communicate()


def test_another_programs_sqlite_file_is_never_written(models, deltann, tmp_path):
    model = copy_model(models, "tiny_classifier", tmp_path / "m")
    write_random_images(tmp_path / "images", [(8, 8)], seed=8)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL)")
        con.execute("INSERT INTO invoices(total) VALUES (12.5)")
    con.close()
    before = file_state(db)
    r = run(deltann, model, tmp_path / "images", db, expect_rc=1)
    assert "another program" in r.stderr and "invoices" in r.stderr, r.describe()
    for verb in (["compare"], ["export", "--format", "json"]):
        r = deltann.run(*verb, "--db", db, expect_rc=1)
        assert "another program" in r.stderr, r.describe()
    assert file_state(db) == before

    empty = tmp_path / "empty.db"
    empty.touch()
    r = run(deltann, model, tmp_path / "images", empty, expect_rc=1)
    assert "empty file" in r.stderr, r.describe()
    assert empty.stat().st_size == 0


def test_read_only_verbs_leave_the_database_unchanged(deltann, campaign, tmp_path):
    model, images, db = campaign
    before = file_state(db)
    deltann.run("compare", "--db", db)
    deltann.run("compare", "--db", db, "--json")
    deltann.run("export", "--db", db, "--format", "csv", "--table", "pairs")
    deltann.run("export", "--db", db, "--format", "json", "-o", tmp_path / "e.json")
    deltann.run("report", "--db", db, "-o", tmp_path / "r.html")
    deltann.run("check", "--db", db, "--baseline", ENV_A, "--max-label-diff", "100%")
    assert file_state(db) == before


def test_other_timing_settings_are_refused_once_results_exist(deltann, campaign):
    model, images, db = campaign
    before = query(db, "SELECT count(*) AS n FROM results")[0]["n"]
    r = deltann.run("run", "--model", model, "--images", images, "--db", db, "--env", ENV_A,
                    "--repeat", "7", "--warmup", "0", expect_rc=1)
    assert "timed with warmup=0, repeat=2" in r.stderr and "--repeat" in r.stderr, r.describe()
    assert query(db, "SELECT count(*) AS n FROM results")[0]["n"] == before
    # The same settings resume as before.
    run(deltann, model, images, db)
