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
    SVD,
    Replacement,
    choose_rank,
    factorize_layer,
    param_count,
    saves,
    weight_svd,
)
from torchslim.arch.sensitivity import Budget, LayerSensitivity, allocate_ranks, measure_sensitivity
from torchslim.arch.whiten import input_covariances, whitened_svd
from torchslim.core.config import Config, handler_for, register_handler
from torchslim.core.errors import ConfigError
from torchslim.core.modules import get_module, set_module
from torchslim.core.targets import Target, check_names_exist, select
from torchslim.measure.accuracy import BatchMetric


def factorize(model: nn.Module, config: Config, *, inplace: bool = False, **options: Any) -> nn.Module:
    """Apply an architecture config (:class:`LowRank`, :class:`DepthwiseSeparable`) to ``model``
    and return the result (a copy unless ``inplace``) with ``arch_report`` attached.

    ``LowRank(rank_selection="sensitivity", ...)`` takes its data here: ``data`` (batches of
    ``(inputs, targets)``, e.g. the validation split), optionally ``metric`` (a
    :data:`~torchslim.measure.accuracy.BatchMetric`, higher is better; default top-1) and
    ``progress``. The measured table is attached as ``arch_sensitivity``; pass it back as
    ``sensitivity=`` (instead of ``data``) to allocate another target without measuring again.
    ``LowRank(method="whitened")`` takes ``calibration`` (batches of inputs, targets ignored)
    for its input statistics.

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


def _low_rank_layers(model: nn.Module, config: LowRank, skipped: list[tuple[str, str]]) -> list[tuple[str, nn.Module]]:
    """The selected layers that a factorization can replace (the rest go to ``skipped``)."""
    layers = _selected(model, config.target, (nn.Linear, *CONVS), "Linear/Conv1d/Conv2d", "LowRank target")
    out = []
    for name, layer in layers:
        if isinstance(get_module(model, name.rpartition(".")[0]), nn.MultiheadAttention):
            skipped.append((name, "inside nn.MultiheadAttention, which reads its weights directly"))
        elif isinstance(layer, CONVS) and layer.groups != 1:
            skipped.append((name, f"groups={layer.groups}"))
        else:
            out.append((name, layer))
    return out


def _check_table(table: list[LayerSensitivity], layers: list[tuple[str, nn.Module]], budget: str) -> list[LayerSensitivity]:
    """A table measured before must be of the same layers (in order) and count the same cost."""
    names, wanted = [row.name for row in table], [n for n, _ in layers]
    if names != wanted:
        raise ConfigError(f"sensitivity= table is of layers {names[:6]}, the target selects {wanted[:6]}")
    if any(row.budget != budget for row in table):
        raise ConfigError(f"sensitivity= table counts {table[0].budget}, the config's target is in {budget}")
    return table


def _replace(model: nn.Module, name: str, layer: nn.Module, rank: int, svd: SVD, done: list[Replacement]) -> None:
    new = factorize_layer(layer, rank, svd=svd)
    new.train(layer.training)
    done.append(Replacement(name, "low_rank", rank, param_count(layer), param_count(new)))
    set_module(model, name, new)


def _factors(model: nn.Module, config: LowRank, layers: list[tuple[str, nn.Module]], calibration: Any) -> dict[str, SVD]:
    """Each layer's SVD: of its weight (``svd``) or of its whitened weight (``whitened``)."""
    if config.method == "svd":
        if calibration is not None:
            raise ConfigError("calibration is used only by LowRank(method='whitened')")
        return {name: weight_svd(layer) for name, layer in layers}
    if calibration is None:
        raise ConfigError("LowRank(method='whitened') needs calibration data: factorize(model, config, calibration=loader)")
    covs = input_covariances(model, layers, calibration)
    return {name: whitened_svd(layer, covs[name]) for name, layer in layers}


@register_handler(LowRank)
def _apply_low_rank(model: nn.Module, config: LowRank, *, data: Any = None, metric: BatchMetric | None = None,
                    calibration: Any = None, progress: bool = True,
                    sensitivity: list[LayerSensitivity] | None = None) -> nn.Module:
    done: list[Replacement] = []
    skipped: list[tuple[str, str]] = []
    layers = _low_rank_layers(model, config, skipped)
    if config.rank_selection == "sensitivity":
        budget: Budget = "macs" if config.macs_ratio is not None else "params"
        ratio = config.macs_ratio if config.macs_ratio is not None else config.param_ratio
        if ratio is None:  # the config's validator already refuses this
            raise ConfigError("LowRank(rank_selection='sensitivity') needs param_ratio or macs_ratio")
        if sensitivity is None and data is None:
            raise ConfigError("LowRank(rank_selection='sensitivity') needs data: factorize(model, config, data=val_loader)")
        svds = _factors(model, config, layers, calibration)
        if sensitivity is not None:
            table = _check_table(sensitivity, layers, budget)
        else:
            table = measure_sensitivity(model, layers, data, candidates=config.candidates, budget=budget, metric=metric,
                                        min_saving=config.min_saving, progress=progress, svds=svds)
        chosen = allocate_ranks(table, ratio=ratio)
        for name, layer in layers:
            opt = chosen[name]
            if opt.rank is None:
                skipped.append((name, f"kept whole by the sensitivity allocation ({budget} target {ratio})"))
            else:
                _replace(model, name, layer, opt.rank, svds[name], done)
        model.arch_sensitivity = table  # type: ignore[assignment]
        return _attach(model, done, skipped)
    if data is not None or metric is not None or sensitivity is not None:
        raise ConfigError("data/metric/sensitivity are used only by LowRank(rank_selection='sensitivity')")
    svds = _factors(model, config, layers, calibration)
    ratio = config.param_ratio if config.param_ratio is not None else config.macs_ratio
    for name, layer in layers:
        svd = svds[name]
        rank = choose_rank(layer, energy=config.energy, rank=config.rank, param_ratio=ratio, name=name,
                           singular_values=svd[1])
        if not saves(layer, rank, config.min_saving):
            skipped.append((name, f"rank {rank} would not save parameters"))
            continue
        _replace(model, name, layer, rank, svd, done)
    return _attach(model, done, skipped)


@register_handler(DepthwiseSeparable)
def _apply_depthwise(model: nn.Module, config: DepthwiseSeparable, **options: Any) -> nn.Module:
    if options:
        raise ConfigError(f"DepthwiseSeparable takes no options; got {sorted(options)}")
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
