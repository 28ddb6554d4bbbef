"""Weight sharing (Deep Compression, Han et al. 2016): each layer's non-zero weights are
clustered by 1-D k-means into ``2**bits`` centroids, and the layer keeps only the codebook and
one index per weight (index 0 is reserved for pruned weights, which stay exactly zero).

- Initialisation ``linear`` (the paper's best: centroids evenly spaced between the smallest and
  largest weight, so the few large weights keep a centroid), ``density`` (quantiles) or
  ``random`` (seeded sample of the weights). Lloyd iterations in 1-D assign each weight to the
  nearest centroid through the sorted midpoints (exact and deterministic).
- Fine-tuning: ``quantize(model, WeightSharing(...), train_data=..., epochs=...)`` trains the
  codebooks (and biases, and any layer left unshared) with :func:`torchslim.train.fit`. The
  weight is ``table[indices]``, so backward sums the gradients of all weights that share a
  centroid into that centroid: the paper's grouped gradient update.
- Storage: the ``.slim`` file holds the codebook as floats and the indices as entropy-coded
  symbols, sparse when the layer was pruned.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant import quantize
    >>> from torchslim.quant.sharing import WeightSharing
    >>> net = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> shared = quantize(net, WeightSharing(bits=3))
    >>> len(shared[0].codebook) <= 8, int(shared[0].weight.unique().numel()) <= 8
    (True, True)
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from torchslim.core.config import Config, register_handler
from torchslim.core.errors import ConfigError
from torchslim.core.modules import set_module
from torchslim.core.persist import (
    ModuleType,
    base_type,
    build_plain,
    plain_record,
    register_module_type,
)
from torchslim.core.shapes import int_attrs
from torchslim.core.targets import Target, check_names_exist, select
from torchslim.quant.configs import LINEAR_AND_CONV
from torchslim.quant.report import QuantReport, attach_report
from torchslim.train import fit

SHAREABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)
FIT_OPTIONS = frozenset(inspect.signature(fit).parameters) - {"model", "train_data", "epochs"}


class WeightSharing(Config):
    """k-means weight sharing per layer: ``bits`` index bits (``2**bits`` centroids) for Linear
    layers, ``conv_bits`` for convolutions (default: ``bits``; the paper used 8 for conv and 5
    for fc), ``layer_bits`` per layer name; ``init`` and ``iterations`` of Lloyd's algorithm.

    Example:
        >>> WeightSharing(bits=5, conv_bits=8).to_dict()["conv_bits"]
        8
    """

    bits: int = 5
    conv_bits: int | None = None
    layer_bits: dict[str, int] = Field(default_factory=dict)
    init: Literal["linear", "density", "random"] = "linear"
    iterations: int = Field(default=100, ge=1)
    seed: int = 0
    target: Target = LINEAR_AND_CONV

    @field_validator("bits", "conv_bits")
    @classmethod
    def _bits(cls, b: int | None) -> int | None:
        if b is not None and not 1 <= b <= 8:
            raise ValueError(f"weight sharing needs 1 to 8 index bits, got {b}")
        return b

    @field_validator("layer_bits")
    @classmethod
    def _layer_bits(cls, d: dict[str, int]) -> dict[str, int]:
        for name, b in d.items():
            if not 1 <= b <= 8:
                raise ValueError(f"layer_bits[{name!r}] must be 1 to 8, got {b}")
        return d

    def bits_for(self, name: str, layer: nn.Module) -> int:
        """The index bits of layer ``name``."""
        if name in self.layer_bits:
            return self.layer_bits[name]
        return self.conv_bits if self.conv_bits is not None and not isinstance(layer, nn.Linear) else self.bits


def kmeans_1d(values: torch.Tensor, k: int, *, init: str = "linear", iterations: int = 100, seed: int = 0) -> torch.Tensor:
    """Sorted centroids (at most ``k``; empty clusters dropped) of 1-D ``values`` by Lloyd's
    algorithm.

    Example:
        >>> [round(c, 3) for c in kmeans_1d(torch.tensor([0.0, 0.1, 1.0, 1.1]), 2).tolist()]
        [0.05, 1.05]
    """
    v = values.detach().reshape(-1).double()
    if v.numel() == 0:
        return values.new_zeros(0)
    k = max(1, min(k, int(v.unique().numel())))
    if init == "linear":
        c = torch.linspace(float(v.min()), float(v.max()), k, dtype=torch.float64)
    elif init == "density":
        c = torch.quantile(v, torch.linspace(0, 1, k, dtype=torch.float64))
    elif init == "random":
        g = torch.Generator().manual_seed(seed)
        c = v[torch.randperm(v.numel(), generator=g)[:k]].sort().values
    else:
        raise ConfigError(f"unknown k-means init {init!r}; known: linear, density, random")
    counts = torch.zeros(k, dtype=torch.int64)
    for _ in range(iterations):
        assign = torch.bucketize(v, (c[1:] + c[:-1]) / 2)  # nearest centroid, (n,)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, v)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), c).sort().values
        if torch.equal(new, c):
            break
        c = new
    counts = torch.bincount(torch.bucketize(v, (c[1:] + c[:-1]) / 2), minlength=len(c))
    return c[counts > 0].to(values.dtype)


def assign(weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Indices (uint8/int16, the weight's shape): 0 where the weight is zero, else 1 + the
    nearest centroid of the sorted ``codebook``.

    Example:
        >>> assign(torch.tensor([0.0, 0.9, 0.2]), torch.tensor([0.1, 1.0])).tolist()
        [0, 2, 1]
    """
    idx = torch.bucketize(weight.detach(), (codebook[1:] + codebook[:-1]) / 2) + 1
    idx = torch.where(weight.detach() == 0, torch.zeros_like(idx), idx)
    return idx.to(torch.uint8 if len(codebook) < 256 else torch.int16)


