"""GPTQ (Frantar et al., 2022): quantize a weight matrix column by column, spreading each
column's rounding error over the columns not yet quantized, weighted by the inverse Hessian
``H = X^T X`` of the layer's calibration inputs. Minimises ``||X W^T - X Q^T||`` far better
than round-to-nearest at 4 bits.

Example:
    >>> import torch
    >>> from torchslim.quant.gptq import gptq_quantize
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(512, 64) @ torch.randn(64, 64); w = torch.randn(32, 64)
    >>> q, s = gptq_quantize(w, (x.T @ x).double() / 512, bits=4, group=16)
    >>> q.shape, s.shape
    (torch.Size([32, 64]), torch.Size([32, 4]))
"""

from __future__ import annotations

import torch


def qrange(bits: int) -> tuple[int, int]:
    """Signed integer range used for ``bits``-bit symmetric weights: int4 -> (-8, 7).

    Example:
        >>> qrange(4), qrange(8)
        ((-8, 7), (-128, 127))
    """
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def group_scales(w: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Symmetric scales ``max|w| / qmax`` per (row, group): (N, K // group) for w (N, K).

    Example:
        >>> group_scales(torch.tensor([[7.0, 1.0, 14.0, 0.0]]), 4, 2)
        tensor([[1., 2.]])
    """
    n, k = w.shape
    amax = w.detach().abs().reshape(n, k // group, group).amax(dim=2)  # (N, G)
    qmax = qrange(bits)[1]
    return torch.where(amax > 0, amax / qmax, torch.ones_like(amax))


@torch.no_grad()
def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, bits: int, group: int, damp: float = 0.01,
                  block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ for one weight ``w`` (N, K) with input Hessian ``hessian`` (K, K); group scales
    are chosen when the first column of each group is reached (on the updated weights).
    ``damp`` adds ``damp * mean(diag H)`` to the diagonal. Returns (int8 q (N, K), scales (N, K // group))."""
    w = w.clone().double()  # (N, K)
    n, k = w.shape
    h = hessian.clone().double()  # (K, K)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)  # (K, K)
    lo, hi = qrange(bits)
    q = torch.zeros(n, k, dtype=torch.int8)
    scales = torch.zeros(n, k // group, dtype=torch.float64)
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        wb = w[:, b0:b1].clone()  # (N, B)
        errs = torch.zeros_like(wb)
        hb = hinv[b0:b1, b0:b1]
        for j in range(b1 - b0):
            col = b0 + j
            if col % group == 0:
                g = col // group
                cur = torch.cat([wb[:, j:], w[:, b1:]], dim=1)[:, :group]  # (N, group) updated weights
                amax = cur.abs().amax(dim=1)
                scales[:, g] = torch.where(amax > 0, amax / hi, torch.ones_like(amax))
            s = scales[:, col // group]  # (N,)
            qj = torch.clamp(torch.round(wb[:, j] / s), lo, hi)
            q[:, col] = qj.to(torch.int8)
            err = (wb[:, j] - qj * s) / hb[j, j]  # (N,)
            wb[:, j:] -= err[:, None] * hb[j, j:][None, :]
            errs[:, j] = err
        w[:, b1:] -= errs @ hinv[b0:b1, b1:]
    return q, scales.float()
