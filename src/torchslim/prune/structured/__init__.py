"""Structured pruning: whole channels, neurons and attention heads are removed, so tensors
really shrink. Groups of tied channels come from :mod:`torchslim.core.graph`.

Example:
    >>> import torch
    >>> import torchslim as slim
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> slim.prune(net, slim.StructuredPrune(sparsity=0.25), example_inputs=torch.zeros(1, 4))[0].out_features
    12
"""

from torchslim.prune.structured.attention import SplitAttention, split_attention
from torchslim.prune.structured.config import IMPORTANCES, StructuredPrune
from torchslim.prune.structured.engine import preflight, select_units, structured_prune
from torchslim.prune.structured.importance import group_scores
from torchslim.prune.structured.recover import output_match_loss, recover
from torchslim.prune.structured.report import PruneReport
from torchslim.prune.structured.serialize import load_pruned, rebuild, record_shapes, save_pruned
from torchslim.prune.structured.surgery import remove_units

__all__ = [
    "IMPORTANCES", "PruneReport", "StructuredPrune", "group_scores", "load_pruned", "output_match_loss",
    "preflight", "rebuild", "record_shapes", "recover", "remove_units", "save_pruned",
    "SplitAttention", "select_units", "split_attention", "structured_prune",
]
