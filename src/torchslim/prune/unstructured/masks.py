"""Masks kept on the module: a ``torch.nn.utils.parametrize`` parametrization of ``weight``.

A masked layer computes with ``weight = original * mask``: ``mask`` is a ``bool`` buffer, so it
travels with ``state_dict()`` (key ``<layer>.parametrizations.weight.0.mask``), ``deepcopy`` and
training checkpoints, and the gradient of a pruned weight is exactly zero, so fine-tuning with
any optimizer that starts fresh (Adam, AdamW, SGD with momentum, weight decay) keeps it at zero.
The stored ``original`` is zeroed where the mask is 0 as well, so parameter counts
(``measure``'s ``params_nonzero``) are right while the masks are attached.

- :func:`make_permanent` bakes the masks into plain weights and removes the machinery (do it
  before deploying; ``torchslim.export`` does it on a copy by itself).
- :func:`load_masked_state_dict` loads a masked model's ``state_dict`` into a fresh, unmasked
  instance of the same architecture (masks are attached first).
- Like any parametrized module, a masked model pickles only through ``state_dict()``:
  ``torch.save(model)`` fails until :func:`make_permanent`.

Example:
    >>> import torch
    >>> from torchslim.prune.unstructured.masks import attach_mask, make_permanent
    >>> lin = torch.nn.Linear(4, 2)
    >>> attach_mask(lin, torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool))
    >>> int((lin.weight == 0).sum())
    4
    >>> type(make_permanent(lin)) is torch.nn.Linear
    True
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from torchslim.core.errors import ConfigError
from torchslim.export.onnx import export_onnx, register_lowering

PARAM = "weight"
MASK_SUFFIX = f"parametrizations.{PARAM}.0.mask"


class WeightMask(nn.Module):
    """The parametrization ``w -> w * mask``; ``mask`` is a bool buffer of the weight's shape.

    Example:
        >>> import torch
        >>> WeightMask(torch.tensor([True, False]))(torch.tensor([3.0, 4.0]))
        tensor([3., 0.])
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def _mask_module(module: nn.Module) -> WeightMask | None:
    if not parametrize.is_parametrized(module, PARAM):
        return None
    plist = module.parametrizations[PARAM]
    return plist[0] if len(plist) == 1 and isinstance(plist[0], WeightMask) else None


def get_mask(module: nn.Module) -> torch.Tensor | None:
    """The bool mask of ``module.weight`` (True = kept), or None if it has none.

    Example:
        >>> import torch
        >>> get_mask(torch.nn.Linear(2, 2)) is None
        True
    """
    m = _mask_module(module)
    return None if m is None else m.mask


def original_weight(module: nn.Module) -> torch.Tensor:
    """The trainable tensor behind ``weight``: ``original`` for a masked layer, else ``weight``.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> original_weight(lin) is lin.weight
        True
    """
    if _mask_module(module) is not None:
        return module.parametrizations[PARAM].original
    return getattr(module, PARAM)


def attach_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Mask ``module.weight`` with ``mask`` (True/1 = kept): attach the parametrization, or
    update the mask already there, and zero the stored weights that the mask removes.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(3, 1)
        >>> attach_mask(lin, torch.tensor([[1, 1, 0]]))
        >>> attach_mask(lin, torch.tensor([[1, 0, 0]]))  # updates in place
        >>> int(lin.weight.count_nonzero())
        1
    """
    weight = getattr(module, PARAM, None)
    if not isinstance(weight, torch.Tensor):
        raise ConfigError(f"cannot mask {type(module).__name__}: it has no tensor attribute {PARAM!r}")
    mask = torch.as_tensor(mask).to(device=weight.device, dtype=torch.bool)
    if mask.shape != weight.shape:
        raise ConfigError(
            f"mask of shape {tuple(mask.shape)} does not fit {type(module).__name__}.{PARAM} "
            f"of shape {tuple(weight.shape)}"
        )
    existing = _mask_module(module)
    if existing is not None:
        existing.mask.copy_(mask)
    elif parametrize.is_parametrized(module, PARAM):
        raise ConfigError(
            f"{type(module).__name__}.{PARAM} already has another parametrization "
            f"({type(module.parametrizations[PARAM][0]).__name__}); cannot add a pruning mask"
        )
    else:
        parametrize.register_parametrization(module, PARAM, WeightMask(mask))
    with torch.no_grad():
        original_weight(module).masked_fill_(~mask, 0.0)


def masked_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> module for every module of ``model`` whose weight carries a mask.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
        >>> attach_mask(net[1], torch.ones(2, 2))
        >>> list(masked_layers(net))
        ['1']
    """
    return {n: m for n, m in model.named_modules() if _mask_module(m) is not None}


