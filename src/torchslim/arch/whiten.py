"""Activation-aware ("whitened") low-rank factorization.

Plain truncated SVD keeps the rank-r ``W_r`` closest to ``W`` in Frobenius norm, as if every
input direction mattered equally. On real inputs ``X`` (columns: the layer's input vectors,
or its im2col patches for a convolution) the error that matters is ``||(W - W_r) X||``. With
``C = X X^T = L L^T`` (Cholesky), ``||(W - W_r) X||_F = ||(W - W_r) L||_F``, so the best rank-r
``W_r`` is the truncated SVD of ``W L`` mapped back: ``W L = U S Vh`` gives
``W_r = U_r S_r (Vh_r L^-1)``. At full rank this is ``W`` exactly. This is the data whitening
of SVD-LLM (Wang et al., 2024), here for Linear and Conv1d/Conv2d layers.

:func:`whitened_svd` returns ``(U, S, Vh L^-1)``, which the low-rank builders take as ``svd=``
exactly like a plain SVD.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.lowrank import low_rank_linear
    >>> from torchslim.arch.whiten import input_covariances, whitened_svd
    >>> _ = torch.manual_seed(0)
    >>> layer = nn.Linear(16, 16)
    >>> x = torch.randn(256, 16) * torch.linspace(0.1, 3, 16)  # a few input directions dominate
    >>> cov = input_covariances(layer, [("", layer)], [x])[""]
    >>> white = low_rank_linear(layer, 4, svd=whitened_svd(layer, cov))
    >>> plain = low_rank_linear(layer, 4)
    >>> bool((white(x) - layer(x)).norm() < (plain(x) - layer(x)).norm())
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.arch.lowrank import SVD, weight_matrix
from torchslim.core.errors import InputError
from torchslim.core.inputs import batch_of


def _columns(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input vectors as rows ``(N, in * prod(kernel))`` in float64."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, x.shape[-1]).double()
    if isinstance(layer, nn.Conv1d):  # (B, C, L) -> patches via a (1, k) 2-D unfold
        x = x.unsqueeze(2)
        kernel, stride, pad, dil = (1, *layer.kernel_size), (1, *layer.stride), (0, *layer.padding), (1, *layer.dilation)
    else:
        kernel, stride, pad, dil = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    if isinstance(pad, str):
        raise InputError(f"whitened factorization does not support padding={pad!r} convolutions")
    cols = F.unfold(x, kernel, dilation=dil, padding=pad, stride=stride)  # (B, C*k*k, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).double()


def input_covariances(
    model: nn.Module, layers: Sequence[tuple[str, nn.Module]], calibration: Iterable[Any], *, max_batches: int | None = None
) -> dict[str, torch.Tensor]:
    """``X X^T / N`` of each layer's inputs (im2col patches for convolutions) over the
    calibration batches (``x``, ``(x, y)`` or ``((x1, x2), y)`` items; targets are ignored)."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name: str) -> Any:
        def fn(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: Any) -> None:
            cols = _columns(mod, inp[0].detach())
            sums[name] = sums.get(name, 0) + cols.T @ cols
            counts[name] = counts.get(name, 0) + cols.shape[0]
        return fn

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers]
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i, item in enumerate(calibration):
                if max_batches is not None and i >= max_batches:
                    break
                inputs, _ = batch_of(item)
                model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    missing = [n for n, _ in layers if n not in sums]
    if missing:
        raise InputError(f"whitened factorization: layers {missing[:5]} were not called on the calibration data")
    return {n: sums[n] / counts[n] for n, _ in layers}


def whitened_svd(layer: nn.Module, cov: torch.Tensor, damping: float = 1e-5) -> SVD:
    """``(U, S, Vh L^-1)`` from the SVD of ``W L``, ``L L^T = cov + damping * mean(diag) * I``
    (the damping grows tenfold until the Cholesky factorization succeeds)."""
    w = weight_matrix(layer).double()  # (out, in)
    if cov.shape != (w.shape[1], w.shape[1]):
        raise InputError(f"input covariance of shape {tuple(cov.shape)} does not fit a weight of {tuple(w.shape)}")
    eye = torch.eye(cov.shape[0], dtype=torch.float64, device=cov.device)
    scale = cov.diagonal().mean().clamp_min(1e-12)
    for _ in range(8):
        chol, info = torch.linalg.cholesky_ex(cov.double() + damping * scale * eye)
        if int(info) == 0:
            break
        damping *= 10
    else:
        raise InputError("whitened factorization: the input covariance is not positive definite even with damping")
    u, s, vh = torch.linalg.svd(w @ chol, full_matrices=False)
    vh_back = torch.linalg.solve_triangular(chol.T, vh.T, upper=True).T  # Vh L^-1: (r, in)
    return u, s, vh_back
