"""Unstructured pruning: masks that zero single weights (magnitude per layer or global, random,
N:M), Zhu & Gupta's gradual schedule as a training callback, lottery tickets with rewinding;
masks are made permanent on request and sparse storage is estimated in bytes.

Example:
    >>> import torch
    >>> from torchslim.prune.api import prune
    >>> from torchslim.prune.unstructured import MagnitudePrune, make_permanent, sparse_bytes
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    >>> small = make_permanent(prune(net, MagnitudePrune(sparsity=0.9)))
    >>> sum(int(p.count_nonzero()) for p in small.parameters()) < 0.2 * sum(p.numel() for p in net.parameters())
    True
"""

from __future__ import annotations

from torchslim.prune.unstructured.configs import (
    PRUNABLE,
    GradualPrune,
    LotteryTicket,
    MagnitudePrune,
    NMPrune,
    RandomPrune,
    prunable_layers,
)
from torchslim.prune.unstructured.criteria import (
    count_to_prune,
    magnitude_scores,
    nm_mask,
    random_scores,
    smallest_k_mask,
    sparsity_masks,
)
from torchslim.prune.unstructured.gradual import GradualPruner, cubic_sparsity, gradual_callback
from torchslim.prune.unstructured.lottery import lottery_ticket
from torchslim.prune.unstructured.masks import (
    WeightMask,
    attach_mask,
    attach_masks,
    get_mask,
    get_masks,
    has_masks,
    layer_sparsity,
    load_masked_state_dict,
    make_permanent,
    masked_layers,
)
from torchslim.prune.unstructured.oneshot import magnitude_masks, nm_masks, random_masks
from torchslim.prune.unstructured.storage import ENCODINGS, sparse_bytes, tensor_bytes

__all__ = [
    "ENCODINGS", "PRUNABLE", "GradualPrune", "GradualPruner", "LotteryTicket", "MagnitudePrune",
    "NMPrune", "RandomPrune", "WeightMask", "attach_mask", "attach_masks", "count_to_prune",
    "cubic_sparsity", "get_mask", "get_masks", "gradual_callback", "has_masks", "layer_sparsity",
    "load_masked_state_dict", "lottery_ticket", "magnitude_masks", "magnitude_scores",
    "make_permanent", "masked_layers", "nm_mask", "nm_masks", "prunable_layers", "random_masks",
    "random_scores", "smallest_k_mask", "sparse_bytes", "sparsity_masks", "tensor_bytes",
]
