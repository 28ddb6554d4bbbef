"""Make ``nn.MultiheadAttention`` heads prunable: swap each module for an equivalent one with
separate q/k/v/out projections whose forward infers the head count from the weights.

``nn.MultiheadAttention`` packs q, k and v into one ``in_proj_weight`` and derives
``head_dim = embed_dim // num_heads`` from the *input* width, so its heads cannot shrink on
their own (the pre-flight report says so). :func:`split_attention` replaces every such module
by a :class:`SplitAttention` that computes the same function (same weights, same masks, same
outputs up to float rounding); structured pruning then removes whole heads from it like from
any attention block. A model pruned this way reloads with
``load_pruned(path, split_attention(fresh_model))``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    >>> x = torch.randn(2, 5, 16)
    >>> split = split_attention(mha)
    >>> torch.allclose(split(x, x, x)[0], mha(x, x, x)[0], atol=1e-5)
    True
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.modules import set_module


class SplitAttention(nn.Module):
    """``nn.MultiheadAttention``'s forward with separate ``q``, ``k``, ``v``, ``out`` projections.

    The head count is inferred from ``q``'s width (``view(B, L, -1, head_dim)``), so removing
    whole heads only shrinks the projections. Keeps the attributes ``nn.TransformerEncoderLayer``
    reads (``batch_first``; ``_qkv_same_embed_dim = False`` keeps it off its fused fast path).
    """

    in_proj_bias = None  # read by nn.TransformerEncoderLayer's fast-path check
    _qkv_same_embed_dim = False

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.num_heads, self.head_dim = mha.num_heads, mha.head_dim
        self.batch_first, self.dropout = mha.batch_first, mha.dropout
        if mha._qkv_same_embed_dim:
            wq, wk, wv = mha.in_proj_weight.detach().chunk(3)
        else:
            wq, wk, wv = mha.q_proj_weight.detach(), mha.k_proj_weight.detach(), mha.v_proj_weight.detach()
        bias = mha.in_proj_bias.detach().chunk(3) if mha.in_proj_bias is not None else (None, None, None)
        self.q, self.k, self.v = (self._linear(w, b) for w, b in zip((wq, wk, wv), bias, strict=True))
        self.out = self._linear(mha.out_proj.weight.detach(), None if mha.out_proj.bias is None else mha.out_proj.bias.detach())

    @staticmethod
    def _linear(w: torch.Tensor, b: torch.Tensor | None) -> nn.Linear:
        lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            lin.weight.copy_(w)
            if b is not None:
                lin.bias.copy_(b)
        return lin

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.batch_first:  # (L, B, E) -> (B, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, n, s = query.shape[0], query.shape[1], key.shape[1]
        q = self.q(query).view(b, n, -1, self.head_dim).transpose(1, 2)  # (B, H, L, hd)
        k = self.k(key).view(b, s, -1, self.head_dim).transpose(1, 2)  # (B, H, S, hd)
        v = self.v(value).view(b, s, -1, self.head_dim).transpose(1, 2)  # (B, H, S, hd)
        mask = self._mask(attn_mask, key_padding_mask, b, n, s, q.dtype)  # (B, 1 | H, L, S) or None
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, L, S)
            if mask is not None:
                scores = scores + mask
            elif is_causal:
                scores = scores.masked_fill(torch.ones(n, s, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
            weights = F.dropout(scores.softmax(-1), p, self.training)
            h = weights @ v  # (B, H, L, hd)
        else:
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal and mask is None)
        out = self.out(h.transpose(1, 2).reshape(b, n, -1))  # (B, L, E)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(1) if average_attn_weights else weights

    @staticmethod
    def _mask(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None, b: int, n: int, s: int,
              dtype: torch.dtype) -> torch.Tensor | None:
        """One additive float mask from nn.MultiheadAttention's masks (bool: True = masked out)."""
        def additive(m: torch.Tensor) -> torch.Tensor:
            return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf")) if m.dtype == torch.bool else m.to(dtype)

        mask = None
        if attn_mask is not None:
            mask = additive(attn_mask)
            mask = mask.view(1, 1, n, s) if mask.dim() == 2 else mask.view(b, -1, n, s)  # (L, S) or (B*H, L, S)
        if key_padding_mask is not None:
            pad = additive(key_padding_mask).view(b, 1, 1, s)
            mask = pad if mask is None else mask + pad
        return mask


def split_attention(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every ``nn.MultiheadAttention`` in ``model`` (or ``model`` itself) by an
    equivalent :class:`SplitAttention`; modules with ``add_bias_kv`` or ``add_zero_attn`` are
    left as they are (their heads stay pinned).

    Example:
        >>> from torch import nn
        >>> layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        >>> type(split_attention(layer).self_attn).__name__
        'SplitAttention'
    """
    model = model if inplace else copy.deepcopy(model)
    if isinstance(model, nn.MultiheadAttention):
        return SplitAttention(model) if _convertible(model) else model
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MultiheadAttention) and _convertible(m):
            set_module(model, name, SplitAttention(m).train(m.training))
    return model


def _convertible(m: nn.MultiheadAttention) -> bool:
    return m.bias_k is None and not m.add_zero_attn
