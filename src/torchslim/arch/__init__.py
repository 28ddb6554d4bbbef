"""Efficient architecture: low-rank factorization (plain or activation-whitened SVD, ranks by
rule or by measured sensitivity), depthwise-separable replacement, slimmer students (width,
depth), and exact BatchNorm folding (re-exported from :mod:`torchslim.core.fold`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch import LowRank, factorize
    >>> net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    >>> small = factorize(net, LowRank(rank=8, target={"include": ["0"]}))
    >>> [(r.name, r.rank, r.params_before, r.params_after) for r in small.arch_report]
    [('0', 8, 4160, 1088)]
"""

from torchslim.arch.api import factorize, replace_depthwise
from torchslim.arch.configs import DepthwiseSeparable, LowRank
from torchslim.arch.depthwise import depthwise_separable_conv
from torchslim.arch.lowrank import (
    LowRankConv,
    LowRankLinear,
    Replacement,
    choose_rank,
    factorize_layer,
    low_rank_conv,
    low_rank_linear,
    weight_svd,
)
from torchslim.arch.sensitivity import (
    LayerSensitivity,
    RankOption,
    allocate_ranks,
    measure_sensitivity,
)
from torchslim.arch.students import depth_student
from torchslim.arch.whiten import input_covariances, whitened_svd
from torchslim.arch.width import width_student
from torchslim.core.fold import fold_batchnorm

__all__ = [
    "DepthwiseSeparable", "LayerSensitivity", "LowRank", "LowRankConv", "LowRankLinear", "RankOption", "Replacement",
    "allocate_ranks", "choose_rank", "depth_student", "depthwise_separable_conv", "factorize", "factorize_layer",
    "fold_batchnorm", "input_covariances", "low_rank_conv", "low_rank_linear", "measure_sensitivity",
    "replace_depthwise", "weight_svd", "whitened_svd", "width_student",
]
