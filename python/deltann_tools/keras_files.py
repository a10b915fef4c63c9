"""Reading `.keras` model files, shared by the tensorflow engine's worker and the conversion steps
(both run in the TensorFlow venv, which has Keras 3 and tf_keras).

A `.keras` file is a zip archive whose metadata.json names the Keras version that saved it. Keras 3
files are read by Keras 3; Keras 2 files (tf_keras, which is what onnx2tf builds its models with)
by tf_keras: neither can read the other's. Both load with `safe_mode=True`, so a model file cannot
make Keras run pickled code, and without compiling (no optimiser or loss is needed to infer).
"""
import json
import zipfile
from pathlib import Path
from typing import Any


class KerasFileError(Exception):
    """The file is not a Keras model that can be read; the message names it and says why."""


def keras_version_of(path: str | Path) -> str:
    """The Keras version `path` was saved with, from its metadata.json."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise KerasFileError(f"{path}: not a Keras model file (a .keras zip archive with "
                             f"metadata.json): {type(e).__name__}: {e}") from None
    version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    if not version:
        raise KerasFileError(f"{path}: its metadata.json names no keras_version")
    return version


def load_keras(path: str | Path) -> tuple[Any, str]:
    """(the model, which Keras read it and which one saved it)."""
    version = keras_version_of(path)
    try:
        if version.startswith("2."):
            import tf_keras
            return (tf_keras.models.load_model(str(path), compile=False, safe_mode=True),
                    f"tf_keras {tf_keras.__version__} (saved by Keras {version})")
        import keras
        return (keras.saving.load_model(str(path), compile=False, safe_mode=True),
                f"keras {keras.__version__} (saved by Keras {version})")
    except Exception as e:  # noqa: BLE001  (Keras raises many kinds on a bad file)
        raise KerasFileError(f"{path}: Keras cannot load it: {type(e).__name__}: {e}") from None


def single_input(model: Any, path: str | Path) -> tuple[str, list[int | None]]:
    """(name, shape) of the model's one input; None for a dimension the model leaves open."""
    inputs = list(model.inputs)
    if len(inputs) != 1:
        raise KerasFileError(f"{path} has {len(inputs)} inputs; deltann needs exactly one image "
                             "input")
    name = (getattr(inputs[0], "name", "") or "input").split(":")[0]
    return name, [None if d is None else int(d) for d in inputs[0].shape]


def export_archive_module(model: Any) -> Any:
    """The Keras (3 or tf_keras) whose ExportArchive can write `model` as a SavedModel."""
    import tf_keras
    if isinstance(model, tf_keras.Model):
        return tf_keras
    import keras
    return keras
