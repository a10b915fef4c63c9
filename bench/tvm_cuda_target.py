#!/usr/bin/env python3
"""TVM's compile-here, run-there flow for the demo's CUDA variants.

A GPU machine often has a driver and TVM's runtime libraries but neither TVM's compiler nor
deltann's dependencies. This script splits a `deltann run --env tvm:opt=N,device=cuda` measurement
in two:

    pack  (on the build machine, which has the TVM wheel and nvcc but maybe no GPU)
        compiles the demo model for CUDA at each opt level with deltann's own compile step
        (deltann_tools.tvm_compile, the code `deltann run` calls), for the target GPU's arch,
        and writes one folder: the artifacts (identical libraries stored once), the TVM worker,
        the runtime libraries it loads, the preprocessed input tensors of the demo images and a
        manifest.
    run   (on the GPU machine, Python standard library only)
        starts deltann-worker-tvm from that folder and times every artifact on every image
        through the worker protocol (docs/PROTOCOL.md): the same worker, the same clock and the
        same device synchronisation inside the timed region as in a campaign. Prints and writes
        a JSON report: GPU, per-variant load time, first-inference time, median/p90 per image and
        overall, and every output vector (base64 float32) for comparison on the build machine.

Usage:
    bench/tvm_cuda_target.py pack --arch sm_90 --out DIR [--levels 0,1,2,3,4]
                                  [--disable-each P1,P2 --pass-level 3]
    bench/tvm_cuda_target.py run --bundle DIR --report OUT.json [--warmup 10] [--repeat 50]
    bench/tvm_cuda_target.py compare --report OUT.json --db CAMPAIGN.db
        (back on the build machine) compares every GPU output with the outputs a local campaign
        over the same images stored (e.g. ort, reference and tvm on the CPU): max |d|, relative
        L2 and top-1 agreement per pair.
    run ... --capture ENV --capture-dir DIR, then (here) unpack --archive A.tar.xz --out DIR
        captures every kernel output of the named variants on the first image on the GPU and
        brings it back as a folder for `deltann localize --captures CPU_DIR GPU_DIR`.
"""
import argparse
import array
import ast
import base64
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ---- pack ---------------------------------------------------------------------------------

