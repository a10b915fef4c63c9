"""The conversion steps that run in deltann's main venv (Debian's torch, onnx, onnx2torch).

    pytorch > onnx          torch.onnx.export
    pytorch > torchscript   torch.jit.trace
    onnx > torchscript      onnx2torch.convert + torch.jit.trace

convert.py imports this module and calls `run(step, ...)`; each step returns the output spec and
notes and writes its artifact to the temporary path it is given (convert.py moves it into place).
A step that fails raises StepError with one sentence saying why; convert.py turns that into the
tool's one-paragraph error.

The model files are untrusted input: PyTorch weights are read only through
architectures.load (torch.load with weights_only=True), ONNX files only through onnx.load.
"""
import copy
from typing import Any

from deltann_tools import architectures

Spec = dict[str, Any]  # a model spec (JSON object)
Knobs = dict[str, str]
StepResult = tuple[Spec, list[str]]  # the output's spec, notes on what the step did

# Default ONNX opset of pytorch>onnx (the `opset` knob overrides it). 13 is what the study's
# chains use; the demo export (export_demo.py) uses 10 for OpenCV's sake.
ONNX_OPSET = 13


class StepError(Exception):
    """A step failed; the message says why in one sentence."""


def _input_shape(spec: Spec) -> list[int]:
    shape = spec.get("input", {}).get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(d, int) and d > 0
                                                                for d in shape)):
        raise StepError(f"the spec's input shape {shape!r} is not four positive integers")
    return shape


def _num_classes(spec: Spec) -> int:
    """Outputs of the network: the spec's classes plus any background slots before them."""
    out = spec.get("output", {})
    return int(out.get("classes", 1000)) + int(out.get("label_offset", 0))


def _load_pytorch(weights: str, spec: Spec) -> Any:
    """The architecture named by spec.sources.pytorch with the state_dict `weights` loaded."""
    source = spec.get("sources", {}).get("pytorch", {})
    name = source.get("architecture") if isinstance(source, dict) else None
    if not name:
        raise StepError("the spec has no sources.pytorch.architecture, so there is no "
                        "architecture to load the state_dict into (known architectures: "
                        f"{', '.join(sorted(architectures.ARCHITECTURES))})")
    if spec.get("input", {}).get("layout", "NCHW") != "NCHW":
        raise StepError("a PyTorch source must take NCHW input, but the spec says "
                        f"{spec['input']['layout']}")
    try:
        return architectures.load(name, weights, _num_classes(spec))
    except architectures.ArchitectureError as e:
        raise StepError(str(e)) from e


def _example(torch: Any, spec: Spec) -> Any:
    # A fixed, non-trivial input: tracing and constant folding must not see an all-zero tensor
    # that could hide data-dependent paths, and the same file must give the same artifact.
    gen = torch.Generator().manual_seed(0)
    return torch.rand(_input_shape(spec), generator=gen)


def pytorch_to_onnx(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    import onnx
    import torch
    model = _load_pytorch(src, spec)
    out = copy.deepcopy(spec)
    output_name = "probabilities" if spec.get("output", {}).get("kind") == "probabilities" \
        else "logits"
    opset = int(knobs.get("opset", ONNX_OPSET))
    try:
        with torch.no_grad():
            torch.onnx.export(model, _example(torch, spec), tmp_out, input_names=["input"],
                              output_names=[output_name], opset_version=opset,
                              do_constant_folding=True)
        onnx.checker.check_model(onnx.load(tmp_out))
    except Exception as e:
        raise StepError(f"torch.onnx.export failed: {type(e).__name__}: {e}") from e
    out["input"]["name"] = "input"
    out["output"]["name"] = output_name
    return out, [f"exported at opset {opset} with a fixed input shape "
                 f"{_input_shape(spec)} (batch 1), constant folding on",
                 f"architecture {spec['sources']['pytorch']['architecture']}, "
                 f"{_num_classes(spec)} outputs"]


def _trace(torch: Any, model: Any, spec: Spec, tmp_out: str, what: str) -> None:
    example = _example(torch, spec)
    try:
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
            # Trace-time checks compare against eager mode on the same input; a difference here
            # means the trace froze a data-dependent path and the artifact would be wrong.
            expected = model(example)
            got = traced(example)
        if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
            raise StepError(f"the traced {what} disagrees with the original on the trace input "
                            f"(max |diff| {float((expected - got).abs().max()):.3g}): tracing "
                            "did not capture the model faithfully")
        torch.jit.save(traced, tmp_out)
    except StepError:
        raise
    except Exception as e:
        raise StepError(f"torch.jit.trace of the {what} failed: {type(e).__name__}: {e}") from e


def pytorch_to_torchscript(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    import torch
    model = _load_pytorch(src, spec)
    _trace(torch, model, spec, tmp_out, "PyTorch model")
    return copy.deepcopy(spec), [
        f"traced in eval mode at input shape {_input_shape(spec)} with torch {torch.__version__}; "
        "TorchScript takes its input by position, the spec's tensor names are kept for reference"]


def onnx_to_torchscript(src: str, spec: Spec, tmp_out: str, knobs: Knobs) -> StepResult:
    import onnx
    import torch
    try:
        from onnx2torch import convert
    except Exception as e:
        raise StepError(f"cannot import onnx2torch ({type(e).__name__}: {e})") from e
    try:
        proto = onnx.load(src)
        onnx.checker.check_model(proto)
    except Exception as e:
        raise StepError(f"{src} is not a valid ONNX model: {type(e).__name__}: {e}") from e
    try:
        module = convert(proto).eval()
    except Exception as e:
        raise StepError(f"onnx2torch could not convert the graph: {type(e).__name__}: {e}") from e
    _trace(torch, module, spec, tmp_out, "onnx2torch module")
    ops = sorted({n.op_type for n in proto.graph.node})
    return copy.deepcopy(spec), [
        f"onnx2torch rebuilt the graph ({len(proto.graph.node)} nodes: {', '.join(ops)}) as a "
        f"torch.fx module, traced at input shape {_input_shape(spec)} in the spec's "
        f"{spec.get('input', {}).get('layout', 'NCHW')} layout"]


STEPS = {
    ("pytorch", "onnx"): pytorch_to_onnx,
    ("pytorch", "torchscript"): pytorch_to_torchscript,
    ("onnx", "torchscript"): onnx_to_torchscript,
}


def run(src_format: str, dst_format: str, src: str, spec: Spec, tmp_out: str,
        knobs: Knobs) -> StepResult:
    """Runs one step; returns (output spec, notes)."""
    return STEPS[(src_format, dst_format)](src, spec, tmp_out, knobs)
