"""Lottery tickets: iterative magnitude pruning with weight rewinding, through ``fit``.

1. Attach all-ones masks; train ``rewind_epoch`` epochs (none: rewind to the given weights)
   and save every parameter as the rewind point.
2. ``rounds`` times: train ``epochs`` epochs, remove ``sparsity_per_round`` of the weights
   that remain (magnitude, ``scope``), reset every parameter to the rewind point (pruned
   weights stay zero).
3. Train the ticket ``epochs`` epochs (``train_final=False`` returns it untrained, rewound).

torchslim compresses trained models, so step 1 starts from trained weights: rewinding goes back
to early weights of the fine-tuning run (Renda et al. 2020), not to a random initialization.
Each ``fit`` starts a fresh optimizer and learning-rate schedule.

Example:
    >>> import torch
    >>> from torchslim.prune.api import prune
    >>> from torchslim.prune.unstructured import LotteryTicket, layer_sparsity
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> data = [(torch.randn(16, 8), torch.randint(0, 2, (16,))) for _ in range(2)]
    >>> ticket = prune(net, LotteryTicket(rounds=2, sparsity_per_round=0.5), train_data=data,
    ...                epochs=1, progress=False)
    >>> w = [ticket[0].weight, ticket[2].weight]
    >>> sum(int((t == 0).sum()) for t in w) / sum(t.numel() for t in w)
    0.75
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError
from torchslim.prune.unstructured.configs import LotteryTicket, prunable_layers
from torchslim.prune.unstructured.criteria import magnitude_scores, sparsity_masks
from torchslim.prune.unstructured.masks import attach_mask, get_mask, original_weight
from torchslim.prune.unstructured.oneshot import FIT_OPTIONS, finetune
from torchslim.train import fit


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _rewind(model: nn.Module, saved: dict[str, torch.Tensor], layers: dict[str, nn.Module]) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(saved[name])
        for module in layers.values():
            original_weight(module).mul_(get_mask(module))


def lottery_ticket(
    model: nn.Module,
    config: LotteryTicket,
    *,
    train_data: Iterable[Any],
    epochs: int,
    train_final: bool = True,
    **fit_options: Any,
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Find a ticket in ``model`` (in place); returns ``(model, rewind_weights)``, the latter the
    saved parameters (names as in ``model.named_parameters()``) that survivors were reset to.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 2))
        >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
        >>> ticket, saved = lottery_ticket(net, LotteryTicket(rounds=1, sparsity_per_round=0.5),
        ...                                train_data=data, epochs=1, train_final=False, progress=False)
        >>> kept = ticket[0].parametrizations.weight[0].mask
        >>> bool(torch.equal(ticket[0].weight[kept], saved["0.parametrizations.weight.original"][kept]))
        True
    """
    unknown = sorted(set(fit_options) - FIT_OPTIONS)
    if unknown:
        raise ConfigError(f"lottery_ticket: unknown option(s) {unknown}; fit keywords: {sorted(FIT_OPTIONS)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"lottery_ticket: epochs (per round) must be an integer >= 1, got {epochs!r}")
    layers = prunable_layers(model, config)
    for module in layers.values():
        if get_mask(module) is None:
            attach_mask(module, torch.ones_like(module.weight, dtype=torch.bool))
    if config.rewind_epoch > 0:
        fit(model, train_data, epochs=config.rewind_epoch, **fit_options)
    saved = _snapshot(model)
    for r in range(1, config.rounds + 1):
        fit(model, train_data, epochs=epochs, **fit_options)
        sparsity = 1.0 - (1.0 - config.sparsity_per_round) ** r
        scores = {n: magnitude_scores(m) for n, m in layers.items()}
        masks = sparsity_masks(scores, sparsity, config.scope)
        for name, module in layers.items():
            attach_mask(module, masks[name])
        _rewind(model, saved, layers)
    if train_final:
        fit(model, train_data, epochs=epochs, **fit_options)
    return model, saved


@register_handler(LotteryTicket)
def _prune_lottery(model: nn.Module, config: LotteryTicket, *, example_inputs: Any = None, **options: Any) -> nn.Module:
    opts = dict(options)
    train_data, epochs = opts.pop("train_data", None), opts.pop("epochs", None)
    if train_data is None or epochs is None:
        raise ConfigError(
            "prune(LotteryTicket) trains between rounds: pass train_data= and epochs= (per round), "
            "e.g. prune(model, LotteryTicket(rounds=3), train_data=loader, epochs=3)"
        )
    permanent = opts.pop("permanent", False)
    train_final = opts.pop("train_final", True)
    lottery_ticket(model, config, train_data=train_data, epochs=epochs, train_final=train_final, **opts)
    return finetune(model, {"permanent": permanent}, "prune(LotteryTicket)")