def demo_tensors(deltann, demo, workdir):
    """Runs deltann's own preprocessing (a one-variant campaign) and returns {image key: .npy}."""
    cache = workdir / "cache"
    db = workdir / "prep.db"
    subprocess.run([str(deltann), "run", "--model", str(demo / "efficientnet-lite0.onnx"),
                    "--images", str(demo / "images.txt"), "--env", "ort:opt=all,threads=1",
                    "--db", str(db), "--cache", str(cache), "--repeat", "1", "--warmup", "0",
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    with sqlite3.connect(db) as con:
        rows = con.execute("select key, sha256 from images where status='ok'").fetchall()
    found = {}
    for key, sha in rows:
        hits = list(cache.rglob(sha + ".npy"))
        if len(hits) != 1:
            raise SystemExit(f"preprocessed tensor of {key} not found in {cache}")
        found[key] = hits[0]
    return found


def pack(args):
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "artifacts").mkdir(parents=True)
    (out / "tensors").mkdir()
    (out / "lib").mkdir()
    demo = ROOT / "assets" / "demo"
    spec = json.loads((demo / "efficientnet-lite0.spec.json").read_text())
    python = ROOT / ".deps" / "venv" / "bin" / "python"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    variants, by_digest = [], {}
    # (opt, disable): each level with nothing disabled, then each named pass off in turn at
    # --pass-level (the study's per-pass experiment).
    builds = [(level, "none") for level in filter(None, args.levels.split(","))]
    builds += [(args.pass_level, p) for p in filter(None, args.disable_each.split(","))]
    for level, disable in builds:
        so = out / "artifacts" / (f"opt{level}.so" if disable == "none"
                                  else f"opt{level}-no-{disable}.so")
        run = subprocess.run(
            [str(python), "-m", "deltann_tools.tvm_compile", "--model",
             str(demo / "efficientnet-lite0.onnx"), "--input-name", spec["input"]["name"],
             "--input-shape", ",".join(str(d) for d in spec["input"]["shape"]), "--opt", level,
             "--disable", disable, "--device", "cuda", "--cuda-arch", args.arch,
             "--out", str(so)],
            env=env, capture_output=True, text=True, check=True)
        report = json.loads(run.stdout.strip().splitlines()[-1])
        digest = hashlib.sha256(so.read_bytes()).hexdigest()
        if digest in by_digest:  # same library as an earlier level: keep one copy
            so.unlink()
            so = out / "artifacts" / by_digest[digest]
        else:
            by_digest[digest] = so.name
        variants.append({"env": f"tvm:opt={level},device=cuda,threads=1,disable={disable}",
                         "artifact": f"artifacts/{so.name}", "sha256": digest,
                         "compile_s": report["compile_s"], "target": report["target"]})
    build = Path(args.build_dir)
    worker = out / "deltann-worker-tvm"
    shutil.copy2(build / "deltann-worker-tvm", worker)
    subprocess.run(["strip", str(worker)], check=True)
    site = ROOT / ".deps" / "venv" / "lib" / "python3.11" / "site-packages"
    for lib in [site / "tvm" / "lib" / "libtvm_runtime.so",
                site / "tvm" / "lib" / "libtvm_runtime_cuda.so",
                site / "tvm_ffi" / "lib" / "libtvm_ffi.so",
                Path(args.cudart)]:
        shutil.copy2(lib.resolve(), out / "lib" / lib.name)
    with tempfile.TemporaryDirectory() as tmp:
        images = {}
        for key, npy in demo_tensors(build / "deltann", demo, Path(tmp)).items():
            name = hashlib.sha256(key.encode()).hexdigest()[:16] + ".npy"
            shutil.copy2(npy, out / "tensors" / name)
            images[key] = f"tensors/{name}"
    manifest = {"model": "efficientnet-lite0", "arch": args.arch, "spec": spec,
                # The worker and its runtime libraries expect TVM's lib folder at the path they
                # were built with (RUNPATH, DELTANN_TVM_LIB_DIR); `run` recreates it there.
                "tvm_lib_dir": str(site / "tvm" / "lib"),
                "tvm_ffi_lib_dir": str(site / "tvm_ffi" / "lib"),
                "variants": variants, "images": images}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(json.dumps({"bundle": str(out), "variants": len(variants),
                      "distinct_artifacts": len(by_digest), "images": len(images)}))


# ---- run ----------------------------------------------------------------------------------

class Worker:
    def __init__(self, program, env):
        self.proc = subprocess.Popen([str(program), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        ready = self.reply()
        if ready.get("event") != "ready":
            raise SystemExit(f"worker did not start: {ready} {self.proc.stderr.read()}")

    def reply(self):
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker ended: {self.proc.stderr.read()[-3000:]}")
        return json.loads(line)

    def request(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def quit(self):
        self.proc.stdin.write('{"op":"quit"}\n')
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"


def capture_name(env):
    return "capture-" + "".join(ch if ch.isalnum() or ch in "=-" else "_" for ch in env)


def npy_header(raw):
    """(header length, descr, shape) of a version 1.0 .npy file's bytes."""
    if raw[:6] != b"\x93NUMPY" or raw[6] != 1:
        raise SystemExit("not a version 1.0 .npy file")
    length = int.from_bytes(raw[8:10], "little")
    header = ast.literal_eval(raw[10:10 + length].decode("latin1"))
    return 10 + length, header["descr"], tuple(header["shape"])


def write_npy(path, descr, shape, data):
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data)


def convert_capture(folder, descr_from, descr_to, code_from, code_to):
    for npy in Path(folder).glob("*.npy"):
        raw = npy.read_bytes()
        start, descr, shape = npy_header(raw)
        if descr != descr_from:
            raise SystemExit(f"{npy}: expected {descr_from}, found {descr}")
        values = array.array(code_from)
        values.frombytes(raw[start:])
        write_npy(npy, descr_to, shape, array.array(code_to, values).tobytes())


def shrink_to_float32(folder):
    convert_capture(folder, "<f8", "<f4", "d", "f")


def unpack(args):
    """A capture archive from `run --capture` back into a folder deltann localize reads."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.archive, "r:xz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/" in m.name
                   and ".." not in m.name.split("/")]
        tar.extractall(out, members=members)
    for folder in {out / m.name.split("/")[0] for m in members}:
        convert_capture(folder, "<f4", "<f8", "f", "d")
        print(folder)


def run(args):
    bundle = Path(args.bundle).resolve()
    manifest = json.loads((bundle / "manifest.json").read_text())
    for key in ("tvm_lib_dir", "tvm_ffi_lib_dir"):
        target = Path(manifest[key])
        target.mkdir(parents=True, exist_ok=True)
        for lib in (bundle / "lib").iterdir():
            if not (target / lib.name).exists():
                shutil.copy2(lib, target / lib.name)
    env = dict(os.environ, LD_LIBRARY_PATH=str(bundle / "lib") + ":" +
               os.environ.get("LD_LIBRARY_PATH", ""))
    worker = bundle / "deltann-worker-tvm"
    described = json.loads(subprocess.run([str(worker), "--describe"], env=env,
                                          capture_output=True, text=True, check=True).stdout)
    report = {"gpu": gpu_name(), "worker_devices": described["devices"],
              "tvm_version": described["version"], "arch": manifest["arch"],
              "warmup": args.warmup, "repeat": args.repeat, "variants": []}
    for variant in manifest["variants"]:
        entry = dict(variant, images={})
        w = Worker(worker, env)
        loaded = w.request({"op": "load", "artifact": str(bundle / variant["artifact"]),
                            "env": variant["env"], "spec": manifest["spec"]})
        if loaded.get("event") != "loaded":
            entry["error"] = loaded
            report["variants"].append(entry)
            print(json.dumps({"env": variant["env"], "error": loaded}), flush=True)
            w.quit()
            continue
        entry["load_ms"] = loaded["load_ns"] / 1e6
        all_samples = []
        for i, (key, tensor) in enumerate(sorted(manifest["images"].items())):
            r = w.request({"op": "run", "image": key, "tensor": str(bundle / tensor),
                           "first": i == 0, "warmup": args.warmup, "repeat": args.repeat})
            if r.get("event") != "result":
                entry["images"][key] = {"error": r}
                continue
            samples = [s / 1e6 for s in r["samples_ns"]]
            all_samples += samples
            entry["images"][key] = {"median_ms": statistics.median(samples),
                                    "output": r["output"]}
            if "first_ns" in r:
                entry["first_ms"] = r["first_ns"] / 1e6
        if args.capture_dir and variant["env"] in args.capture:
            # One image's per-kernel tensors on the GPU (the worker's capture op), stored as
            # float32 to halve what travels back; `unpack` restores deltann's float64 layout.
            key, tensor = sorted(manifest["images"].items())[0]
            out = Path(args.capture_dir) / capture_name(variant["env"])
            c = w.request({"op": "capture", "tensor": str(bundle / tensor), "out_dir": str(out)})
            entry["capture"] = {"image": key, "reply": c}
            if c.get("event") == "captured":
                shrink_to_float32(out)
                archive = Path(args.capture_dir) / (out.name + ".tar.xz")
                with tarfile.open(archive, "w:xz") as tar:
                    tar.add(out, arcname=out.name)
                shutil.rmtree(out)
        w.quit()
        if all_samples:
            all_samples.sort()
            entry["median_ms"] = statistics.median(all_samples)
            entry["p90_ms"] = all_samples[int(0.9 * (len(all_samples) - 1))]
        report["variants"].append(entry)
        print(json.dumps({k: entry.get(k) for k in
                          ("env", "load_ms", "first_ms", "median_ms", "p90_ms", "error")}),
              flush=True)
    Path(args.report).write_text(json.dumps(report))
    print(json.dumps({"gpu": report["gpu"], "worker_devices": report["worker_devices"]}))


# ---- compare ------------------------------------------------------------------------------

def floats(blob_or_b64, is_b64):
    raw = base64.b64decode(blob_or_b64) if is_b64 else blob_or_b64
    return struct.unpack(f"<{len(raw) // 4}f", raw)


def compare(args):
    report = json.loads(Path(args.report).read_text())
    with sqlite3.connect(args.db) as con:
        rows = con.execute("select v.env, i.key, r.output from results r join variants v on "
                           "v.id = r.variant_id join images i on i.id = r.image_id "
                           "where r.output is not null").fetchall()
    local = {}
    for env, key, blob in rows:
        local.setdefault(env, {})[key] = floats(blob, False)
    print(f"GPU: {report['gpu']} (arch {report['arch']}, TVM {report['tvm_version']})")
    print(f"{'GPU variant':44} {'median ms':>9}  {'vs local variant':36} {'max |d|':>9} "
          f"{'rel L2':>9} {'top-1 same':>10}")
    for v in report["variants"]:
        if "error" in v:
            print(f"{v['env']:44} error: {v['error'].get('message', v['error'])}")
            continue
        for env, outputs in sorted(local.items()):
            worst = rel = 0.0
            same = both = 0
            for key, image in v["images"].items():
                if "output" not in image or key not in outputs:
                    continue
                a, b = floats(image["output"], True), outputs[key]
                worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
                num = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5
                rel = max(rel, num / max(sum(y * y for y in b) ** 0.5, 1e-30))
                same += a.index(max(a)) == b.index(max(b))
                both += 1
            print(f"{v['env']:44} {v.get('median_ms', float('nan')):9.3f}  {env:36} "
                  f"{worst:9.2e} {rel:9.2e} {same:>4}/{both:<5}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--arch", required=True, help="CUDA arch of the target GPU, e.g. sm_90")
    p.add_argument("--out", required=True)
    p.add_argument("--levels", default="0,1,2,3,4")
    p.add_argument("--disable-each", default="", help="passes to switch off one at a time")
    p.add_argument("--pass-level", default="3", help="the opt level of --disable-each")
    p.add_argument("--build-dir", default=str(ROOT / "build" / "release"))
    p.add_argument("--cudart", default="/usr/local/cuda/lib64/libcudart.so.13")
    r = sub.add_parser("run")
    r.add_argument("--bundle", required=True)
    r.add_argument("--report", required=True)
    r.add_argument("--warmup", type=int, default=10)
    r.add_argument("--repeat", type=int, default=50)
    r.add_argument("--capture", action="append", default=[],
                   help="also capture every kernel output of this variant (env string) on the "
                        "first image (repeatable)")
    r.add_argument("--capture-dir", help="where the capture archives go")
    u = sub.add_parser("unpack")
    u.add_argument("--archive", required=True)
    u.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--report", required=True)
    c.add_argument("--db", required=True)
    args = ap.parse_args()
    return {"pack": pack, "run": run, "compare": compare, "unpack": unpack}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
