"""A small vision transformer for (B, 1, 28, 28) inputs.

7x7 patches -> 16 tokens -> linear patch embedding (dim 64) -> a learned CLS token and
position embedding -> 2 pre-LayerNorm encoder blocks -> LayerNorm -> classifier on CLS.

Attention uses *separate* ``q``, ``k``, ``v`` and ``out`` ``nn.Linear`` projections (no
``nn.MultiheadAttention``), so head pruning can see a head as 16 rows of q, k and v and 16
columns of ``out``; ``forward`` reads ``num_heads`` and ``head_dim`` from the module, so a
pruner that removes heads updates ``num_heads``.

Example:
    >>> import torch
    >>> from torchslim.zoo.transformer import TransformerMNIST
    >>> TransformerMNIST()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with explicit q/k/v/out projections."""

    def __init__(self, dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.q = nn.Linear(dim, inner)
        self.k = nn.Linear(dim, inner)
        self.v = nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, D)
        b, t, _ = x.shape
        heads = (b, t, self.num_heads, self.head_dim)
        q = self.q(x).view(heads).transpose(1, 2)  # (B, H, T, hd)
        k = self.k(x).view(heads).transpose(1, 2)  # (B, H, T, hd)
        v = self.v(x).view(heads).transpose(1, 2)  # (B, H, T, hd)
        att = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, H, T, T)
        att = att.softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)  # (B, T, H*hd)
        return self.out(y)  # (B, T, D)


class FeedForward(nn.Module):
    """Linear dim -> hidden, GELU, Linear hidden -> dim."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, D)
        return self.fc2(self.act(self.fc1(x)))  # (B, T, hidden) -> (B, T, D)


class Block(nn.Module):
    """Pre-LN encoder block: x + attn(ln1(x)), then x + ffn(ln2(x))."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, hidden: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, D)
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class TransformerMNIST(nn.Module):
    """Patch embedding + CLS token + position embedding -> ``depth`` blocks -> LN -> fc(CLS)."""

    def __init__(
        self,
        num_classes: int = 10,
        image_size: int = 28,
        patch: int = 7,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        head_dim: int = 16,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        tokens = (image_size // patch) ** 2  # 16
        self.patchify = nn.Unfold(kernel_size=patch, stride=patch)  # (B, 1*7*7, 16)
        self.embed = nn.Linear(patch * patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.Sequential(*(Block(dim, num_heads, head_dim, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28)
        x = self.patchify(x).transpose(1, 2)  # (B, 16, 49)
        x = self.embed(x)  # (B, 16, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, 17, D)
        x = self.norm(self.blocks(x))  # (B, 17, D)
        return self.head(x[:, 0])  # (B, classes), from the CLS token
