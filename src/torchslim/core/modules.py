"""Get and set submodules by qualified name (``"layer1.0.conv1"``).

Example:
    >>> import torch.nn as nn
    >>> from torchslim.core.modules import get_module, set_module
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    >>> set_module(m, "1", nn.GELU())
    >>> type(get_module(m, "1")).__name__
    'GELU'
"""

from __future__ import annotations

from torch import nn

from torchslim.core.errors import UnknownNameError


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at qualified ``name`` ("" is the model itself)."""
    if name == "":
        return model
    try:
        return model.get_submodule(name)
    except AttributeError:
        known = [n for n, _ in model.named_modules() if n]
        raise UnknownNameError("module", name, known[:50]) from None


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at qualified ``name`` with ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = get_module(model, parent_name)
    if not hasattr(parent, child):
        get_module(model, name)  # raises with the known names
    setattr(parent, child, new)


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) for every module without children, in registration order."""
    return [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
