"""Worker replies that break the protocol's types (docs/PROTOCOL.md): a line of standard output
that is valid JSON but not a reply object, and replies whose fields have the wrong type. The
campaign keeps the stray line as engine log and records a malformed reply as the variant's
failure; neither may end the campaign (both used to, with an exception out of the JSON library).

The engine is a Python script speaking the protocol, in a folder of its own given as
DELTANN_WORKER_DIR; its `reply` knob says how it misbehaves.
"""
import sys
import textwrap

import pytest

from deltann_testlib import Deltann, failures_of, results_of, variants_by_env, write_random_images

FAKE_WORKER = textwrap.dedent('''\
    import base64, json, struct, sys

    def say(message):
        print(json.dumps(message) if not isinstance(message, str) else message, flush=True)

    if sys.argv[1] == "--describe":
        say({"name": "odd", "version": "1", "description": "replies oddly", "devices": ["cpu"],
             "formats": ["any"],
             "knobs": [{"name": "opt", "values": ["none"], "default": "none", "help": ""},
                       {"name": "device", "values": ["cpu"], "default": "cpu", "help": ""},
                       {"name": "threads", "values": [], "default": "1", "help": ""},
                       {"name": "reply", "values": ["good", "stray", "bad_timing", "bad_load"],
                        "default": "good", "help": "how the replies go wrong"}]})
        sys.exit(0)

    say({"event": "ready", "protocol": 1})
    mode, classes = "good", 0
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "load":
            mode = dict(kv.split("=") for kv in request["env"].split(":")[1].split(","))["reply"]
            output = request["spec"]["output"]
            classes = output["classes"] + output["label_offset"]
            say({"event": "loaded", "load_ns": "soon" if mode == "bad_load" else 5,
                 "engine_version": "1"})
        elif request["op"] == "run":
            if mode == "stray":  # valid JSON, but not a reply: an engine printing to stdout
                for stray in ["0", "[1, 2]", '"done"', "null", '{"event": 7}', '{"message": []}']:
                    say(stray)
            values = [float(k) for k in range(classes)]
            reply = {"event": "result", "image": request["image"], "samples_ns": [1000],
                     "output": base64.b64encode(struct.pack(f"<{classes}f", *values)).decode()}
            if request["first"]:
                reply["first_ns"] = 2000
            if mode == "bad_timing":
                reply["samples_ns"] = [1e300]
            say(reply)
    ''')

ENVS = {"stray": "odd:reply=stray", "bad_timing": "odd:reply=bad_timing",
        "bad_load": "odd:reply=bad_load", "good": "odd:reply=good"}


@pytest.fixture(scope="module")
def campaign(deltann_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("replies")
    workers = work / "workers"
    workers.mkdir()
    worker = workers / "deltann-worker-odd"
    worker.write_text(f"#!{sys.executable}\n" + FAKE_WORKER)
    worker.chmod(0o755)
    model = work / "model.onnx"  # the engine takes any file; the default spec has 1000 classes
    model.write_bytes(b"not read by this engine")
    write_random_images(work / "images", [(8, 8)] * 3, seed=3)
    (work / "cache").mkdir()
    db = work / "replies.db"
    args = ["run", "--model", model, "--images", work / "images", "--db", db, "--repeat", 1,
            "--warmup", 0, "--timeout", 10]
    for env in ENVS.values():
        args += ["--env", env]
    run = Deltann(deltann_bin, work / "cache").run(
        *args, env={"DELTANN_WORKER_DIR": str(workers)}, timeout=120, expect_rc=None)
    variants = {name: variants_by_env(db).get(f"odd:opt=none,device=cpu,threads=1,{env[4:]}")
                for name, env in ENVS.items()} if db.exists() else {}
    return {"run": run, "db": db, "variants": variants}


def test_the_campaign_completes(campaign):
    run = campaign["run"]
    assert run.returncode == 0, run.describe()
    assert "unexpected error" not in run.stderr, run.describe()


def test_stray_json_lines_are_log_not_replies(campaign):
    variant = campaign["variants"]["stray"]
    assert variant["status"] == "done"
    assert failures_of(campaign["db"], variant["id"]) == []
    assert len(results_of(campaign["db"], variant["id"])) == 3


def test_a_malformed_timing_is_the_images_failure(campaign):
    variant = campaign["variants"]["bad_timing"]
    rows = failures_of(campaign["db"], variant["id"])
    assert rows, "each malformed reply must be recorded"
    for f in rows:
        assert f["symptom"] == "error", dict(f)
        assert "unreadable reply" in f["message"] and "samples_ns" in f["message"], dict(f)
    assert not results_of(campaign["db"], variant["id"])


def test_a_malformed_load_reply_fails_the_variant(campaign):
    variant = campaign["variants"]["bad_load"]
    (f,) = failures_of(campaign["db"], variant["id"])
    assert (f["stage"], f["symptom"]) == ("load", "error"), dict(f)
    assert "unreadable reply" in f["message"] and "load_ns" in f["message"], dict(f)
    assert variant["status"] == "failed"


def test_the_well_behaved_variant_is_unaffected(campaign):
    variant = campaign["variants"]["good"]
    assert variant["status"] == "done"
    assert len(results_of(campaign["db"], variant["id"])) == 3
