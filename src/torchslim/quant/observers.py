"""Observers: watch activation tensors during calibration, then choose a quantization range.

- ``minmax``: the smallest and largest value seen;
- ``percentile``: the ``low``/``high`` percentiles of the values seen (clips rare outliers);
- ``mse``: the clipping range (a fraction of min/max) whose fake-quantized values have the
  lowest mean squared error against the originals;
- ``entropy``: TensorRT's KL-divergence calibration on a 2048-bin histogram of the values.

Every observer ends in :func:`qparams`, which turns a range into a scale and zero point:
asymmetric ``uint8`` (activations; zero is always exactly representable) or symmetric.

Example:
    >>> import torch
    >>> from torchslim.quant.observers import make_observer
    >>> obs = make_observer("minmax")
    >>> obs.update(torch.tensor([-1.0, 0.5, 3.0]))
    >>> scale, zp = obs.qparams()
    >>> round(scale, 6), zp
    (0.015686, 64)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchslim.core.errors import ConfigError, InputError

OBSERVERS = ("minmax", "percentile", "mse", "entropy")
MAX_SAMPLES = 1 << 20  # values kept for the percentile / mse / entropy searches


def qparams(lo: float, hi: float, qmin: int = 0, qmax: int = 255, symmetric: bool = False) -> tuple[float, int]:
    """Scale and zero point mapping the range ``[lo, hi]`` (widened to hold 0) onto
    ``[qmin, qmax]``.

    Example:
        >>> qparams(-1.0, 3.0)          # uint8 asymmetric: 4 / 255, zero at 64
        (0.01568627450980392, 64)
        >>> qparams(-2.0, 1.0, -127, 127, symmetric=True)
        (0.015748031496062992, 0)
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"cannot quantize a range with non-finite ends [{lo}, {hi}] (NaN or inf in the data?)")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        bound = max(-lo, hi)
        scale = bound / ((qmax - qmin) / 2) if bound > 0 else 1.0
        return scale, 0 if qmin < 0 else (qmin + qmax + 1) // 2
    scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    zp = int(min(max(round(qmin - lo / scale), qmin), qmax))
    return scale, zp


class Observer:
    """Base observer: ``update(x)`` on every calibration batch, then ``range()`` / ``qparams()``."""

    name = "base"

    def __init__(self) -> None:
        self.lo = math.inf
        self.hi = -math.inf
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        """Record one tensor; NaN or inf values are an InputError."""
        x = x.detach().float()
        if x.numel() == 0:
            return
        if not torch.isfinite(x).all():
            raise InputError("calibration data produced NaN or inf activations; check the calibration inputs")
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        self.count += x.numel()
        self._update(x)

    def _update(self, x: torch.Tensor) -> None:
        pass

    def range(self) -> tuple[float, float]:
        """The chosen ``(lo, hi)`` clipping range."""
        self._check()
        return self.lo, self.hi

    def _check(self) -> None:
        if self.count == 0:
            raise InputError("an observer saw no data: the calibration set is empty or never reached this layer")

    def qparams(self, qmin: int = 0, qmax: int = 255, symmetric: bool = False) -> tuple[float, int]:
        """Scale and zero point for the chosen range (see :func:`qparams`)."""
        lo, hi = self.range()
        return qparams(lo, hi, qmin, qmax, symmetric)


class MinMaxObserver(Observer):
    """The full range seen."""

    name = "minmax"


