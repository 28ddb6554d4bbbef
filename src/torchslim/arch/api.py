"""The public verbs ``factorize`` and ``replace_depthwise``: find the handler registered for the
config's type (:class:`LowRank` or :class:`DepthwiseSeparable`) and apply it to a copy.

The returned model carries ``arch_report``: a list of :class:`Replacement` (name, kind, rank,
params before/after) for the layers really replaced. Layers the target selects but whose
replacement would not save parameters are left alone and listed in ``arch_skipped``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch import DepthwiseSeparable, LowRank, factorize
    >>> net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Linear(32, 32))
    >>> [r.kind for r in factorize(net, DepthwiseSeparable()).arch_report]
    ['depthwise_separable']
    >>> [r.name for r in factorize(net, LowRank(param_ratio=0.25)).arch_report]
    ['0', '2']
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from torchslim.arch.configs import DepthwiseSeparable, LowRank
from torchslim.arch.depthwise import depthwise_separable_conv, replaceable
from torchslim.arch.lowrank import (
    CONVS,
    Replacement,
    choose_rank,
    factorize_layer,
    param_count,
    saves,
)
from torchslim.core.config import Config, handler_for, register_handler
from torchslim.core.errors import ConfigError
from torchslim.core.modules import get_module, set_module
from torchslim.core.targets import Target, check_names_exist, select


def factorize(model: nn.Module, config: Config, *, inplace: bool = False, **options: Any) -> nn.Module:
    """Apply an architecture config (:class:`LowRank`, :class:`DepthwiseSeparable`) to ``model``
    and return the result (a copy unless ``inplace``) with ``arch_report`` attached.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch import LowRank, factorize
        >>> small = factorize(nn.Sequential(nn.Linear(100, 100)), LowRank(rank=10))
        >>> small.arch_report[0].params_after
        2100
    """
    target = model if inplace else copy.deepcopy(model)
    return handler_for(config, "factorize")(target, config, **options)


def replace_depthwise(model: nn.Module, config: DepthwiseSeparable | None = None, *, inplace: bool = False) -> nn.Module:
    """Shortcut for ``factorize(model, config or DepthwiseSeparable())``.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch import replace_depthwise
        >>> type(replace_depthwise(nn.Sequential(nn.Conv2d(8, 8, 3)))[0]).__name__
        'DepthwiseSeparableConv'
    """
    return factorize(model, config or DepthwiseSeparable(), inplace=inplace)


def _selected(model: nn.Module, target: Target, kinds: tuple[type[nn.Module], ...], what: str, where: str) -> list[tuple[str, nn.Module]]:
    check_names_exist(model, target, where=where)
    if isinstance(model, kinds):
        raise ConfigError(f"{where}: the model itself is a single {type(model).__name__}; wrap it in nn.Sequential")
    layers = select(model, target, kinds=kinds)
    if not layers:
        available = [n for n, m in model.named_modules() if n and isinstance(m, kinds)]
        raise ConfigError(
            f"{where} (include={list(target.include)}, exclude={list(target.exclude)}) matches no "
            f"{what} of {type(model).__name__}; its {what} layers are {available[:20]}"
        )
    return layers


def _attach(model: nn.Module, done: list[Replacement], skipped: list[tuple[str, str]]) -> nn.Module:
    model.arch_report = done  # type: ignore[assignment]
    model.arch_skipped = skipped  # type: ignore[assignment]
    return model


@register_handler(LowRank)
def _apply_low_rank(model: nn.Module, config: LowRank) -> nn.Module:
    layers = _selected(model, config.target, (nn.Linear, *CONVS), "Linear/Conv1d/Conv2d", "LowRank target")
    done: list[Replacement] = []
    skipped: list[tuple[str, str]] = []
    for name, layer in layers:
        if isinstance(get_module(model, name.rpartition(".")[0]), nn.MultiheadAttention):
            skipped.append((name, "inside nn.MultiheadAttention, which reads its weights directly"))
            continue
        if isinstance(layer, CONVS) and layer.groups != 1:
            skipped.append((name, f"groups={layer.groups}"))
            continue
        rank = choose_rank(layer, energy=config.energy, rank=config.rank, param_ratio=config.param_ratio, name=name)
        if not saves(layer, rank, config.min_saving):
            skipped.append((name, f"rank {rank} would not save parameters"))
            continue
        new = factorize_layer(layer, rank)
        new.train(layer.training)
        done.append(Replacement(name, "low_rank", rank, param_count(layer), param_count(new)))
        set_module(model, name, new)
    return _attach(model, done, skipped)


@register_handler(DepthwiseSeparable)
def _apply_depthwise(model: nn.Module, config: DepthwiseSeparable) -> nn.Module:
    layers = _selected(model, config.target, (nn.Conv2d,), "Conv2d", "DepthwiseSeparable target")
    done: list[Replacement] = []
    skipped: list[tuple[str, str]] = []
    for name, conv in layers:
        if not replaceable(conv):
            skipped.append((name, "not a standard k x k convolution that a pair would shrink"))
            continue
        new = depthwise_separable_conv(conv)
        new.train(conv.training)
        done.append(Replacement(name, "depthwise_separable", 1, param_count(conv), param_count(new)))
        set_module(model, name, new)
    return _attach(model, done, skipped)
