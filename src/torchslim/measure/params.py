"""Parameter counts and the size in bytes of a deployable file.

- torch: parameters of the ``nn.Module`` (zeros counted exactly, so pruning shows), and the
  exact length of the safetensors serialization of the state_dict (no disk needed).
- ONNX Runtime: elements of the ONNX graph's initializers, and the size of the ONNX file
  (plus its external-data files, if it has any).

Example:
    >>> import torch
    >>> from torchslim.measure.params import count_params
    >>> lin = torch.nn.Linear(4, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight[0].zero_()
    >>> count_params(lin)
    (10, 6)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import safetensors.torch
import torch
from onnx import numpy_helper
from torch import nn

from torchslim.measure.macs import own_weights

# ONNX initializer types that hold shapes, axes and flags rather than weights.
_NOT_WEIGHTS = {onnx.TensorProto.INT64, onnx.TensorProto.BOOL}


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, nonzero) over the model's parameters; a shared parameter is counted once.

    ``torch.ao`` quantized modules (weights packed, not parameters) count their ``weight()``.

    Example:
        >>> import torch
        >>> count_params(torch.nn.Conv2d(3, 8, 3))
        (224, 224)
    """
    seen: set[int] = set()
    total = nonzero = 0
    for module in model.modules():
        for t in own_weights(module):
            if id(t) in seen:
                continue
            seen.add(id(t))
            t = t.detach()
            if t.is_quantized:
                t = t.int_repr()  # exact zeros of a quantized weight are zero codes at zero point 0
            total += t.numel()
            nonzero += int(torch.count_nonzero(t))
    return total, nonzero


def _plain_tensors(state: dict[str, object]) -> dict[str, torch.Tensor]:
    """State-dict entries safetensors can store: quantized tensors as their integer codes,
    tuples of tensors (packed params) flattened, tensors that share memory stored once."""
    flat: dict[str, torch.Tensor] = {}

    def add(name: str, value: object) -> None:
        if isinstance(value, torch.Tensor):
            flat[name] = value.detach().int_repr() if value.is_quantized else value.detach()
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                add(f"{name}.{i}", v)

    for name, value in state.items():
        add(name, value)
    out: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}
    storages: set[int] = set()
    for name, t in flat.items():
        if t.device.type != "cpu":
            t = t.cpu()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if t.numel() and key in seen:  # a tied weight: the file stores it once
            continue
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and (ptr in storages or not t.is_contiguous()):
            t = t.contiguous().clone()  # a view into shared memory: store its own copy
        seen[key] = name
        storages.add(ptr)
        out[name] = t
    return out


def state_dict_bytes(model: nn.Module) -> int:
    """Exact length of ``safetensors.torch.save(model.state_dict())``.

    Tied weights are stored once; quantized tensors as their integer codes.

    Example:
        >>> import torch, safetensors.torch
        >>> m = torch.nn.Linear(4, 2)
        >>> state_dict_bytes(m) == len(safetensors.torch.save(m.state_dict()))
        True
    """
    return len(safetensors.torch.save(_plain_tensors(model.state_dict())))


def onnx_file_bytes(path: str | os.PathLike[str]) -> int:
    """Size of the ONNX file plus any external-data files its initializers point to.

    Example:
        >>> import onnx, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.onnx")
        >>> g = onnx.helper.make_graph([], "g", [], [])
        >>> onnx.save(onnx.helper.make_model(g), p)
        >>> onnx_file_bytes(p) == os.path.getsize(p)
        True
    """
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    extra = {
        entry.value
        for init in proto.graph.initializer
        if init.data_location == onnx.TensorProto.EXTERNAL
        for entry in init.external_data
        if entry.key == "location"
    }
    return path.stat().st_size + sum((path.parent / name).stat().st_size for name in extra)


def onnx_params(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(total, nonzero) elements of the ONNX initializers, shape constants (int64, bool) left out.

    Example:
        >>> import numpy as np, onnx, tempfile, os
        >>> w = onnx.numpy_helper.from_array(np.array([[0.0, 1.0]], dtype=np.float32), "w")
        >>> g = onnx.helper.make_graph([], "g", [], [], initializer=[w])
        >>> p = os.path.join(tempfile.mkdtemp(), "m.onnx")
        >>> onnx.save(onnx.helper.make_model(g), p)
        >>> onnx_params(p)
        (2, 1)
    """
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=True)
    total = nonzero = 0
    for init in proto.graph.initializer:
        if init.data_type in _NOT_WEIGHTS:
            continue
        arr = numpy_helper.to_array(init, base_dir=str(path.parent))
        total += int(arr.size)
        nonzero += int(np.count_nonzero(arr))
    return total, nonzero
