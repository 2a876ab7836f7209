"""``transferlab export RUN_DIR --cell KEY --out model.pt``: a cell's trained network as a deployable file.

The exported module maps a batch of inputs *as the domain loader gives them* — ``(N, *input_shape)`` in the
domain's dtype: float32 vectors, float32 images in [0, 1] or uint8 images in [0, 255] — to logits
``(N, n_classes)``, with what the training loop does in between built in: uint8 images are divided by 255 and
the network is in eval mode (dropout off, BatchNorm on its running statistics). Formats:

- ``torchscript`` (default): ``torch.jit.trace`` of that module; load with ``torch.jit.load(path)``.
- ``onnx``: ``torch.onnx.export`` with a dynamic batch dimension, when the ``onnx`` package is installed.

Text domains (``hf`` backbones read strings) cannot be traced and are refused.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adapt.errors import TransferlabError
from adapt.saved import find_record, load_model

FORMATS = ("torchscript", "onnx")


class LoaderInputClassifier(nn.Module):
    """A trained classifier behind the loop's input conversion: loader batch → logits."""

    def __init__(self, model: nn.Module, scale: float | None):
        super().__init__()
        self.model = model
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.scale is not None:  # uint8 images: the loop trains on x / 255 (adapt.train._Data)
            x = x * self.scale
        return self.model(x)


def deployable(run_dir: str | Path, key: str) -> tuple[nn.Module, torch.Tensor, dict]:
    """The eval-mode loader-input module of a cell, an example batch of its input, and its record."""
    _, record = find_record(run_dir, key)
    model = load_model(run_dir, key)
    spec = record["saved_model"]
    if spec["kind"] == "text":
        raise TransferlabError(f"cell {record['key']}: a text model (strings in) cannot be exported to "
                               f"TorchScript/ONNX; use adapt.load_model(RUN_DIR, KEY) in Python")
    dtype = torch.uint8 if spec["input_dtype"] == "uint8" else torch.float32
    wrapped = LoaderInputClassifier(model, 1.0 / 255.0 if dtype == torch.uint8 else None).eval()
    example = torch.zeros((2, *spec["input_shape"]), dtype=dtype)
    return wrapped, example, record


def export_model(run_dir: str | Path, key: str, out: str | Path, fmt: str = "torchscript") -> Path:
    """Write cell ``key``'s network to ``out`` as TorchScript or ONNX (see the module docstring)."""
    if fmt not in FORMATS:
        raise TransferlabError(f"--format: expected one of {list(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        import importlib.util

        if importlib.util.find_spec("onnx") is None:
            raise TransferlabError("--format onnx needs the onnx package (pip install onnx); "
                                   "--format torchscript needs nothing more")
    module, example, _ = deployable(run_dir, key)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TransferlabError(f"{out}: cannot write ({err.strerror})") from None
    with torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(module, example)
            torch.jit.save(traced, str(out))
        else:
            torch.onnx.export(module, (example,), str(out), input_names=["inputs"], output_names=["logits"],
                              dynamic_axes={"inputs": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return out
