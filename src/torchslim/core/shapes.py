"""Record every module's tensor shapes and integer size attributes, and resize a fresh instance
of the original architecture to such a record. Shared by structured pruning's save/load and the
``.slim`` artifact (both must rebuild a model whose tensors really shrank).

Example:
    >>> import torch
    >>> small = torch.nn.Linear(3, 1)
    >>> rebuild(torch.nn.Linear(3, 2), record_shapes(small)).out_features
    1
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchslim.core.errors import InputError
from torchslim.core.modules import get_module

FORMAT = "torchslim.pruned/1"


def _attrs(m: nn.Module) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k == "training" or isinstance(v, bool):
            continue
        if isinstance(v, int) or (isinstance(v, tuple) and v and all(isinstance(i, int) and not isinstance(i, bool) for i in v)):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def record_shapes(model: nn.Module) -> dict[str, Any]:
    """Every module's parameter/buffer shapes and integer size attributes.

    Example:
        >>> record_shapes(torch.nn.Linear(3, 2))["modules"][""]["tensors"]["weight"]
        [2, 3]
    """
    modules = {}
    for name, m in model.named_modules():
        tensors = {k: list(v.shape) for k, v in [*m._parameters.items(), *m._buffers.items()] if v is not None}
        modules[name] = {"type": type(m).__name__, "tensors": tensors, "attrs": _attrs(m)}
    return {"format": FORMAT, "model": type(model).__name__, "modules": modules}


def rebuild(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """Resize ``model`` (a fresh instance of the original architecture) in place to ``record``:
    tensors get the recorded shapes (uninitialised; load weights after), attributes the
    recorded values. A module or tensor the record does not know is an InputError.

    Example:
        >>> small = torch.nn.Linear(3, 1)
        >>> rebuild(torch.nn.Linear(3, 2), record_shapes(small)).out_features
        1
    """
    if record.get("format") != FORMAT:
        raise InputError(f"not a pruned-shape record (format {record.get('format')!r}, expected {FORMAT!r})")
    names = {n for n, _ in model.named_modules()}
    rec = record["modules"]
    if set(rec) != names:
        raise InputError(f"the record was made from another architecture ({record.get('model')} vs {type(model).__name__}): "
                         f"missing modules {sorted(set(rec) - names)[:5]}, extra {sorted(names - set(rec))[:5]}")
    for name, entry in rec.items():
        m = get_module(model, name)
        if entry["type"] != type(m).__name__:
            raise InputError(f"module {name!r} is a {type(m).__name__}, the record has a {entry['type']}")
        for k, shape in entry["tensors"].items():
            for store in (m._parameters, m._buffers):
                if k in store and store[k] is not None:
                    t = store[k]
                    if list(t.shape) != shape:
                        new = torch.empty(shape, dtype=t.dtype)
                        store[k] = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
                    break
            else:
                raise InputError(f"module {name!r} has no tensor {k!r} recorded in the file")
        for k, v in entry["attrs"].items():
            setattr(m, k, tuple(v) if isinstance(v, list) else v)
    return model
