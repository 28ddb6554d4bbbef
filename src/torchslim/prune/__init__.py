"""Pruning: unstructured masks (magnitude, random, N:M, gradual, lottery ticket) and structured
removal of channels, neurons and attention heads through torchslim's own dependency graph.

Example:
    >>> import torch
    >>> import torchslim as slim
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> slim.prune(net, slim.StructuredPrune(sparsity=0.5), example_inputs=torch.zeros(1, 4))[0].out_features
    8
"""

from torchslim.prune.api import prune
from torchslim.prune.structured import (
    IMPORTANCES,
    PruneReport,
    StructuredPrune,
    kd_loss,
    load_pruned,
    preflight,
    rebuild,
    record_shapes,
    recover,
    save_pruned,
)
from torchslim.prune.unstructured import *  # noqa: F403 - the unstructured half's public names
from torchslim.prune.unstructured import __all__ as _unstructured_all

__all__ = [
    "IMPORTANCES", "PruneReport", "StructuredPrune", "kd_loss", "load_pruned", "preflight", "prune",
    "rebuild", "record_shapes", "recover", "save_pruned", *_unstructured_all,
]
