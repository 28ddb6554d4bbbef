"""Depth pruning: whole residual branches (and, on request, shape-preserving layers) removed,
so their ops disappear, not only their MACs.

Example:
    >>> import torch
    >>> from torch import nn
    >>> import torchslim as slim
    >>> from torchslim.prune.depth import BlockPrune
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.f = nn.Linear(4, 4)
    ...     def forward(self, x):
    ...         return x + self.f(x)
    >>> net = nn.Sequential(Block(), nn.Linear(4, 2))
    >>> slim.prune(net, BlockPrune(blocks=1), example_inputs=torch.randn(2, 4)).slim_block_report.removed
    ['0[f]']
"""

from torchslim.prune.depth.config import BLOCK_IMPORTANCES, BlockPrune
from torchslim.prune.depth.engine import BlockReport, block_prune, preflight_blocks
from torchslim.prune.depth.rewrite import DroppedBranch, SkippedLayer

__all__ = ["BLOCK_IMPORTANCES", "BlockPrune", "BlockReport", "DroppedBranch", "SkippedLayer", "block_prune",
           "preflight_blocks"]
