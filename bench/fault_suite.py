#!/usr/bin/env python3
"""The fault suite: how often `deltann localize` names the right layer and the right kind of an
injected change, and `deltann repair` undoes it, on the demo model and the study architectures.

Per model x kind x position (tests/pylib/deltann_faults.py: `positions()` picks the first, the
median and the last Conv that every kind can change), one changed copy of the model is written
and run as B (`--b-model`) against the source as A, both `ort:opt=disable,threads=1`:

  localize  --image apple.jpg           right layer: the first jump is the changed node's output;
                                        right kind: a cause of the expected kind and details
  repair    --image-set (N photos)      repaired: verdict `repaired` and the held-out images'
                                        max |d| within the tolerance (1e-4) with every label
                                        agreeing

Writes OUT/cases.json (every case, with why it failed; re-running resumes from it), OUT/cases.csv
and OUT/summary.md (per model: k/n with Clopper-Pearson 95 % intervals, median seconds per case;
per kind; the failures).

  bench/fault_suite.py --deltann build/ci/deltann --out fault-suite \\
      [--models demo,mobilenet_v2,resnet101,inception_v3] [--kinds a,b,...] \\
      [--images N | --images resnet101=2,inception_v3=2]

The study models are made by `scripts/study-models` (assets/study/<name>/<name>.onnx).
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import beta

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pylib"))

import onnx  # noqa: E402
from deltann_faults import cause_matches, inject, positions  # noqa: E402

ENV = "ort:opt=disable,threads=1"
TOLERANCE = 1e-4
# One kind of each family: a dropped input, a rearrangement, a rescale, an offset, a rounding
# (int8, fp16), an attribute, an operator.
DEFAULT_KINDS = ["missing", "transpose", "rescaled", "offset", "quantised_channel", "fp16",
                 "padding", "op_replaced"]
DEFAULT_MODELS = ["demo", "mobilenet_v2", "resnet101", "inception_v3"]
LOCALIZE_IMAGE = "apple.jpg"


def model_files(name):
    """(the ONNX file, the photo folder) of a model of the suite."""
    if name == "demo":
        return ROOT / "assets/demo/efficientnet-lite0.onnx", ROOT / "assets/demo/images"
    return ROOT / f"assets/study/{name}/{name}.onnx", ROOT / "assets/study/images"


def image_set(photos, count, folder):
    """A folder of the first `count` photos (by name; all when 0), links to the originals, with
    the localize image always among them."""
    names = sorted(p.name for p in photos.iterdir() if p.is_file())
    if count:
        chosen = [LOCALIZE_IMAGE, *[n for n in names if n != LOCALIZE_IMAGE][:count - 1]]
    else:
        chosen = names
    folder.mkdir(parents=True, exist_ok=True)
    for n in chosen:
        link = folder / n
        if not link.exists():
            link.symlink_to(photos / n)
    return folder


def deltann(binary, cache, *args):
    """Runs deltann with an argument vector; (rc, stdout, stderr, seconds)."""
    start = time.monotonic()
    proc = subprocess.run([str(binary), *map(str, args), "--cache", str(cache)],
                          capture_output=True, text=True, timeout=3600)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def run_localize(binary, cache, model_path, image, faulty_path, fault):
    rc, out, err, seconds = deltann(binary, cache, "localize", "--model", model_path, "--image",
                                    image, "--a", ENV, "--b", ENV, "--b-model", faulty_path,
                                    "--json")
    result = {"localize_s": round(seconds, 2), "localize_rc": rc}
    if rc not in (0, 3):
        return {**result, "layer_right": False, "kind_right": False,
                "localize_why": f"exit {rc}: {err.strip()[-400:]}"}
    report = json.loads(out)
    layer_right, kind_right = cause_matches(report, fault)
    jump = (report.get("jump") or {}).get("name")
    causes = [{"kind": c.get("kind"), "details": c.get("details")} for c in
              report.get("cause", [])]
    why = []
    if not layer_right:
        why.append(f"first jump {jump!r}, expected {fault.jump!r}")
    if not kind_right:
        why.append(f"causes {causes}, expected {fault.kind} with {fault.details}")
    return {**result, "jump": jump, "causes": causes, "layer_right": layer_right,
            "kind_right": kind_right, "localize_why": "; ".join(why)}


def run_repair(binary, cache, model_path, images, faulty_path, fault, folder):
    fixed = folder / "fixed.onnx"
    rc, out, err, seconds = deltann(binary, cache, "repair", "--model", model_path,
                                    "--image-set", images, "--a", ENV, "--b", ENV, "--b-model",
                                    faulty_path, "-o", fixed, "--tolerance", TOLERANCE, "--json")
    result = {"repair_s": round(seconds, 2), "repair_rc": rc}
    if rc not in (0, 3):
        return {**result, "repaired": False, "repair_why": f"exit {rc}: {err.strip()[-400:]}"}
    record = json.loads(out)
    held = record["held_out"]
    after = held["after"]
    kept = [e for e in record["edits"] if e["kept"]]
    repaired = (record["verdict"] == "repaired" and after["max_abs"] <= TOLERANCE
                and after["labels_agree"] == after["images"])
    why = ""
    if not repaired:
        why = (f"verdict {record['verdict']}: {record.get('reason', '')}; held-out max |d| "
               f"{held['before']['max_abs']:.3g} -> {after['max_abs']:.3g}, edits "
               f"{[(e['node'], e['what'], e['kept'], e['action']) for e in record['edits']]}")
    return {**result, "verdict": record["verdict"], "repaired": repaired,
            "kept_at": sorted({e["node"] for e in kept}), "search_images": len(
                record["split"]["search"]), "held_out_images": after["images"],
            "held_out_before": held["before"]["max_abs"], "held_out_after": after["max_abs"],
            "evaluations": record.get("evaluations"), "repair_why": why}


def run_case(binary, cache, name, model, model_path, images, kind, position, work):
    fault = inject(model, kind, position)
    folder = work / f"{name}_{kind}_{position}"
    folder.mkdir(parents=True, exist_ok=True)
    faulty_path = folder / "faulty.onnx"
    onnx.save(fault.model, str(faulty_path))
    case = {"model": name, "kind": kind, "position": position, "node": fault.node,
            "expected_jump": fault.jump, "expected_kind": fault.kind,
            "expected_details": fault.details, "localize_image": LOCALIZE_IMAGE,
            "repair_images": len(list(images.iterdir()))}
    case |= run_localize(binary, cache, model_path, images / LOCALIZE_IMAGE, faulty_path, fault)
    case |= run_repair(binary, cache, model_path, images, faulty_path, fault, folder)
    for f in folder.iterdir():  # the copies are as large as the model: keep only the record
        if f.suffix == ".onnx":
            f.unlink()
    return case


def clopper_pearson(k, n, level=0.95):
    if n == 0:
        return (0.0, 1.0)
    a = (1 - level) / 2
    low = 0.0 if k == 0 else beta.ppf(a, k, n - k + 1)
    high = 1.0 if k == n else beta.ppf(1 - a, k + 1, n - k)
    return (float(low), float(high))


def rate(cases, field):
    k, n = sum(bool(c[field]) for c in cases), len(cases)
    low, high = clopper_pearson(k, n)
    return f"{k}/{n} [{low:.2f}, {high:.2f}]"


def summary(cases, models, kinds):
    lines = ["| model | cases | images (repair) | right layer | right kind | repaired | "
             "median s localize | median s repair |", "|---|---|---|---|---|---|---|---|"]
    for name in [*models, "all"]:
        rows = cases if name == "all" else [c for c in cases if c["model"] == name]
        if not rows:
            continue
        images = sorted({c["repair_images"] for c in rows})
        lines.append(
            f"| {name} | {len(rows)} | {'/'.join(map(str, images))} | "
            f"{rate(rows, 'layer_right')} | {rate(rows, 'kind_right')} | "
            f"{rate(rows, 'repaired')} | {statistics.median(c['localize_s'] for c in rows):.1f} | "
            f"{statistics.median(c['repair_s'] for c in rows):.1f} |")
    lines += ["", "| kind | expected | " + " | ".join(m for m in models if any(
        c["model"] == m for c in cases)) + " |"]
    present = [m for m in models if any(c["model"] == m for c in cases)]
    lines.append("|---|---|" + "---|" * len(present))
    for kind in kinds:
        rows = [c for c in cases if c["kind"] == kind]
        if not rows:
            continue
        cells = []
        for m in present:
            mine = [c for c in rows if c["model"] == m]
            cells.append("/".join(f"{sum(c[f] for c in mine)}" for f in
                                  ("layer_right", "kind_right", "repaired")) + f" of {len(mine)}")
        lines.append(f"| {kind} | `{rows[0]['expected_kind']}` | " + " | ".join(cells) + " |")
    failures = [c for c in cases if not (c["layer_right"] and c["kind_right"] and c["repaired"])]
    if failures:
        lines += ["", "Failures:", ""]
        for c in failures:
            why = "; ".join(w for w in (c.get("localize_why"), c.get("repair_why")) if w)
            lines.append(f"- {c['model']} {c['kind']} {c['position']} ({c['node']}): {why}")
    return "\n".join(lines) + "\n"


def parse_images(text, models):
    """`N` for every model or `model=N,...` (others: all photos) -> {model: N}; 0 means all."""
    if "=" not in text:
        return {m: int(text) for m in models}
    counts = {m: 0 for m in models}
    for item in text.split(","):
        m, n = item.split("=")
        counts[m] = int(n)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltann", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    parser.add_argument("--images", default="0",
                        help="photos per repair image set: N, or model=N,... (0: all 9)")
    args = parser.parse_args()
    models, kinds = args.models.split(","), args.kinds.split(",")
    counts = parse_images(args.images, models)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "cases.json"
    cases = json.loads(store.read_text()) if store.exists() else []
    done = {(c["model"], c["kind"], c["position"]) for c in cases}
    cache = args.out / "cache"
    cache.mkdir(exist_ok=True)
    for name in models:
        model_path, photos = model_files(name)
        if not model_path.is_file():
            print(f"{name}: {model_path} missing (scripts/study-models --models {name}); "
                  "skipped", file=sys.stderr)
            continue
        model = onnx.load(str(model_path))
        where = positions(model)
        print(f"{name}: positions {where}", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            images = image_set(photos, counts.get(name, 0), Path(tmp) / "images")
            for kind in kinds:
                for position in where:
                    if (name, kind, position) in done:
                        continue
                    c = run_case(args.deltann, cache, name, model, model_path, images, kind,
                                 position, Path(tmp))
                    cases.append(c)
                    store.write_text(json.dumps(cases, indent=1))
                    print(f"{name:13} {kind:17} {position:6} layer {c['layer_right']!s:5} kind "
                          f"{c['kind_right']!s:5} repaired {c['repaired']!s:5} "
                          f"{c['localize_s']:6.1f} s + {c['repair_s']:6.1f} s", file=sys.stderr)
    with open(args.out / "cases.csv", "w", newline="") as f:
        fields = ["model", "kind", "position", "node", "expected_kind", "layer_right",
                  "kind_right", "repaired", "verdict", "repair_images", "localize_s", "repair_s",
                  "localize_why", "repair_why"]
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(cases)
    text = summary(cases, models, kinds)
    (args.out / "summary.md").write_text(text)
    print(text)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