def plain_copy(layer: nn.Module) -> nn.Module:
    """A new plain Linear/Conv with ``layer``'s hyper-parameters and bias (its weight left as
    initialised); works on masked (parametrized) layers without touching them."""
    fresh = build_plain(base_type(layer).__name__, int_attrs(layer), plain_record(layer))
    fresh = fresh.to(dtype=layer.weight.dtype, device=layer.weight.device)
    if layer.bias is not None:
        with torch.no_grad():
            fresh.bias.copy_(layer.bias)
    return fresh


class SharedWeight(nn.Module):
    """A Linear/Conv1d/Conv2d whose weight is ``[0, *codebook][indices]``.

    ``module`` keeps the layer's bias and hyper-parameters (its own ``weight`` is removed);
    ``codebook`` (K,) is trainable; ``indices`` (the weight's shape) is a buffer.

    Example:
        >>> lin = torch.nn.Linear(4, 2)
        >>> sw = SharedWeight(lin, torch.tensor([-0.5, 0.5]), torch.ones(2, 4, dtype=torch.uint8))
        >>> sw.weight.unique().tolist(), sw(torch.ones(1, 4)).shape
        ([-0.5], torch.Size([1, 2]))
    """

    def __init__(self, module: nn.Module, codebook: torch.Tensor, indices: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(module, SHAREABLE):
            raise ConfigError(f"SharedWeight wraps {[c.__name__ for c in SHAREABLE]}, got {type(module).__name__}")
        if "weight" in module._parameters:
            del module.weight
        self.module = module
        self.codebook = nn.Parameter(codebook.detach().clone())
        self.register_buffer("indices", indices.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight the codebook and indices stand for."""
        table = torch.cat([self.codebook.new_zeros(1), self.codebook])  # (K + 1,)
        return table[self.indices.long()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, w = self.module, self.weight
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        return m._conv_forward(x, w, m.bias)  # Conv1d / Conv2d: padding modes included

    def extra_repr(self) -> str:
        return f"{type(self.module).__name__}, {len(self.codebook)} centroids"


@register_handler(WeightSharing)
def quantize_sharing(model: nn.Module, config: WeightSharing, *, calibration: Any = None, **options: Any) -> nn.Module:
    """Handler of :class:`WeightSharing` (called by ``quantize``): cluster, then fine-tune the
    centroids when ``train_data=`` and ``epochs=`` are given (other ``fit`` keywords pass on)."""
    unknown = sorted(set(options) - FIT_OPTIONS - {"train_data", "epochs"})
    if unknown:
        raise ConfigError(f"quantize(WeightSharing): unknown option(s) {unknown}; known: train_data, epochs and "
                          f"the keywords of torchslim.train.fit")
    check_names_exist(model, config.target)
    layers = select(model, config.target, kinds=SHAREABLE)
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no Linear/Conv layer selected by {config.target.include} to share")
    report = QuantReport(config=config.type_key, layers=[n for n, _ in layers])
    for name, layer in layers:
        w = layer.weight.detach()
        bits = config.bits_for(name, layer)
        book = kmeans_1d(w[w != 0], 2**bits, init=config.init, iterations=config.iterations, seed=config.seed)
        shared = SharedWeight(plain_copy(layer), book, assign(w, book))
        err = float((shared.weight.detach() - w).pow(2).mean())
        report.table.append({"layer": name, "bits": bits, "centroids": len(book), "nonzero": int((w != 0).sum()), "mse": err})
        set_module(model, name, shared)
    train_data, epochs = options.pop("train_data", None), options.pop("epochs", None)
    if train_data is not None:
        if not epochs:
            raise ConfigError("quantize(WeightSharing): train_data= needs epochs= (centroid fine-tuning epochs)")
        fit(model, train_data, epochs=epochs, **options)
    elif epochs or options:
        raise ConfigError("quantize(WeightSharing): fine-tuning options need train_data=")
    attach_report(model.eval(), report)
    return model


register_module_type(ModuleType(
    key="shared_weight", cls=SharedWeight, replaces=lambda m: type(m.module).__name__, record=lambda m: {},
    build=lambda rec, original, make_child: SharedWeight(
        plain_copy(original) if original is not None else make_child("module"), torch.zeros(1), torch.zeros(1, dtype=torch.uint8)),
))
