"""How one-shot pruning is applied: masks from a criterion, then (optionally) fine-tuning.

The handlers registered here run when ``torchslim.prune(model, config, ...)`` gets a
:class:`MagnitudePrune`, :class:`RandomPrune` or :class:`NMPrune`. Options of ``prune``:

- ``train_data=`` and ``epochs=`` fine-tune the pruned model with ``torchslim.train.fit``;
  any other ``fit`` keyword (``lr``, ``val_data``, ``optimizer``, ``progress``, ``callbacks``,
  ``checkpoint_dir``...) is passed on. Masks stay attached, so pruned weights stay zero.
- ``permanent=True`` bakes the masks into plain weights at the end (see ``make_permanent``).

Example:
    >>> import torch
    >>> from torchslim.prune.api import prune
    >>> from torchslim.prune.unstructured import MagnitudePrune
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> small = prune(net, MagnitudePrune(sparsity=0.75), permanent=True)
    >>> sum(int(p.count_nonzero()) for n, p in small.named_parameters() if n.endswith("weight"))
    72
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError
from torchslim.prune.unstructured.configs import (
    MagnitudePrune,
    NMPrune,
    RandomPrune,
    prunable_layers,
)
from torchslim.prune.unstructured.criteria import (
    magnitude_scores,
    nm_mask,
    random_scores,
    sparsity_masks,
)
from torchslim.prune.unstructured.masks import attach_masks, make_permanent
from torchslim.train import fit

FIT_OPTIONS = frozenset(inspect.signature(fit).parameters) - {"model", "train_data", "epochs"}


def magnitude_masks(model: nn.Module, config: MagnitudePrune) -> dict[str, torch.Tensor]:
    """The masks ``config`` would attach (layer name -> bool mask), without attaching them.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 1))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.copy_(torch.tensor([[0.1, -2.0, 0.3, -0.05]]))
        >>> magnitude_masks(net, MagnitudePrune(sparsity=0.5))["0"]
        tensor([[False,  True,  True, False]])
    """
    layers = prunable_layers(model, config)
    scores = {n: magnitude_scores(m) for n, m in layers.items()}
    return sparsity_masks(scores, config.sparsity, config.scope)


def random_masks(model: nn.Module, config: RandomPrune) -> dict[str, torch.Tensor]:
    """Random masks with exact counts; ``config.seed`` makes them reproducible.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(10, 10))
        >>> int((~random_masks(net, RandomPrune(sparsity=0.25))["0"]).sum())
        25
    """
    layers = prunable_layers(model, config)
    g = torch.Generator().manual_seed(config.seed)
    scores = {n: random_scores(m, g) for n, m in layers.items()}
    return sparsity_masks(scores, config.sparsity, config.scope)


def nm_masks(model: nn.Module, config: NMPrune) -> dict[str, torch.Tensor]:
    """N:M masks (``n`` kept of every ``m`` consecutive input weights, by ``|w|``).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 3))
        >>> m = nm_masks(net, NMPrune(n=1, m=4))["0"]
        >>> m.reshape(3, 2, 4).sum(-1).tolist()
        [[1, 1], [1, 1], [1, 1]]
    """
    layers = prunable_layers(model, config)
    return {n: nm_mask(magnitude_scores(m), config.n, config.m, name=n) for n, m in layers.items()}


def finetune(
    model: nn.Module, options: Mapping[str, Any], where: str, extra_callbacks: Sequence[Any] = ()
) -> nn.Module:
    """Fine-tune ``model`` in place with ``fit`` when ``options`` has ``train_data`` (and
    ``epochs``); other options are ``fit`` keywords. Without ``train_data`` only ``permanent``
    is allowed. Applies ``permanent=True`` last. Returns ``model``.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 2)
        >>> finetune(net, {}, "example") is net
        True
    """
    opts = dict(options)
    permanent = bool(opts.pop("permanent", False))
    train_data, epochs = opts.pop("train_data", None), opts.pop("epochs", None)
    unknown = sorted(set(opts) - FIT_OPTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; known: train_data, epochs, permanent, "
                          f"and the keywords of torchslim.train.fit: {sorted(FIT_OPTIONS)}")
    if train_data is None:
        if epochs is not None or opts:
            raise ConfigError(f"{where}: fine-tuning options {sorted({*opts, *(['epochs'] if epochs else [])})} "
                              "need train_data= (a DataLoader or list of (x, y) batches)")
    else:
        if epochs is None:
            raise ConfigError(f"{where}: train_data= needs epochs= (how many epochs to fine-tune)")
        callbacks = [*extra_callbacks, *opts.pop("callbacks", ())]
        fit(model, train_data, epochs=epochs, callbacks=callbacks, **opts)
    return make_permanent(model) if permanent else model


@register_handler(MagnitudePrune)
def _prune_magnitude(model: nn.Module, config: MagnitudePrune, *, example_inputs: Any = None, **options: Any) -> nn.Module:
    attach_masks(model, magnitude_masks(model, config))
    return finetune(model, options, "prune(MagnitudePrune)")


@register_handler(RandomPrune)
def _prune_random(model: nn.Module, config: RandomPrune, *, example_inputs: Any = None, **options: Any) -> nn.Module:
    attach_masks(model, random_masks(model, config))
    return finetune(model, options, "prune(RandomPrune)")


@register_handler(NMPrune)
def _prune_nm(model: nn.Module, config: NMPrune, *, example_inputs: Any = None, **options: Any) -> nn.Module:
    attach_masks(model, nm_masks(model, config))
    return finetune(model, options, "prune(NMPrune)")
