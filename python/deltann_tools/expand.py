"""Natural input expansion: many variants of real photos by the ImageNet-C corruptions.

    expand.py --manifest MANIFEST.json --out OUT --cache CACHE
              --corruptions NAME,... --severities 1,2,... --seed N

MANIFEST.json lists the source images that `deltann expand` took from a dataset:
`{"images": [{"key": ..., "path": ..., "label": 3 | null, "sha256": ...}, ...]}`. For each usable
image the tool writes into OUT its original (the file's own bytes, transform "original") and one
PNG per corruption and severity, made by corrupt-tta (ImageNet-C's noise, blur, weather and
digital corruptions). It writes OUT/images.txt (a list file `deltann run --images` reads: one
`name label  # what it is` per line, each output with its source's label) and OUT/provenance.json
(per output file name: the source's key, path and sha256, the transform, its severity, the seed
and the seed of the corruption call).

Deterministic: corrupt-tta draws from NumPy's global generator, which is seeded before each call
from (seed, source sha256, corruption, severity), so the same inputs and seed give byte-identical
files whatever the order or the other corruptions asked for. Cached: each corrupted image is kept
in CACHE under a key of those and the tool's identity (this file and the libraries' versions), so
a second run copies it instead of computing it again.

An image that cannot be decoded is reported in the reply's `skipped` with the reason; the others
go on. The reply is one JSON line on stdout: counts, the skipped images, and the seconds spent per
corruption. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

# The corruptions in corrupt-tta's order, by ImageNet-C's families.
FAMILIES: dict[str, list[str]] = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"],
    "blur": ["gaussian_blur", "glass_blur", "defocus_blur", "motion_blur", "zoom_blur"],
    "weather": ["fog", "frost", "snow", "spatter"],
    "digital": [
        "contrast",
        "brightness",
        "saturate",
        "jpeg_compression",
        "pixelate",
        "elastic_transform",
    ],
}
CORRUPTIONS = [name for names in FAMILIES.values() for name in names]
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}


def library_versions() -> dict[str, str]:
    """The versions of everything a corrupted image's bytes depend on."""
    import corrupt_tta
    import cv2
    import PIL
    import scipy
    import skimage

    return {
        "corrupt-tta": corrupt_tta.__version__,
        "numpy": np.__version__,
        "opencv-python": cv2.__version__,
        "scikit-image": skimage.__version__,
        "scipy": scipy.__version__,
        "pillow": PIL.__version__,
    }


def tool_identity() -> str:
    """This file's hash and the libraries' versions: part of every cached image's key."""
    text = Path(__file__).read_bytes() + json.dumps(library_versions(), sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()


def call_seed(seed: int, source_sha: str, corruption: str, severity: int) -> int:
    """The seed of one corruption call, < 2**32 as np.random.seed needs."""
    text = f"{seed}|{source_sha}|{corruption}|{severity}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big")