def has_masks(model: nn.Module) -> bool:
    """True if any module of ``model`` carries a pruning mask.

    Example:
        >>> import torch
        >>> has_masks(torch.nn.Linear(2, 2))
        False
    """
    return any(_mask_module(m) is not None for m in model.modules())


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Qualified layer name -> a copy of its bool mask.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1))
        >>> attach_mask(net[0], torch.tensor([[True, False]]))
        >>> get_masks(net)
        {'0': tensor([[ True, False]])}
    """
    return {n: m.parametrizations[PARAM][0].mask.clone() for n, m in masked_layers(model).items()}


def attach_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Attach ``masks`` (qualified layer name -> mask) to ``model``'s layers; returns ``model``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1))
        >>> _ = attach_masks(net, {"0": torch.tensor([[0, 1]])})
        >>> net[0].weight[0, 0].item()
        0.0
    """
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in modules:
            raise ConfigError(f"attach_masks: no module named {name!r} in {type(model).__name__}")
        attach_mask(modules[name], mask)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Bake every mask into its weight (pruned entries are exact zeros) and remove the
    parametrizations: the layers become plain ``nn.Linear``/``nn.Conv2d``... again. In place;
    returns ``model``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
        >>> attach_mask(net[0], torch.tensor([[1, 0, 0], [0, 0, 1]]))
        >>> net = make_permanent(net)
        >>> type(net[0]).__name__, sorted(net.state_dict())
        ('Linear', ['0.bias', '0.weight'])
        >>> int(net[0].weight.count_nonzero())
        2
    """
    for module in masked_layers(model).values():
        with torch.no_grad():
            original_weight(module).masked_fill_(~module.parametrizations[PARAM][0].mask, 0.0)
        _own_class(module)
        parametrize.remove_parametrizations(module, PARAM, leave_parametrized=True)
    return model


def _own_class(module: nn.Module) -> None:
    """Give ``module`` a private copy of its ``Parametrized<Layer>`` class. ``deepcopy`` of a
    parametrized module shares that class with the copy, and ``remove_parametrizations`` deletes
    the ``weight`` property from it, which would break the other copy."""
    cls = type(module)
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, body)


def load_masked_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True
) -> nn.Module:
    """Load the ``state_dict`` of a masked model into ``model`` (masked or not): layers whose
    keys carry a mask get one attached first. In place; returns ``model``.

    Example:
        >>> import torch
        >>> a = torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> attach_mask(a[0], torch.eye(2))
        >>> b = load_masked_state_dict(torch.nn.Sequential(torch.nn.Linear(2, 2)), a.state_dict())
        >>> torch.equal(a[0].weight, b[0].weight), sorted(masked_layers(b))
        (True, ['0'])
    """
    modules = dict(model.named_modules())
    for key, value in state_dict.items():
        if not key.endswith(MASK_SUFFIX):
            continue
        name = key[: -len(MASK_SUFFIX)].rstrip(".")
        if name not in modules:
            raise ConfigError(f"load_masked_state_dict: the state_dict masks {name!r}, which "
                              f"{type(model).__name__} does not have")
        if _mask_module(modules[name]) is None:
            attach_mask(modules[name], torch.ones_like(value, dtype=torch.bool))
    model.load_state_dict(dict(state_dict), strict=strict)
    return model


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros in the (effective) weight of every masked layer.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 1))
        >>> attach_mask(net[0], torch.tensor([[1, 0, 0, 0]]))
        >>> layer_sparsity(net)
        {'0': 0.75}
    """
    out = {}
    for name, module in masked_layers(model).items():
        w = getattr(module, PARAM).detach()
        out[name] = 1.0 - int(w.count_nonzero()) / w.numel()
    return out


def _lower_masked(model: nn.Module, tmp: Path, inputs: tuple[torch.Tensor, ...], opset: int, dynamic: bool) -> None:
    """ONNX lowering for masked models: export a copy whose masks are made permanent, so the
    graph holds plain weights (with their own names) and no mask tensors or Mul nodes."""
    plain = make_permanent(copy.deepcopy(model))
    export_onnx(plain, tmp, inputs, opset=opset, dynamic_batch=dynamic)


register_lowering("unstructured_masks", has_masks, _lower_masked)
