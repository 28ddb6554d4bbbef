"""Save and reload a structurally pruned model without pickle: safetensors weights plus, in the
file's metadata, a JSON record of every module's tensor shapes and integer size attributes.

:func:`record_shapes` / :func:`rebuild` are the reusable halves (the ``.slim`` artifact can
call them): ``rebuild`` resizes a fresh instance of the original architecture to a record.

Example:
    >>> import tempfile, pathlib, torch
    >>> import torchslim as slim
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> small = slim.prune(net, slim.StructuredPrune(sparsity=0.5), example_inputs=torch.zeros(1, 4))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "small.safetensors"
    >>> slim.save_pruned(small, path)
    >>> fresh = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> back = slim.load_pruned(path, fresh)
    >>> torch.equal(back(torch.ones(1, 4)), small(torch.ones(1, 4)))
    True
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file
from torch import nn

from torchslim.core.errors import InputError
from torchslim.core.io import atomic_write
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


def save_pruned(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights (safetensors) with its shape record in the metadata, atomically.

    Example:
        >>> import tempfile, pathlib
        >>> save_pruned(torch.nn.Linear(2, 2), pathlib.Path(tempfile.mkdtemp()) / "m.safetensors")
    """
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata={"torchslim_shapes": json.dumps(record_shapes(model))})


def load_pruned(path: str | os.PathLike[str], model: nn.Module) -> nn.Module:
    """Resize ``model`` (a fresh instance of the original architecture) to the shapes saved in
    ``path`` and load the weights; returns ``model`` in eval mode.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
        >>> save_pruned(torch.nn.Linear(2, 1), p)
        >>> load_pruned(p, torch.nn.Linear(2, 3)).out_features
        1
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
    except (OSError, SafetensorError) as e:
        raise InputError(f"cannot read pruned model {str(path)!r}: {e}") from None
    if "torchslim_shapes" not in meta:
        raise InputError(f"{str(path)!r} has no torchslim shape record (not written by save_pruned)")
    rebuild(model, json.loads(meta["torchslim_shapes"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"{str(path)!r} does not fit {type(model).__name__}: {str(e).splitlines()[0]}") from None
    return model.eval()
