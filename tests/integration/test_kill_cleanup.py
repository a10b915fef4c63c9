"""Killing deltann ends everything it started and leaves no partial artifact in the cache
(docs/PROTOCOL.md, "Process model").

deltann is killed (SIGKILL, SIGTERM, or SIGINT to its process group as Ctrl-C in a terminal sends
it) while its TVM build tool compiles, or while the conversion tool's TensorFlow-side Python
converts. Every process of its tree, recorded just before the kill, must be gone within a few
seconds, no process may remain in their process groups, and the cache may hold only complete
entries (an artifact with its report) and no scratch folder.

Skipped with the reason where `deltann backends --json` lacks the engine or the TensorFlow venv is
missing.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from deltann_testlib import write_random_images

# How long processes and scratch folders may take to disappear after the kill (the guards react at
# once, within 0.1 s measured; an orphaned tool would go on for longer than this).
GONE_WITHIN_S = 3
# How long the tool may take to start (deltann first describes the engines and the tool).
TOOL_START_S = 120


@pytest.fixture(scope="module")
def engines(deltann_bin):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {b["name"] for b in json.loads(proc.stdout)}


# --- the process table, from /proc -------------------------------------------------------------

def stat_of(pid):
    """(state, ppid, pgid, start time) of a process, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def processes():
    """{pid: (state, ppid, pgid, start time)} of every process that has not ended (zombies
    excluded: an orphan's zombie may wait a while for its reaper)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = stat_of(int(entry))
            if stat and stat[0] != "Z":
                table[int(entry)] = stat
    return table


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def descendants(root, table):
    children = {}
    for pid, (_, ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_for_tool(proc, markers, what):
    """The pid of the first descendant of `proc` whose command line holds all of `markers`."""
    deadline = time.monotonic() + TOOL_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"deltann ended (exit {proc.returncode}) before {what} started")
        table = processes()
        for pid in descendants(proc.pid, table):
            args = cmdline(pid)
            if all(any(marker in arg for arg in args) for marker in markers):
                return pid
        time.sleep(0.05)
    pytest.fail(f"{what} did not start within {TOOL_START_S} s")


def has_loaded(pid, library):
    """Whether process `pid` has `library` mapped (True once it has ended: nothing to wait for)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return True


def kill_and_check_tree(proc, how):
    """Kills deltann (`how`: SIGKILL or SIGTERM to it, or SIGINT to its process group, as Ctrl-C
    does) and checks that nothing of its tree as it was just before survives: neither a process
    nor a member of one of their process groups."""
    table = processes()
    tree = {pid: table[pid] for pid in descendants(proc.pid, table) if pid in table}
    groups = {stat[2] for stat in tree.values()} - {os.getpgid(0)}
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # deltann leads its group (Deltann.start)
    else:
        os.kill(proc.pid, getattr(signal, how))
    proc.wait(timeout=30)
    deadline = time.monotonic() + GONE_WITHIN_S
    while True:
        now = processes()
        # The same pid with the same start time is the same process.
        survivors = {pid: cmdline(pid) for pid, stat in tree.items()
                     if pid in now and now[pid][3] == stat[3]}
        in_groups = {pid: cmdline(pid) for pid, stat in now.items() if stat[2] in groups}
        if not survivors and not in_groups:
            return
        if time.monotonic() > deadline:
            # Leave no stray process behind for the next tests.
            for pid in set(survivors) | set(in_groups):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            pytest.fail(f"{GONE_WITHIN_S} s after {how} of deltann these processes of its tree "
                        f"still run: {survivors}; in its children's process groups: {in_groups}")
        time.sleep(0.05)


def check_cache_has_only_complete_entries(cache):
    """Every file under cache/artifacts is one half of an artifact + report pair, and the scratch
    folders (cache/tmp) are gone."""
    artifacts = Path(cache) / "artifacts"
    entries = list(artifacts.rglob("*")) if artifacts.exists() else []
    # Only the framework folders (artifacts/tvm, artifacts/convert) may be folders.
    stray = [f"{p} (a folder)" for p in entries if p.is_dir() and p.parent != artifacts]
    suffixes = {}
    for path in entries:
        if path.is_file():
            suffixes.setdefault(path.with_suffix(""), []).append(path.suffix)
    for key, found in suffixes.items():
        if key.name.startswith(".") or len(found) != 2 or ".json" not in found:
            stray.append(f"{key} with {found} (not an artifact with its report)")
    assert stray == [], f"partial or temporary files left in the cache: {stray}"
    scratch = Path(cache) / "tmp"
    deadline = time.monotonic() + GONE_WITHIN_S
    while scratch.exists() and any(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = list(scratch.iterdir()) if scratch.exists() else []
    assert left == [], f"scratch folders left in the cache: {left}"


@pytest.fixture
def images(tmp_path):
    write_random_images(tmp_path / "images", [(8, 8)] * 2, seed=5)
    return tmp_path / "images"


def start_campaign(deltann, models, images, tmp_path, env):
    return deltann.start("run", "--model", models.tiny, "--images", images,
                         "--db", tmp_path / "killed.db", "--env", env, "--repeat", 1,
                         "--warmup", 0, cwd=tmp_path)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_kill_during_tvm_compile(how, deltann, models, images, tmp_path, engines):
    if "tvm" not in engines:
        pytest.skip(f"`deltann backends --json` does not list tvm (lists: {sorted(engines)})")
    proc = start_campaign(deltann, models, images, tmp_path, "tvm:opt=3")
    try:
        # A build, not the tool's --describe.
        tool = wait_for_tool(proc, ["build_tvm.py", "--out"], "the TVM build tool")
        # Into the compile proper: TVM's library is loaded (the import takes a few seconds).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not has_loaded(tool, "libtvm"):
            time.sleep(0.05)
        kill_and_check_tree(proc, how)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check_cache_has_only_complete_entries(deltann.cache_dir)


def test_kill_during_conversion(deltann, models, images, tmp_path, engines):
    if "ort" not in engines:
        pytest.skip("`deltann backends --json` does not list ort")
    from deltann_tools import convert
    if not convert.tf_python().exists():
        pytest.skip(f"the TensorFlow venv is missing ({convert.tf_python()})")
    proc = start_campaign(deltann, models, images, tmp_path, "ort@onnx>tflite>onnx")
    try:
        # A grandchild: convert.py starts it with subprocess, under the venv-tf Python.
        wait_for_tool(proc, ["convert_tf.py", "--step"], "the TensorFlow-side converter")
        kill_and_check_tree(proc, "SIGKILL")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check_cache_has_only_complete_entries(deltann.cache_dir)
