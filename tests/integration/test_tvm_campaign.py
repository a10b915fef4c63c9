"""TVM as a compiler axis of a deltann campaign: build step, artifact cache, `disable=each`,
refused pass names, compile failures as findings, and the demo model against ONNX Runtime.

Every run points DELTANN_PYTHON at a small wrapper script (made here) that appends one line per
build-tool call to a log and then runs the real Python, so the tests can see which calls
happened (and that the tool describes itself once per campaign, since importing TVM costs 3-5 s).

The module shares one artifact cache (DELTANN_CACHE) between its campaigns, so that the opt=3
build of the first campaign is reused by the later ones, and checks that reuse explicitly.
Skipped with a reason where `deltann backends --json` does not list tvm.
"""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deltann_testlib import (Deltann, failures_of, floats, query, results_of, top_ids,
                             variants_by_env, write_random_images)

TVM_LEVELS = ["0", "1", "2", "3", "4"]
# A TVM output element may differ from ONNX Runtime's by at most ATOL + RTOL * |ort| (float32
# logits of the tiny model are O(10..100); the differences seen are ~5e-5, fast-math included).
ATOL, RTOL = 1e-4, 1e-5
# The demo model (EfficientNet-Lite0, 1000 logits): docs/TVM.md measured 6.7e-6 max abs diff.
DEMO_ATOL, DEMO_RTOL = 1e-3, 1e-4

WRAPPER = r"""#!/bin/bash
# deltann test wrapper for DELTANN_PYTHON: log the call, then run the real Python.
if [ "$#" -eq 2 ] && [ "$2" = "--describe" ]; then
  echo "describe $$ $1" >> "$DELTANN_TEST_TOOL_LOG"
else
  echo "build $$ $*" >> "$DELTANN_TEST_TOOL_LOG"
fi
exec "$DELTANN_TEST_REAL_PYTHON" "$@"
"""


class ToolLog:
    """The build-tool calls the wrapper logged: ('describe'|'build', rest of the line)."""

    def __init__(self, path):
        self.path = Path(path)

    def entries(self):
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            out.append((kind, rest))
        return out

    def mark(self):
        return len(self.entries())

    def since(self, mark):
        return self.entries()[mark:]


@pytest.fixture(scope="module")
def tvm_deltann(deltann_bin, tmp_path_factory):
    """(Deltann with a module-wide cache and the logging DELTANN_PYTHON, ToolLog, work folder).
    Skips where this deltann has no tvm engine."""
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = [b.get("name") for b in json.loads(proc.stdout)]
    if "tvm" not in names:
        pytest.skip(f"`deltann backends --json` does not list tvm (lists: {', '.join(names)})")
    work = tmp_path_factory.mktemp("tvm_campaign")
    (work / "cache").mkdir()
    wrapper = work / "python-wrapper"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    real_python = os.environ.get("DELTANN_PYTHON") or sys.executable
    log = ToolLog(work / "tool.log")
    runner = Deltann(deltann_bin, work / "cache")
    extra = {"DELTANN_PYTHON": str(wrapper), "DELTANN_TEST_TOOL_LOG": str(log.path),
             "DELTANN_TEST_REAL_PYTHON": str(real_python)}
    runner.environment = (lambda base: lambda more=None: base(dict(extra, **(more or {}))))(
        runner.environment)
    return runner, log, work