def seed_impulse_noise_from_numpy() -> None:
    """corrupt-tta's impulse_noise calls scikit-image's random_noise without a seed, which draws
    from fresh OS entropy; give it a seed drawn from NumPy's global generator instead, so that
    seeding that generator makes impulse_noise deterministic like the other corruptions."""
    import corrupt_tta.corruptions as module
    from skimage.util import random_noise

    def seeded_random_noise(image: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("seed", int(np.random.randint(0, 2**32 - 1, dtype=np.int64)))
        return random_noise(image, *args, **kwargs)

    module.random_noise = seeded_random_noise


def corrupt_image(rgb: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """One corrupted copy of `rgb` (H×W×3 uint8) as uint8. corrupt-tta returns float64, float32
    or uint8 in [0, 255] depending on the corruption; values are clipped and truncated to uint8 as
    ImageNet-C saved its images."""
    from corrupt_tta import corrupt

    np.random.seed(seed)
    out = np.asarray(corrupt(rgb, severity=severity, corruption_name=corruption))
    return np.clip(out, 0, 255).astype(np.uint8)


def read_rgb(path: Path) -> np.ndarray:
    """The image as H×W×3 uint8 RGB; raises OSError or ValueError when it cannot be decoded."""
    with Image.open(path) as image:
        image.load()
        # The camera's orientation, as deltann's decoder (OpenCV) applies it.
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def write_png(rgb: np.ndarray, path: Path) -> None:
    """PNG, lossless, with no timestamp or other metadata, so equal pixels give equal bytes."""
    Image.fromarray(rgb).save(path, format="PNG", optimize=False, compress_level=6)


def atomic_copy(source: Path, target: Path) -> None:
    """Copies `source` to `target` through a temporary file beside it: `target` is absent or
    whole, never half-written."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_stem(key: str, sha: str) -> str:
    """A file name for the source: its own name (characters a list file and shells take as they
    are) and the start of its hash, which keeps two sources of the same name apart."""
    stem = Path(key).stem or "image"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return f"{safe}-{sha[:8]}"


def expand(args: argparse.Namespace) -> dict[str, Any]:
    manifest = json.loads(Path(args.manifest).read_text())
    out = Path(args.out)
    cache = Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    seed_impulse_noise_from_numpy()
    identity = tool_identity()

    provenance: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    skipped: list[dict[str, str]] = []
    seconds = dict.fromkeys(args.corruptions, 0.0)
    made = dict.fromkeys(args.corruptions, 0)
    cached = 0

    def add(name: str, label: Any, entry: dict[str, Any], record: dict[str, Any]) -> None:
        provenance[name] = {
            "source": entry["key"],
            "source_path": entry["path"],
            "source_sha256": entry["sha256"],
            **record,
        }
        what = record["transform"]
        if "severity" in record:
            what += f" severity {record['severity']}"
        label_text = "" if label is None else f" {label}"
        lines.append(f"{name}{label_text}  # {what} of {entry['key']}")

    for entry in manifest["images"]:
        source = Path(entry["path"])
        try:
            rgb = read_rgb(source)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            # PIL's decoders raise all of these
            skipped.append({"key": entry["key"], "path": str(source), "reason": str(e)})
            print(f"skipped {source}: {e}", file=sys.stderr, flush=True)
            continue
        stem = output_stem(entry["key"], entry["sha256"])
        label = entry.get("label")

        original = f"{stem}{source.suffix.lower()}"
        atomic_copy(source, out / original)
        add(original, label, entry, {"transform": "original"})

        for corruption in args.corruptions:
            for severity in args.severities:
                seed = call_seed(args.seed, entry["sha256"], corruption, severity)
                key = hashlib.sha256(
                    f"{identity}|{entry['sha256']}|{corruption}|{severity}|{seed}".encode()
                ).hexdigest()
                kept = cache / f"{key}.png"
                if kept.is_file():
                    cached += 1
                else:
                    start = time.perf_counter()
                    try:
                        pixels = corrupt_image(rgb, corruption, severity, seed)
                    except ValueError as e:  # corrupt-tta refuses e.g. an image under 2×2
                        reason = f"{corruption} severity {severity}: {e}"
                        skipped.append({"key": entry["key"], "path": str(source), "reason": reason})
                        print(f"skipped {source}: {reason}", file=sys.stderr, flush=True)
                        continue
                    seconds[corruption] += time.perf_counter() - start
                    made[corruption] += 1
                    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tmp-", suffix=".png")
                    os.close(fd)
                    try:
                        write_png(pixels, Path(tmp))
                        os.replace(tmp, kept)
                    except BaseException:
                        Path(tmp).unlink(missing_ok=True)
                        raise
                name = f"{stem}__{corruption}-{severity}.png"
                atomic_copy(kept, out / name)
                add(
                    name,
                    label,
                    entry,
                    {
                        "transform": corruption,
                        "family": FAMILY_OF[corruption],
                        "severity": severity,
                        "seed": args.seed,
                        "call_seed": seed,
                        "library": "corrupt-tta " + library_versions()["corrupt-tta"],
                    },
                )
        print(f"expanded {entry['key']}", file=sys.stderr, flush=True)

    header = [
        "# Made by deltann expand: each line `file label  # transform of source`;",
        "# provenance.json holds each file's source, transform, severity and seeds.",
    ]
    (out / "images.txt").write_text("\n".join(header + lines) + "\n")
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
    return {
        "outputs": len(provenance),
        "originals": sum(1 for p in provenance.values() if p["transform"] == "original"),
        "computed": sum(made.values()),
        "cached": cached,
        "skipped": skipped,
        "seconds": seconds,
        "computed_per_corruption": made,
        "library_versions": library_versions(),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--describe", action="store_true")
    parser.add_argument("--manifest")
    parser.add_argument("--out")
    parser.add_argument("--cache")
    parser.add_argument("--corruptions", default=",".join(CORRUPTIONS))
    parser.add_argument("--severities", default="1,2,3,4,5")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.corruptions = [c for c in args.corruptions.split(",") if c]
    unknown = [c for c in args.corruptions if c not in CORRUPTIONS]
    if unknown:
        parser.error(f"unknown corruption {', '.join(unknown)}; known: {', '.join(CORRUPTIONS)}")
    args.severities = [int(s) for s in args.severities.split(",") if s]
    if any(s < 1 or s > 5 for s in args.severities):
        parser.error("severities are 1 to 5")
    if not args.describe and not (args.manifest and args.out and args.cache):
        parser.error("--manifest, --out and --cache are needed")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.describe:
        reply: dict[str, Any] = {"families": FAMILIES, "library_versions": library_versions()}
    else:
        reply = expand(args)
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
