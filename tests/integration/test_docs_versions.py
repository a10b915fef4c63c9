"""The engine versions the documentation quotes are the ones this build runs: for each engine
`deltann backends --json` reports, every "<engine> X.Y" in the README and docs/ENVIRONMENTS.md names
the reported major.minor version, the README's library table names it, and the engine's own docs
page quotes it (that page may also discuss other versions, e.g. why an older one is not used).
docs/PERFORMANCE.md is a dated record of measurements and may quote the versions measured then."""
import json
import re
import subprocess

import pytest

# Engine name -> (how the docs name it, as a regular expression; its own docs page or None).
DOCS_NAMES = {
    "ort": ("ONNX Runtime", None),
    "opencv": ("OpenCV", None),
    "tvm": ("TVM", "TVM.md"),
    "libtorch": ("LibTorch", "LIBTORCH.md"),
    "openvino": ("OpenVINO", "OPENVINO.md"),
    "armnn": ("Arm NN", "TFLITE.md"),
    "tflite": ("`?ai-edge-litert`?", "TFLITE.md"),
    "tensorflow": ("TensorFlow", "TENSORFLOW.md"),
}


def major_minor(version):
    m = re.search(r"(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else None


@pytest.fixture(scope="module")
def engines(deltann_bin):
    proc = subprocess.run([str(deltann_bin), "backends", "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {e["name"]: e["version"] for e in json.loads(proc.stdout) if "version" in e}


def quoted_versions(text, name):
    return re.findall(r"(?<![\w-])" + name + r"\** (\d+\.\d+)", text)


@pytest.mark.parametrize("engine", sorted(DOCS_NAMES))
def test_quoted_versions_match_the_built_engines(engine, engines, source_dir):
    if engine not in engines:
        pytest.skip(f"engine {engine} is not built here")
    name, page = DOCS_NAMES[engine]
    version = major_minor(engines[engine])
    assert version, f"{engine} reports no version: {engines[engine]!r}"
    readme = (source_dir / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines()
                      if line.startswith("|") and line.count("|") >= 3)
    assert version in quoted_versions(table, name), (
        f"README's library table does not quote {name} {version} "
        f"(`deltann backends` reports {engines[engine]})")
    if page:
        assert version in quoted_versions((source_dir / "docs" / page).read_text(), name), (
            f"docs/{page} does not quote {name} {version}")
    pages = {"README.md": readme,
             "docs/ENVIRONMENTS.md": (source_dir / "docs" / "ENVIRONMENTS.md").read_text()}
    for where, text in pages.items():
        wrong = sorted(set(quoted_versions(text, name)) - {version})
        assert not wrong, (f"{where} quotes {name} {wrong}; `deltann backends` reports "
                           f"{engines[engine]}")
