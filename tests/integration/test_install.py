"""An installed deltann runs on its own: `cmake --install --strip` into a temporary prefix, the prefix
moved elsewhere, then a campaign (ONNX Runtime on the demo model and two photos) run from the
moved copy with the source and build trees out of reach (docs/BUILD.md).

The trees are hidden by mounting an empty tmpfs over them in a private mount namespace
(`unshare --map-root-user --mount`); where that is not allowed the campaign runs with them in
place, and the scan of the installed files for paths of the trees still holds.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from deltann_testlib import env_path, query

# Mounts a tmpfs over each folder named before "--", then runs the command after it. The script
# is fixed; the folders and the command reach it only as arguments.
HIDE_AND_RUN = """
while [ "$1" != "--" ]; do mount -t tmpfs none "$1" || exit 97; shift; done
shift
exec "$@"
"""


def cache_value(build_dir, name):
    """The value of `name` in build_dir's CMakeCache.txt, or None."""
    for line in (build_dir / "CMakeCache.txt").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.split(":")[0] == name:
            return value
    return None


def can_hide_folders():
    try:
        probe = subprocess.run(["unshare", "--map-root-user", "--mount", "true"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def path_mentions(data, path, allowed):
    """Where bytes `data` mention `path` other than as the start of one of the `allowed` paths."""
    needle = os.fsencode(path)
    hits, start = [], 0
    while (at := data.find(needle, start)) >= 0:
        if not any(data.startswith(os.fsencode(a), at) for a in allowed):
            hits.append(data[max(0, at - 40):at + len(needle) + 40])
        start = at + 1
    return hits


@pytest.fixture(scope="module")
def build_dir():
    folder = env_path("DELTANN_BUILD_DIR", "the build folder")
    if not (folder / "cmake_install.cmake").is_file():
        pytest.skip(f"{folder} has no cmake_install.cmake")
    if not (folder / "deltann-worker-ort").is_file():
        pytest.skip("the ONNX Runtime engine is not built")
    return folder


@pytest.fixture(scope="module")
def installed(build_dir, source_dir):
    """The installed copy, moved after installation to another folder, outside both trees."""
    work = Path(tempfile.mkdtemp(prefix="deltann-install-"))
    trees = [source_dir.resolve(), build_dir.resolve()]
    if any(work.resolve().is_relative_to(t) for t in trees):
        shutil.rmtree(work)
        pytest.skip(f"the temporary folder {work} lies inside the source or build tree")
    try:
        staged = work / "staged"
        # --strip: the debug information of a RelWithDebInfo build names the build folder (as
        # where it was compiled), which is no lookup; a package ships without it too.
        subprocess.run(["cmake", "--install", str(build_dir), "--prefix", str(staged), "--strip"],
                       check=True, capture_output=True, text=True, timeout=120)
        moved = work / "moved"
        staged.rename(moved)
        yield work, moved, staged
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_install_holds_the_program_its_engines_tools_and_demo(installed, build_dir):
    _, prefix, _ = installed
    assert os.access(prefix / "bin" / "deltann", os.X_OK)
    built = sorted(p.name for p in build_dir.glob("deltann-worker-*"))
    assert built, "no engine in the build folder"
    for name in built:
        assert os.access(prefix / "lib" / "deltann" / name, os.X_OK), f"{name} not installed"
    assert not list((prefix / "lib" / "deltann").glob("deltann-worker-testing")), \
        "the test-only engine was installed"
    assert (prefix / "lib/deltann/python/deltann_tools/convert.py").is_file()
    assert (prefix / "lib/deltann/python/deltann_workers/worker.py").is_file()
    assert (prefix / "share/deltann/demo/efficientnet-lite0.onnx").is_file()
    assert (prefix / "share/doc/deltann/README.md").is_file()


def test_install_names_no_path_of_the_trees(installed, build_dir, source_dir):
    """No installed file mentions the source tree, the build tree or the prefix it was installed
    to; the one exception is the folder of the Python environments and engine libraries
    (DELTANN_DEPS_DIR), a dependency the installed copy uses where the build found it."""
    _, prefix, staged = installed
    allowed = [v for v in (cache_value(build_dir, "DELTANN_DEPS_DIR"),) if v]
    forbidden = {str(staged)}
    for tree in (source_dir, build_dir):
        forbidden |= {str(tree), str(tree.resolve())}
    found = []
    for file in sorted(p for p in prefix.rglob("*") if p.is_file() and not p.is_symlink()):
        data = file.read_bytes()
        for path in forbidden:
            found += [f"{file.relative_to(prefix)}: {hit!r}"
                      for hit in path_mentions(data, path, allowed)]
    assert not found, "installed files name the trees:\n" + "\n".join(found[:20])


def test_installed_copy_runs_a_campaign_without_the_trees(installed, build_dir, source_dir):
    work, prefix, _ = installed
    demo = prefix / "share" / "deltann" / "demo"
    images = work / "images"
    images.mkdir()
    for name in ("apple.jpg", "orange.jpg"):
        shutil.copy(demo / "images" / name, images / name)
    (work / "images.txt").write_text("images/apple.jpg 948\nimages/orange.jpg 950\n")
    # Nothing points the copy at its files: it must find its engines and demo by itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTANN_")}
    env["DELTANN_CACHE"] = str(work / "cache")
    deltann = str(prefix / "bin" / "deltann")
    campaign = [deltann, "run", "--model", str(demo / "efficientnet-lite0.onnx"),
                "--images", str(work / "images.txt"), "--env", "ort:threads=1",
                "--db", str(work / "campaign.db"), "--quiet"]
    hidden = []
    if can_hide_folders():
        trees = {source_dir.resolve(), build_dir.resolve()}
        # A tree inside the other is hidden with it (and its mount point is hidden too).
        hidden = sorted(t for t in trees if not any(t != o and t.is_relative_to(o) for o in trees))
    for command in ([deltann, "backends"], campaign):
        if hidden:
            command = (["unshare", "--map-root-user", "--mount", "sh", "-c", HIDE_AND_RUN, "sh"]
                       + [str(h) for h in hidden] + ["--"] + command)
        run = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, f"{command}\n{run.stdout}\n{run.stderr}"
        if command[-1] == "backends":
            assert "ort" in run.stdout, run.stdout
    assert query(work / "campaign.db", "SELECT count(*) FROM results")[0][0] == 2
