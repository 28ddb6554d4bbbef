"""Deployable outputs: ONNX graphs, ONNX Runtime sessions (and, later, the .slim artifact)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from torchslim.export.onnx import (
    DEFAULT_OPSET,
    ExportError,
    OrtModel,
    export_onnx,
    register_lowering,
)

__all__ = ["ExportError", "OrtModel", "export", "export_onnx", "register_lowering"]


def export(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_inputs: Any,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Write a deployable ONNX file for ``model``; see :func:`export_onnx`.

    Example:
        >>> import tempfile, torch, torchslim
        >>> p = torchslim.export(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/m.onnx",
        ...                      example_inputs=torch.randn(1, 4))
        >>> p.suffix
        '.onnx'
    """
    return export_onnx(model, path, example_inputs, opset=opset, dynamic_batch=dynamic_batch)
