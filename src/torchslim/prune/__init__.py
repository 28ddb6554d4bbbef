"""Pruning: unstructured masks (magnitude, random, N:M, gradual, lottery ticket), structured
removal of channels, neurons and attention heads through torchslim's own dependency graph
(optionally latency-aware), and depth pruning (whole residual branches).

Example:
    >>> import torch
    >>> import torchslim as slim
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> slim.prune(net, slim.StructuredPrune(sparsity=0.5), example_inputs=torch.zeros(1, 4))[0].out_features
    8
"""

from torchslim.prune.api import prune
from torchslim.prune.depth import (
    BlockPrune,
    BlockReport,
    DroppedBranch,
    SkippedLayer,
    preflight_blocks,
)
from torchslim.prune.structured import (
    IMPORTANCES,
    PruneReport,
    StructuredPrune,
    load_pruned,
    output_match_loss,
    preflight,
    rebuild,
    record_shapes,
    recover,
    save_pruned,
    split_attention,
)
from torchslim.prune.unstructured import *  # noqa: F403 - the unstructured half's public names
from torchslim.prune.unstructured import __all__ as _unstructured_all

__all__ = [
    "BlockPrune", "BlockReport", "DroppedBranch", "SkippedLayer", "preflight_blocks",
    "IMPORTANCES", "PruneReport", "StructuredPrune", "load_pruned", "output_match_loss", "preflight", "prune",
    "rebuild", "record_shapes", "recover", "save_pruned", "split_attention", *_unstructured_all,
]
