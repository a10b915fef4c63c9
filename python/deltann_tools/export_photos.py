#!/usr/bin/env python3
"""Prepare deltann's photo set: every real photo that Debian's opencv-doc and scikit-image ship
and that shows an ImageNet class, with its class id, plus a few real photos without one, as a list
file `deltann expand` and `deltann run` read.

Usage: PYTHONPATH=python python -m deltann_tools.export_photos --out assets/photos
           [--classes assets/demo/classes.txt]

The set is the demo's photos (export_demo.PHOTOS) and the ones below; `deltann expand` turns each
into 96 inputs (19 corruptions x 5 severities + the photo), so its 24 photos give 2,304 inputs.
docs/DATASETS.md ("The photo set") lists each photo's source and label.
"""
import argparse
from pathlib import Path

from deltann_tools.export_demo import OPENCV_DATA, SKIMAGE_DATA, copy_maybe_gz, die
from deltann_tools.export_demo import PHOTOS as DEMO_PHOTOS

OPENCV_EXAMPLES = OPENCV_DATA.parent
Photo = tuple[Path, int | None, str | None, str]

# (source file, ImageNet class id or None, the class name's first word as the classes file has
# it (checked, so that a wrong id cannot pass unseen), why). A photo without a class (None) has
# no ImageNet class that honestly names what it shows: it counts for the differences between
# variants, not for accuracy.
MORE_PHOTOS: list[Photo] = [
    (OPENCV_EXAMPLES / "dnn_superres" / "butterfly.png", 323, "monarch",
     "monarch butterfly's wing, close up"),
    (OPENCV_DATA / "fruits.jpg", 950, "orange",
     "a halved orange fills the centre (lemon, lime and kiwi at the edges)"),
    (OPENCV_DATA / "aloeL.jpg", 738, "pot", "aloe in a flowerpot"),
    (OPENCV_EXAMPLES / "alphamat" / "input_images" / "plant.jpg", 738, "pot",
     "plant in a flowerpot"),
    (OPENCV_DATA / "right.jpg", 921, "book", "two books, covers facing the camera"),
    (OPENCV_EXAMPLES / "text" / "scenetext01.jpg", 919, "street", "'double parking' street sign"),
    (OPENCV_EXAMPLES / "text" / "scenetext02.jpg", 919, "street", "direction street sign"),
    (OPENCV_EXAMPLES / "hfs" / "data" / "001.jpg", 975, "lakeside", "lake shore"),
    (SKIMAGE_DATA / "camera.png", 872, "tripod", "cameraman at a camera on a tripod (grey)"),
    (OPENCV_EXAMPLES / "hfs" / "data" / "000.jpg", None, None,
     "European robin: ImageNet's 'robin' is the American robin"),
    (OPENCV_DATA / "butterfly.jpg", None, None,
     "lime swallowtail: ImageNet has no swallowtail class"),
    (SKIMAGE_DATA / "motorcycle_left.png", None, None,
     "motorcycle: ImageNet has only moped and motor scooter"),
    (OPENCV_DATA / "licenseplate_motion.jpg", None, None,
     "a saloon car's rear, motion-blurred: ImageNet has no saloon or licence plate class"),
    (SKIMAGE_DATA / "astronaut.png", None, None, "astronaut portrait: no ImageNet class"),
    (OPENCV_EXAMPLES / "hfs" / "data" / "002.jpg", None, None,
     "lone tree in a meadow: no ImageNet class"),
]


def photo_set() -> list[Photo]:
    """The demo's photos and MORE_PHOTOS: (source, label, expected name, why), each once."""
    photos: list[Photo] = [(src, label, None, why) for src, label, why in DEMO_PHOTOS]
    photos += MORE_PHOTOS
    seen: set[Path] = set()
    unique: list[Photo] = []
    for photo in photos:
        if photo[0] not in seen:
            seen.add(photo[0])
            unique.append(photo)
    return unique


def output_name(src: Path) -> str:
    """The file name in the set: the source's own for the two data folders, else its path under
    opencv-doc's examples with '-' for '/' (three of them are called 00N.jpg, two butterfly)."""
    if src.parent in (OPENCV_DATA, SKIMAGE_DATA):
        return src.name
    return "-".join(src.relative_to(OPENCV_EXAMPLES).parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--classes", type=Path,
                    default=OPENCV_DATA / "dnn" / "classification_classes_ILSVRC2012.txt",
                    help="the model's 1000 ImageNet class names, one per line")
    args = ap.parse_args()
    classes_file = args.classes
    if not classes_file.is_file():
        die(f"missing the classes file {classes_file}; install the Debian package opencv-doc")
    classes = classes_file.read_text().splitlines()
    if len(classes) != 1000:
        die(f"{classes_file} has {len(classes)} lines, expected 1000")

    out = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = ["# <image relative to this file> [<ImageNet class id>]  # class name: why",
             "# Photos without an id show no ImageNet class: they count for differences only."]
    labelled = 0
    for src, label, expected, why in photo_set():
        name = output_name(src)
        copy_maybe_gz(src, out / "images" / name)
        if label is None:
            lines.append(f"images/{name}  # no class: {why}")
            continue
        if expected and not classes[label].lower().startswith(expected):
            die(f"class {label} of {src} is '{classes[label]}', not '{expected}...'")
        labelled += 1
        lines.append(f"images/{name} {label}  # {classes[label].split(',')[0]}: {why}")
    (out / "images.txt").write_text("\n".join(lines) + "\n")
    total = len(lines) - 2
    print(f"wrote {out}/images.txt: {total} photos ({labelled} with an ImageNet label), "
          f"{total * 96} inputs after deltann expand")


if __name__ == "__main__":
    main()