@pytest.fixture(scope="module")
def described(tvm_deltann, source_dir):
    """`build_tvm.py --describe`, run for real (through the wrapper, which keeps the answer)."""
    runner, _, _ = tvm_deltann
    script = source_dir / "python" / "deltann_tools" / "build_tvm.py"
    proc = subprocess.run([runner.environment()["DELTANN_PYTHON"], str(script), "--describe"],
                          env=runner.environment(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def random_images(tvm_deltann):
    _, _, work = tvm_deltann
    folder = work / "images"
    write_random_images(folder, [(8, 8), (12, 10), (9, 13), (16, 16)], seed=11)
    return folder


def tvm_env(opt, disable="none"):
    return f"tvm:opt={opt},device=cpu,threads=1,disable={disable}"


def artifact_files(cache):
    return sorted((Path(cache) / "artifacts" / "tvm").glob("*"))


def file_identity(paths):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in paths}


def compare_json(runner, db):
    return json.loads(runner.run("compare", "--db", db, "--json", timeout=120).stdout)


@pytest.fixture(scope="module")
def levels_campaign(tvm_deltann, models, random_images):
    """The first campaign: tvm opt 0..4 and ort on the tiny classifier, with a fresh cache."""
    runner, log, work = tvm_deltann
    assert not artifact_files(runner.cache_dir), "the module's cache should start empty"
    db = work / "levels.db"
    mark = log.mark()
    args = ["run", "--model", models.tiny, "--images", random_images, "--db", db,
            "--repeat", 1, "--warmup", 0, "--quiet"]
    for opt in TVM_LEVELS:
        args += ["--env", f"tvm:opt={opt}"]
    result = runner.run(*args, "--env", "ort")
    files = artifact_files(runner.cache_dir)
    return {"db": db, "result": result, "calls": log.since(mark), "args": args,
            "artifacts": file_identity(files)}


# --- 1. every opt level agrees with ONNX Runtime --------------------------------------------

def test_levels_agree_with_ort(levels_campaign):
    db = levels_campaign["db"]
    variants = variants_by_env(db)
    expected = {tvm_env(opt) for opt in TVM_LEVELS} | {"ort:opt=all,device=cpu,threads=1"}
    assert set(variants) == expected, levels_campaign["result"].describe()
    assert query(db, "SELECT COUNT(*) AS n FROM failures")[0]["n"] == 0
    ort_row = variants["ort:opt=all,device=cpu,threads=1"]
    assert ort_row["compile_ns"] is None
    reference = results_of(db, ort_row["id"])
    assert len(reference) == 4
    builds = [rest for kind, rest in levels_campaign["calls"] if kind == "build"]
    assert len(builds) == len(TVM_LEVELS), levels_campaign["calls"]
    describes = [rest for kind, rest in levels_campaign["calls"] if kind == "describe"]
    assert len(describes) == 1, f"the build tool described itself {len(describes)} times"
    for opt in TVM_LEVELS:
        row = variants[tvm_env(opt)]
        assert row["status"] == "done", f"opt={opt}: {row['status']}"
        assert row["compile_ns"] is not None and row["compile_ns"] > 0, f"opt={opt}"
        report = json.loads(row["build_json"])
        assert report["compile_ns"] == row["compile_ns"]
        results = results_of(db, row["id"])
        assert set(results) == set(reference)
        for image_id, ref in reference.items():
            want, got = floats(ref["output"]), floats(results[image_id]["output"])
            assert want.size == 5 and got.shape == want.shape, f"opt={opt} image {image_id}"
            worst = float(np.max(np.abs(got - want) - RTOL * np.abs(want)))
            assert worst <= ATOL, (f"opt={opt} image {image_id}: tvm {got} vs ort {want}, "
                                   f"max excess over rtol {worst:.3g} > atol {ATOL}")
            assert top_ids(results[image_id])[0] == top_ids(ref)[0], f"opt={opt} image {image_id}"


# --- 2. the second campaign takes every artifact from the cache ------------------------------

def test_second_campaign_reuses_cached_artifacts(tvm_deltann, levels_campaign):
    runner, log, work = tvm_deltann
    first = levels_campaign
    assert len(first["artifacts"]) == 2 * len(TVM_LEVELS), first["artifacts"]  # .so + .json
    args = list(first["args"])
    args[args.index("--db") + 1] = work / "levels-again.db"
    mark = log.mark()
    second = runner.run(*args)
    calls = log.since(mark)
    assert [kind for kind, _ in calls if kind != "describe"] == [], calls
    for opt in TVM_LEVELS:
        assert f"{tvm_env(opt)}: artifact from the cache" in second.stderr, second.describe()
    assert "compiled in" not in second.stderr
    now = file_identity(artifact_files(runner.cache_dir))
    assert {k: now.get(k) for k in first["artifacts"]} == first["artifacts"], \
        "cached artifacts were rewritten"
    before = variants_by_env(first["db"])
    after = variants_by_env(work / "levels-again.db")
    for opt in TVM_LEVELS:
        assert after[tvm_env(opt)]["compile_ns"] == before[tvm_env(opt)]["compile_ns"]
        assert after[tvm_env(opt)]["status"] == "done"
    print(f"first campaign {first['result'].seconds:.1f} s, from the cache {second.seconds:.1f} s")
    assert second.seconds < first["result"].seconds / 2, \
        f"cached run {second.seconds:.1f} s vs first {first['result'].seconds:.1f} s"


# --- 3. disable=each: one variant per pass of the level ---------------------------------------

def test_disable_each_expands_to_the_level_passes(tvm_deltann, models, random_images,
                                                   described, levels_campaign):
    runner, log, work = tvm_deltann
    members = described["each"]["disable"]["members"]["3"]
    assert len(members) >= 2 and "FuseOps" in members
    db = work / "each.db"
    mark = log.mark()
    result = runner.run("run", "--model", models.tiny, "--images", random_images, "--db", db,
                        "--repeat", 1, "--warmup", 0, "--quiet",
                        "--env", "tvm:opt=3", "--env", "tvm:opt=3,disable=each")
    variants = variants_by_env(db)
    baseline = tvm_env(3)
    assert set(variants) == {baseline} | {tvm_env(3, p) for p in members}, result.describe()
    for env, row in variants.items():
        assert row["status"] == "done", f"{env}: {row['status']}"
        assert row["compile_ns"] > 0
    # opt=3 with nothing disabled came from the first campaign's cache; the rest were built.
    assert f"{baseline}: artifact from the cache" in result.stderr
    builds = [rest for kind, rest in log.since(mark) if kind == "build"]
    assert len(builds) == len(members), builds
    for p in members:
        assert any(f"disable={p}" in b for b in builds), f"no build for disable={p}"
    pairs = compare_json(runner, db)["pairs"]
    for p in members:
        ablation = tvm_env(3, p)
        pair = [x for x in pairs if {x["a"], x["b"]} == {baseline, ablation}]
        assert len(pair) == 1, f"no pair {baseline} / {ablation}"
        assert pair[0]["axis"] == "disable", pair[0]


# --- 4. an unknown pass stops the campaign before any work -----------------------------------

def test_unknown_pass_is_refused_before_any_work(tvm_deltann, models, random_images, described):
    runner, log, work = tvm_deltann
    db = work / "unknown.db"
    mark = log.mark()
    result = runner.run("run", "--model", models.tiny, "--images", random_images, "--db", db,
                        "--env", "tvm:opt=3,disable=NoSuchPass", "--env", "ort",
                        expect_rc=None)
    assert result.returncode != 0, result.describe()
    assert "NoSuchPass" in result.stderr
    valid = next(k for k in described["knobs"] if k["name"] == "disable")["values"]
    for name in valid:
        assert name in result.stderr, f"{name} not listed:\n{result.stderr}"
    assert [k for k, _ in log.since(mark) if k != "describe"] == []
    if db.exists():
        assert query(db, "SELECT COUNT(*) AS n FROM results")[0]["n"] == 0


# --- 5. a model TVM cannot import: the compile failure is a finding --------------------------

def lp_normalization_model(folder, tiny_spec):
    """[1,3,8,8] -> GlobalAveragePool -> Flatten -> MatMul [3,4] -> LpNormalization: ONNX
    Runtime runs it; TVM 0.27's Relax ONNX frontend has no converter for LpNormalization
    (OpNotImplemented), so the build step fails."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    weights = np.random.RandomState(3).randn(3, 4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["scores"]),
         helper.make_node("LpNormalization", ["scores"], ["logits"], axis=1, p=2)],
        "lp_norm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = folder / "lp_norm.onnx"
    onnx.save(model, str(path))
    spec = json.loads(Path(tiny_spec).read_text())
    spec["name"] = "lp_norm"
    spec["output"]["classes"] = 4
    (folder / "lp_norm.spec.json").write_text(json.dumps(spec))
    return path


def test_compile_failure_is_a_finding(tvm_deltann, models, random_images):
    runner, _, work = tvm_deltann
    folder = work / "lp_norm"
    folder.mkdir()
    model = lp_normalization_model(folder, models.tiny.with_suffix(".spec.json"))
    db = work / "lp_norm.db"
    result = runner.run("run", "--model", model, "--images", random_images, "--db", db,
                        "--repeat", 1, "--warmup", 0, "--quiet",
                        "--env", "tvm:opt=3", "--env", "ort")
    variants = variants_by_env(db)
    tvm_row, ort_row = variants[tvm_env(3)], variants["ort:opt=all,device=cpu,threads=1"]
    assert ort_row["status"] == "done" and len(results_of(db, ort_row["id"])) == 4
    assert tvm_row["status"] == "failed", result.describe()
    assert results_of(db, tvm_row["id"]) == {}
    failures = failures_of(db, tvm_row["id"])
    assert [f["stage"] for f in failures] == ["compile"], [dict(f) for f in failures]
    message = failures[0]["message"]
    assert "LpNormalization" in message and "not supported" in message, message
    findings = compare_json(runner, db)["findings"]
    failure = [f for f in findings if f["kind"] == "failure" and f["variants"] == [tvm_env(3)]]
    assert len(failure) == 1, json.dumps(findings, indent=1)
    assert "compile" in failure[0]["title"] and "LpNormalization" in failure[0]["evidence"]


# --- 6. the demo model: TVM and ONNX Runtime agree on every photo ----------------------------

def test_demo_model_same_top1_as_ort(tvm_deltann, source_dir):
    runner, _, work = tvm_deltann
    demo = Path(os.environ.get("DELTANN_DEMO_DIR") or source_dir / "assets" / "demo")
    model = demo / "efficientnet-lite0.onnx"
    if not model.is_file() or not (demo / "images.txt").is_file():
        pytest.skip(f"no demo model in {demo} (set DELTANN_DEMO_DIR; scripts/setup makes it)")
    db = work / "demo.db"
    result = runner.run("run", "--model", model, "--images", demo / "images.txt", "--db", db,
                        "--env", "tvm:opt=3", "--env", "ort:opt=all",
                        "--repeat", 1, "--warmup", 0, "--quiet", timeout=300)
    variants = variants_by_env(db)
    tvm_row, ort_row = variants[tvm_env(3)], variants["ort:opt=all,device=cpu,threads=1"]
    assert tvm_row["status"] == "done" and ort_row["status"] == "done", result.describe()
    tvm_results, ort_results = results_of(db, tvm_row["id"]), results_of(db, ort_row["id"])
    assert set(tvm_results) == set(ort_results) and len(ort_results) >= 1
    keys = {row["id"]: row["key"] for row in query(db, "SELECT id, key FROM images")}
    differing = []
    for image_id, ref in ort_results.items():
        want, got = floats(ref["output"]), floats(tvm_results[image_id]["output"])
        diff = float(np.max(np.abs(got - want)))
        t, o = top_ids(tvm_results[image_id])[0], top_ids(ref)[0]
        print(f"{keys[image_id]}: tvm top-1 {t}, ort top-1 {o}, max |d| {diff:.3g}")
        assert np.all(np.abs(got - want) <= DEMO_ATOL + DEMO_RTOL * np.abs(want)), keys[image_id]
        if t != o:
            differing.append(keys[image_id])
    if differing:
        findings = compare_json(runner, db)["findings"]
        print(json.dumps(findings, indent=1))
        assert any(set(f["variants"]) == {tvm_env(3), "ort:opt=all,device=cpu,threads=1"}
                   and set(differing) <= set(f["images"]) for f in findings), \
            f"top-1 differs on {differing} but no finding names them"
    assert differing == [], f"expected TVM and ORT to agree on every photo; differ: {differing}"
