"""The describe cache (docs/PROTOCOL.md, "Describe cache"): a later deltann reads the engines'
`--describe` replies from `<cache>/describe` instead of starting the programs; a corrupt entry is
described afresh and rewritten; and a changed build tool is described again and builds its
artifact anew rather than finding the old one in the artifact cache.
"""
import json
import shutil
import subprocess

import pytest

from deltann_testlib import Deltann, write_random_images


def entries(cache):
    """{file name: (modification time, parsed content or None)} of `<cache>/describe`."""
    out = {}
    for path in sorted((cache / "describe").glob("*.json")):
        try:
            content = json.loads(path.read_text())
        except ValueError:
            content = None
        out[path.name] = (path.stat().st_mtime_ns, content)
    return out


def test_backends_are_described_once_then_read_from_the_cache(deltann):
    first = json.loads(deltann.run("backends", "--json").stdout)
    saved = entries(deltann.cache_dir)
    assert saved, "the replies are kept in <cache>/describe"
    assert all(content and content["reply"]["name"] for _, content in saved.values()), saved
    second = json.loads(deltann.run("backends", "--json").stdout)
    assert second == first
    assert entries(deltann.cache_dir) == saved, "a cached reply is read, not written again"


def test_corrupt_entries_are_described_afresh_and_rewritten(deltann):
    first = json.loads(deltann.run("backends", "--json").stdout)
    saved = entries(deltann.cache_dir)
    names = sorted(saved)
    damages = [b"", b"{\"key\": \"", b"\x00\xff not json", json.dumps({"key": "other"}).encode()]
    for i, name in enumerate(names):
        (deltann.cache_dir / "describe" / name).write_bytes(damages[i % len(damages)])
    assert json.loads(deltann.run("backends", "--json").stdout) == first
    rewritten = entries(deltann.cache_dir)
    assert sorted(rewritten) == names
    for name in names:
        assert rewritten[name][1] == saved[name][1], f"{name} was not rewritten whole"


@pytest.fixture
def tool_copy(source_dir, tmp_path):
    """A copy of the tools folder (`<tmp>/python/deltann_tools`) that a test may edit."""
    copy = tmp_path / "python"
    shutil.copytree(source_dir / "python" / "deltann_tools", copy / "deltann_tools",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return copy / "deltann_tools"


def test_changed_build_tool_is_described_again_and_rebuilds(deltann_bin, models, tmp_path,
                                                            tool_copy):
    runner = Deltann(deltann_bin, tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    env = {"DELTANN_TOOLS_DIR": str(tool_copy)}
    listed = json.loads(runner.run("backends", "--json", env=env).stdout)
    if "tvm" not in [e.get("name") for e in listed]:
        pytest.skip("`deltann backends --json` does not list tvm")
    images = tmp_path / "images"
    write_random_images(images, [(8, 8), (10, 12)], seed=5)
    variant = "tvm:opt=1,threads=1"

    def campaign(name):
        return runner.run("run", "--model", models.tiny, "--images", images, "--env", variant,
                          "--db", tmp_path / f"{name}.db", "--quiet", env=env, timeout=900)

    built = campaign("first")
    assert ": compiled in" in built.stderr, built.describe()
    before = entries(runner.cache_dir)
    reused = campaign("second")
    assert ": artifact from the cache" in reused.stderr, reused.describe()
    assert entries(runner.cache_dir) == before, "nothing was described again"

    # The compiler module of the copy changes (as a new deltann's would): same name, other bytes.
    source = tool_copy / "tvm_compile.py"
    source.write_text(source.read_text() + "\n# a changed build tool\n")
    rebuilt = campaign("third")
    assert ": artifact from the cache" not in rebuilt.stderr, rebuilt.describe()
    assert ": compiled in" in rebuilt.stderr, rebuilt.describe()
    after = entries(runner.cache_dir)
    new = [content["reply"] for name, (_, content) in after.items() if name not in before]
    assert [reply["name"] for reply in new] == ["tvm"], "only the build tool was described again"
    assert {name: entry for name, entry in after.items() if name in before} == before
    artifacts = sorted((runner.cache_dir / "artifacts" / "tvm").glob("*.so"))
    assert len(artifacts) == 2, artifacts


def test_unwritable_cache_folder_still_describes(deltann_bin, tmp_path):
    """A cache folder that cannot be written costs the describes, nothing else."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    runner = Deltann(deltann_bin, blocker)
    proc = subprocess.run(runner.command(["backends", "--json"]), env=runner.environment(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
