"""The build enforces the layering (docs/BUILD.md): a layer's include path holds its own headers
and those of the layers below, so a lower layer cannot include a higher layer's header. Checked by
preprocessing one line with the include flags each layer library is compiled with
(compile_commands.json of the build folder)."""
import json
import shlex
import subprocess

import pytest

from deltann_testlib import env_path


def include_flags(build_dir, layer):
    """The -I/-isystem flags of the first source the library deltann_<layer> compiles."""
    commands = json.loads((build_dir / "compile_commands.json").read_text())
    marker = f"CMakeFiles/deltann_{layer}.dir/"
    for entry in commands:
        if marker in entry.get("output", entry["command"]):
            args = shlex.split(entry["command"])
            flags = []
            for i, arg in enumerate(args):
                if arg in ("-I", "-isystem"):
                    flags += [arg, args[i + 1]]
                elif arg.startswith("-I"):
                    flags.append(arg)
            return args[0] if args[0] != "ccache" else args[1], flags
    pytest.skip(f"no source of deltann_{layer} in compile_commands.json")


def preprocesses(build_dir, layer, header):
    compiler, flags = include_flags(build_dir, layer)
    run = subprocess.run([compiler, "-std=c++20", "-E", "-x", "c++", "-", "-o", "/dev/null", *flags],
                         input=f'#include "{header}"\n', capture_output=True, text=True,
                         timeout=120)
    return run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def build_dir():
    folder = env_path("DELTANN_BUILD_DIR", "the build folder")
    if not (folder / "compile_commands.json").is_file():
        pytest.skip(f"{folder} has no compile_commands.json")
    return folder


@pytest.mark.parametrize("layer, header", [
    ("data", "deltann/spec.h"), ("store", "deltann/store.h"), ("run", "run/builder.h"),
    ("run", "deltann/store.h"), ("report", "deltann/compare.h")])
def test_a_layer_sees_its_own_headers_and_those_below(build_dir, layer, header):
    ok, stderr = preprocesses(build_dir, layer, header)
    assert ok, stderr


@pytest.mark.parametrize("layer, header", [
    ("core", "deltann/dataset.h"), ("data", "deltann/campaign.h"), ("store", "run/builder.h"),
    ("analysis", "deltann/campaign.h"), ("run", "deltann/report.h"), ("core", "run/worker.h")])
def test_a_layer_cannot_include_a_higher_layers_header(build_dir, layer, header):
    ok, stderr = preprocesses(build_dir, layer, header)
    assert not ok, f"deltann_{layer} can include {header}"
    assert "No such file" in stderr, stderr