class _SampleObserver(Observer):
    """Keeps up to :data:`MAX_SAMPLES` values (a fixed-seed random subset beyond that)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[torch.Tensor] = []
        self.kept = 0
        self.gen = torch.Generator().manual_seed(0)

    def _update(self, x: torch.Tensor) -> None:
        flat = x.reshape(-1)  # (N,)
        budget = MAX_SAMPLES // 8
        if flat.numel() > budget:
            flat = flat[torch.randint(0, flat.numel(), (budget,), generator=self.gen)]
        self.samples.append(flat.clone())
        self.kept += flat.numel()
        if self.kept > MAX_SAMPLES:
            allv = torch.cat(self.samples)
            allv = allv[torch.randperm(allv.numel(), generator=self.gen)[:MAX_SAMPLES // 2]]
            self.samples, self.kept = [allv], allv.numel()

    def values(self) -> torch.Tensor:
        return torch.cat(self.samples)  # (N,)


class PercentileObserver(_SampleObserver):
    """Range from the ``low`` and ``high`` percentiles (defaults 0.01 and 99.99)."""

    name = "percentile"

    def __init__(self, high: float = 99.99, low: float | None = None) -> None:
        super().__init__()
        if not 50.0 < high <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {high}")
        self.high, self.low = high, 100.0 - high if low is None else low

    def range(self) -> tuple[float, float]:
        self._check()
        v = self.values().double()
        q = torch.quantile(v, torch.tensor([self.low / 100, self.high / 100], dtype=torch.float64))
        return float(q[0]), float(q[1])


def _fq_error(v: torch.Tensor, lo: float, hi: float, levels: int) -> float:
    scale, zp = qparams(lo, hi, 0, levels - 1)
    q = torch.clamp(torch.round(v / scale) + zp, 0, levels - 1)
    return float(((q - zp) * scale - v).pow(2).mean())


class MSEObserver(_SampleObserver):
    """Shrinks the max, then the min, by factors in [0.1, 1] (coordinate search) and keeps the
    range whose fake-quantized values have the lowest mean squared error."""

    name = "mse"

    def __init__(self, steps: int = 90, levels: int = 256) -> None:
        super().__init__()
        self.steps, self.levels = steps, levels

    def range(self) -> tuple[float, float]:
        self._check()
        v = self.values()
        if v.numel() > 1 << 16:  # the search needs a sample, not every value
            v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[: 1 << 16]]
        lo, hi = self.lo, self.hi
        factors = [1.0 - 0.9 * i / self.steps for i in range(self.steps + 1)]
        hi = min(((_fq_error(v, lo, hi * f, self.levels), hi * f) for f in factors), key=lambda t: t[0])[1]
        lo = min(((_fq_error(v, lo * f, hi, self.levels), lo * f) for f in factors), key=lambda t: t[0])[1]
        return lo, hi


def kl_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """TensorRT's entropy calibration: the clipping threshold (on a histogram of |x|) whose
    ``levels``-bin quantized distribution has the least KL divergence from the clipped one.

    Example:
        >>> h, e = np.histogram(np.abs(np.random.default_rng(0).normal(size=100000)), bins=2048)
        >>> 2.0 < kl_threshold(h, e) < 5.0
        True
    """
    hist = hist.astype(np.float64)
    n = len(hist)
    best_kl, best_i = math.inf, n
    for i in range(levels, n + 1, max(1, (n - levels) // 256)):
        ref = hist[:i].copy()
        ref[i - 1] += hist[i:].sum()  # outliers are clipped into the last bin
        nonzero = hist[:i] != 0
        chunks = np.array_split(np.arange(i), levels)
        cand = np.zeros(i)
        for idx in chunks:
            nz = nonzero[idx]
            if nz.any():
                cand[idx[nz]] = hist[:i][idx].sum() / nz.sum()
        p, q = ref / ref.sum(), cand / max(cand.sum(), 1e-12)
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(edges[best_i])


class EntropyObserver(_SampleObserver):
    """KL-divergence calibration (TensorRT) on |x|; the range keeps its sign structure."""

    name = "entropy"

    def __init__(self, bins: int = 2048) -> None:
        super().__init__()
        self.bins = bins

    def range(self) -> tuple[float, float]:
        self._check()
        v = self.values().abs().numpy()
        top = float(v.max())
        if top == 0:
            return 0.0, 0.0
        hist, edges = np.histogram(v, bins=self.bins, range=(0.0, top))
        t = kl_threshold(hist, edges, levels=128 if self.lo < 0 else 256)
        return max(self.lo, -t), min(self.hi, t)


_KINDS: dict[str, type[Observer]] = {
    "minmax": MinMaxObserver, "percentile": PercentileObserver, "mse": MSEObserver,
    "entropy": EntropyObserver,
}


def make_observer(name: str) -> Observer:
    """A new observer of kind ``name`` (one of :data:`OBSERVERS`).

    Example:
        >>> type(make_observer("mse")).__name__
        'MSEObserver'
    """
    if name not in _KINDS:
        raise ConfigError(f"unknown observer {name!r}; known: {', '.join(OBSERVERS)}")
    return _KINDS[name]()
