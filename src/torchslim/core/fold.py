"""Fold BatchNorm into the convolution or linear layer that feeds it (exact in eval mode).

``BN(conv(x)) = conv'(x)`` with ``W' = W * g``, ``b' = (b - mean) * g + beta`` and
``g = gamma / sqrt(var + eps)``. A BatchNorm is folded when its input is the output of a
Conv1d/Conv2d/Linear that nothing else reads. The pairs are found on a ``torch.fx`` trace; a
model fx cannot trace falls back to adjacent modules inside ``nn.Sequential`` containers. The
folded BatchNorm is replaced by ``nn.Identity``, so the model keeps its class and forward.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.core.fold import fold_batchnorm
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
    >>> net[1].running_mean.uniform_(-1, 1); net[1].running_var.uniform_(0.5, 2)  # doctest: +ELLIPSIS
    tensor(...)
    >>> folded = fold_batchnorm(net)
    >>> x = torch.randn(2, 3, 8, 8)
    >>> torch.allclose(folded(x), net(x), atol=1e-5), type(folded[1]).__name__
    (True, 'Identity')
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
import torch.fx as fx
from torch import nn

from torchslim.core.modules import get_module, set_module

FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _fits(layer: nn.Module, bn: nn.Module) -> bool:
    """Only a BN with running statistics over the layer's output channels can be folded."""
    if not isinstance(layer, FOLDABLE) or not isinstance(bn, NORMS) or bn.running_mean is None:
        return False
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if out != bn.num_features:
        return False
    if isinstance(layer, nn.Conv2d) != isinstance(bn, nn.BatchNorm2d):
        return False
    return True


def _pairs_fx(model: nn.Module) -> list[tuple[str, str]]:
    """(layer name, bn name) pairs from an fx trace; raises if the model cannot be traced."""
    graph = fx.symbolic_trace(model).graph
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        src = node.args[0]
        if src.op != "call_module" or len(src.users) != 1 or len(node.args) != 1:
            continue
        if calls[node.target] != 1 or calls[src.target] != 1:  # a shared module: leave it
            continue
        if _fits(get_module(model, str(src.target)), get_module(model, str(node.target))):
            pairs.append((str(src.target), str(node.target)))
    return pairs


def _pairs_sequential(model: nn.Module) -> list[tuple[str, str]]:
    """Fallback: a layer directly followed by a BN inside an ``nn.Sequential``."""
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (a, layer), (b, bn) in zip(children, children[1:], strict=False):
            if _fits(layer, bn):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + a, prefix + b))
    return pairs


@torch.no_grad()
def fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn``'s eval-mode affine map into ``layer``'s weight and bias, in place.

    Example:
        >>> import torch
        >>> lin, bn = torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3).eval()
        >>> x = torch.randn(5, 4); want = bn(lin(x)); fold_into(lin, bn)
        >>> torch.allclose(lin(x), want, atol=1e-6)
        True
    """
    var, mean = bn.running_var.float(), bn.running_mean.float()
    gamma = bn.weight if bn.affine else torch.ones_like(var)
    beta = bn.bias if bn.affine else torch.zeros_like(var)
    g = gamma / torch.sqrt(var + bn.eps)  # (C,)
    w = layer.weight  # (C, ...) for Conv and Linear alike
    layer.weight.copy_(w * g.reshape(-1, *([1] * (w.dim() - 1))))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(mean)
    new_bias = (bias - mean) * g + beta  # (C,)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.to(w.dtype))
    else:
        layer.bias.copy_(new_bias)


def batchnorm_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """The (layer, batchnorm) name pairs :func:`fold_batchnorm` would fold.

    Example:
        >>> from torch import nn
        >>> batchnorm_pairs(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        [('0', '1')]
    """
    try:
        return _pairs_fx(model)
    except Exception:  # noqa: BLE001 - data-dependent control flow: use the structural fallback
        return _pairs_sequential(model)


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return a copy of ``model`` (eval mode) with every foldable BatchNorm folded into the
    Conv1d/Conv2d/Linear before it and replaced by ``nn.Identity``; outputs equal the
    original's in eval mode to float rounding (1e-5).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6)).eval()
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(fold_batchnorm(net)(x), net(x), atol=1e-5)
        True
    """
    out = model if inplace else copy.deepcopy(model)
    out.eval()
    for layer_name, bn_name in batchnorm_pairs(out):
        fold_into(get_module(out, layer_name), get_module(out, bn_name))
        set_module(out, bn_name, nn.Identity())
    return out
