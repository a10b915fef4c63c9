"""The PyTorch architectures deltann can rebuild from a state_dict (a model's `pytorch` source).

A `pytorch` source in a model spec names one of these architectures and a weights file:

    "sources": {"pytorch": {"file": "mobilenet_v2.pth", "architecture": "mobilenet_v2"}}

Weights are read with `torch.load(..., weights_only=True)`: a weights file is untrusted input and
must not be able to run code when it is unpickled. Only the names below are accepted, so a spec
cannot make deltann import arbitrary Python.
"""
from pathlib import Path
from typing import Any

ARCHITECTURES = {
    "efficientnet-lite0": "EfficientNet-Lite0 (efficientnet-lite-pytorch), 224x224",
    "efficientnet-lite1": "EfficientNet-Lite1 (efficientnet-lite-pytorch), 240x240",
    "efficientnet-lite2": "EfficientNet-Lite2 (efficientnet-lite-pytorch), 260x260",
    "mobilenet_v2": "MobileNetV2 (torchvision), 224x224",
    "resnet101": "ResNet-101 (torchvision), 224x224",
    "inception_v3": "InceptionV3 (torchvision, no auxiliary head), 299x299",
}


class ArchitectureError(Exception):
    pass


def build(name: str, num_classes: int = 1000) -> Any:
    """A freshly initialised torch.nn.Module of architecture `name`, in eval mode."""
    if name.startswith("efficientnet-lite") and name in ARCHITECTURES:
        from efficientnet_lite_pytorch import EfficientNet
        # The name fixes width, depth and the input size the "same" padding is computed for.
        model = EfficientNet.from_name(name, num_classes=num_classes)
    elif name in ("mobilenet_v2", "resnet101", "inception_v3"):
        import torchvision.models as tvm
        kwargs = {"weights": None, "num_classes": num_classes}
        if name == "inception_v3":
            # The auxiliary classifier only matters for training; init_weights=True keeps
            # torchvision from warning about the changed default.
            kwargs.update(aux_logits=False, init_weights=True)
        model = getattr(tvm, name)(**kwargs)
    else:
        raise ArchitectureError(
            f"unknown architecture '{name}'; known: {', '.join(sorted(ARCHITECTURES))}")
    return model.eval()


def load(name: str, weights_path: str | Path, num_classes: int = 1000) -> Any:
    """Architecture `name` with the state_dict in `weights_path` loaded (strictly)."""
    import torch
    model = build(name, num_classes)
    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or hostile file: say which and why
        raise ArchitectureError(f"cannot read weights {weights_path}: {e}") from e
    if not isinstance(state, dict):
        raise ArchitectureError(f"{weights_path} is not a state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArchitectureError(
            f"{weights_path} does not fit architecture '{name}': {str(e)[:500]}") from e
    return model.eval()
