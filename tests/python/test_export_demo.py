"""deltann_tools.export_demo: the specs of the demo's pretrained models (EfficientNet-Lite0, Lite1,
Lite2) against the architecture package's own table, without loading any weights.

By hand: PYTHONPATH=python .deps/venv/bin/python -m pytest -q tests/python
"""
import pytest

from deltann_tools import architectures, export_demo


@pytest.mark.parametrize("name", list(export_demo.MODELS))
def test_spec_input_is_the_size_the_architecture_was_trained_at(name):
    utils = pytest.importorskip("efficientnet_lite_pytorch.utils",
                                reason="pip install --no-deps efficientnet-lite-pytorch==0.1.0")
    _width, _depth, trained_at, _dropout = utils.efficientnet_params(name)
    spec = export_demo.spec_of(name)
    assert spec["input"]["shape"] == [1, 3, trained_at, trained_at]
    # EfficientNet's evaluation crop: the shorter side to input + 32, then the centre.
    assert spec["input"]["crop"] == trained_at
    assert spec["input"]["resize"] == trained_at + export_demo.CROP_PADDING
    assert spec["sources"]["pytorch"] == {"file": f"{name}.pth", "architecture": name}
    assert name in architectures.ARCHITECTURES


def test_the_demo_models_sizes_and_reference_files():
    assert {n: m[3] for n, m in export_demo.MODELS.items()} == {
        "efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
    # Lite0 keeps the demo's historical spec: resize 256, crop 224.
    spec = export_demo.spec_of(export_demo.NAME)
    assert (spec["input"]["resize"], spec["input"]["crop"]) == (export_demo.RESIZE,
                                                                export_demo.CROP)
    assert export_demo.reference_file("efficientnet-lite0") == "reference_pytorch.json"
    assert export_demo.reference_file("efficientnet-lite2") == \
        "efficientnet-lite2.reference_pytorch.json"


def test_unknown_model_is_refused_with_the_valid_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_demo.main(["--out", "/nonexistent", "--models", "efficientnet-lite9"])
    assert "unknown model(s) efficientnet-lite9" in str(exit_info.value)
    assert "efficientnet-lite1" in str(exit_info.value)
