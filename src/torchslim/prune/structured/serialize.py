"""Save and reload a structurally pruned model without pickle: safetensors weights plus, in the
file's metadata, a JSON record of every module's tensor shapes and integer size attributes.

:func:`~torchslim.core.shapes.record_shapes` / :func:`~torchslim.core.shapes.rebuild` (in
``core``, shared with the ``.slim`` artifact) are the reusable halves.

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

from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file
from torch import nn

from torchslim.core.errors import InputError
from torchslim.core.io import atomic_write
from torchslim.core.shapes import rebuild, record_shapes


def save_pruned(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights (safetensors) with its shape record in the metadata, atomically.

    Example:
        >>> import tempfile, pathlib, torch
        >>> save_pruned(torch.nn.Linear(2, 2), pathlib.Path(tempfile.mkdtemp()) / "m.safetensors")
    """
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata={"torchslim_shapes": json.dumps(record_shapes(model))})


def load_pruned(path: str | os.PathLike[str], model: nn.Module) -> nn.Module:
    """Resize ``model`` (a fresh instance of the original architecture) to the shapes saved in
    ``path`` and load the weights; returns ``model`` in eval mode.

    Example:
        >>> import tempfile, pathlib, torch
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
