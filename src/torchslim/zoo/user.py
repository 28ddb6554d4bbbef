"""Load a user's own model: a factory the user names plus a weights file they name.

Only the module the user names is imported (their code, by their choice); weights are read
with safetensors or ``torch.load(weights_only=True)``: nothing from the file is unpickled.

Example:
    >>> from torchslim.zoo.user import load_user_model
    >>> m = load_user_model("torch.nn:Identity")
    >>> type(m).__name__
    'Identity'
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from torchslim.core.errors import ConfigError, InputError


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict from ``.safetensors`` or ``.pt``/``.pth`` (weights only) into ``model``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    elif p.suffix in (".pt", ".pth", ".bin"):
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - report what was refused
            raise InputError(f"{p}: not a plain tensor state dict (refused to unpickle objects): {e}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    else:
        raise InputError(f"{p}: unknown weights format {p.suffix!r}; use .safetensors, .pt or .pth")
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputError(
            f"{p} does not match {type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise InputError(f"{p}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(state)
    return model


def load_user_model(spec: str, weights: str | Path | None = None) -> nn.Module:
    """Build ``package.module:factory`` (a class or function taking no arguments) and load
    ``weights`` into it if given."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"model {spec!r}: expected 'package.module:factory' or 'zoo:<name>'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"model {spec!r}: cannot import {module_name!r}: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model {spec!r}: {module_name} has no callable {attr!r}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {spec!r}: the factory returned {type(model).__name__}, not an nn.Module")
    return load_weights(model, weights) if weights else model
