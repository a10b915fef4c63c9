#!/usr/bin/env python3
"""How often `deltann localize --b-model` names the right layer and the right kind of change, and
how long one case takes: every kind of tests/pylib/deltann_faults.py at each of its three positions
in the demo model, one localize run per case (ONNX Runtime, opt=disable, one thread, apple.jpg).
Prints a Markdown table (docs/LOCALIZE.md, "Kinds of change") and, with --json, the cases.

  bench/localize_kinds.py --deltann build/ci/deltann [--demo assets/demo] [--json out.json]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "pylib"))

import onnx  # noqa: E402

from deltann_faults import KINDS, POSITIONS, cause_matches, inject  # noqa: E402

ENV = "ort:opt=disable,threads=1"


def run_case(deltann, model_path, image, model, kind, position, folder):
    fault = inject(model, kind, position)
    faulty = folder / f"{kind}_{position}.onnx"
    onnx.save(fault.model, str(faulty))
    start = time.monotonic()
    proc = subprocess.run([str(deltann), "localize", "--model", str(model_path), "--image",
                           str(image), "--a", ENV, "--b", ENV, "--b-model", str(faulty), "--json"],
                          capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"localize failed on {kind} at {position}: {proc.stderr}")
    report = json.loads(proc.stdout)
    layer_right, kind_right = cause_matches(report, fault)
    named = [c.get("kind") for c in report.get("cause", [])]
    return {"kind": kind, "position": position, "expected": fault.kind, "named": named,
            "jump": (report.get("jump") or {}).get("name"), "expected_jump": fault.jump,
            "layer_right": layer_right, "kind_right": kind_right, "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltann", required=True, type=Path)
    parser.add_argument("--demo", type=Path, default=Path("assets/demo"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model_path = (args.demo / "efficientnet-lite0.onnx").resolve()
    image = (args.demo / "images" / "apple.jpg").resolve()
    model = onnx.load(str(model_path))
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            for position in POSITIONS:
                cases.append(run_case(args.deltann, model_path, image, model, kind, position,
                                      Path(tmp)))
                c = cases[-1]
                print(f"{kind:18} {position:7} layer {c['layer_right']!s:5} kind "
                      f"{c['kind_right']!s:5} {c['seconds']:.2f} s {c['named']}", file=sys.stderr)
    print("| injected change | expected kind | right layer | right kind | s per case |")
    print("|---|---|---|---|---|")
    for kind in KINDS:
        rows = [c for c in cases if c["kind"] == kind]
        print(f"| {kind} | `{rows[0]['expected']}` | {sum(c['layer_right'] for c in rows)}/"
              f"{len(rows)} | {sum(c['kind_right'] for c in rows)}/{len(rows)} | "
              f"{sum(c['seconds'] for c in rows) / len(rows):.2f} |")
    total = len(cases)
    print(f"| all | | {sum(c['layer_right'] for c in cases)}/{total} | "
          f"{sum(c['kind_right'] for c in cases)}/{total} | "
          f"{sum(c['seconds'] for c in cases) / total:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
