"""How many bytes a pruned model's weights take in a sparse storage format (an estimate of
the file a sparse writer would produce, not of memory at run time).

Every parameter (the effective, masked weight for a masked layer; mask buffers are not
counted, the encoding replaces them) and every other buffer is counted. Tensors with fewer than
2 dimensions, or not floating point, are stored dense. A weight matrix is viewed as
``(rows = shape[0], cols = numel / rows)``, and encoded as:

- ``"dense"``: ``numel * itemsize``.
- ``"bitmask"``: non-zero values + one bit per position (``ceil(numel / 8)`` bytes).
- ``"csr"``: non-zero values + a relative column index of ``index_bits`` bits per value (the
  gap to the previous non-zero of the row, as in Deep Compression; a gap wider than
  ``2**index_bits`` adds filler zero entries) + ``rows + 1`` int32 row pointers.

With ``fallback_dense`` (default) a tensor is charged ``min(dense, encoded)``: a writer stores a
tensor sparse only when that is smaller.

Example:
    >>> import torch
    >>> from torchslim.prune.unstructured.storage import sparse_bytes
    >>> lin = torch.nn.Linear(64, 64, bias=False)
    >>> with torch.no_grad():
    ...     _ = lin.weight[:, 8:].zero_()   # 512 of 4096 weights left
    >>> sparse_bytes(lin, "dense"), sparse_bytes(lin, "bitmask"), sparse_bytes(lin, "csr")
    (16384, 2560, 2820)
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.prune.unstructured.masks import PARAM, masked_layers

ENCODINGS = ("dense", "bitmask", "csr")


def deployable_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of what a file of ``model`` would hold once its masks are made permanent:
    masked weights as their effective values under the plain name, masks and ``original``
    left out; shared tensors once.

    Example:
        >>> import torch
        >>> [n for n, _ in deployable_tensors(torch.nn.Linear(2, 2))]
        ['weight', 'bias']
    """
    masked = masked_layers(model)
    seen: set[int] = set()
    for name, module in masked.items():
        w = getattr(module, PARAM).detach()
        yield (f"{name}.{PARAM}" if name else PARAM), w
        seen.add(id(module.parametrizations[PARAM].original))
    for key, t in model.state_dict(keep_vars=True).items():
        if ".parametrizations." in f".{key}" or id(t) in seen:
            continue
        seen.add(id(t))
        yield key, t.detach()


def tensor_bytes(t: torch.Tensor, encoding: str = "bitmask", index_bits: int = 8) -> int:
    """Bytes of one tensor in ``encoding`` (see the module docstring), without the dense fallback.

    Example:
        >>> import torch
        >>> t = torch.zeros(4, 300); t[0, 0] = t[0, 299] = 1.0
        >>> tensor_bytes(t, "csr", index_bits=8)  # a gap of 299 needs 1 filler: 3 entries
        35
    """
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown sparse encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    if not 1 <= index_bits <= 32:
        raise ConfigError(f"index_bits must be between 1 and 32, got {index_bits}")
    item = t.element_size()
    dense = t.numel() * item
    if encoding == "dense" or t.dim() < 2 or not t.is_floating_point() or t.numel() == 0:
        return dense
    nnz = int(t.count_nonzero())
    if encoding == "bitmask":
        return nnz * item + math.ceil(t.numel() / 8)
    rows = t.shape[0]
    row_ids, cols = t.reshape(rows, -1).nonzero(as_tuple=True)  # row-major order, (nnz,) each
    prev = torch.full_like(cols, -1)  # the previous non-zero's column; -1 at a row's start
    if cols.numel() > 1:
        prev[1:] = torch.where(row_ids[1:] == row_ids[:-1], cols[:-1], -1)
    gaps = cols - prev  # >= 1
    fillers = int(((gaps - 1) // (1 << index_bits)).sum()) if cols.numel() else 0
    entries = nnz + fillers
    return entries * item + math.ceil(entries * index_bits / 8) + (rows + 1) * 4


def sparse_bytes(
    model: nn.Module, encoding: str = "bitmask", *, index_bits: int = 8, fallback_dense: bool = True
) -> int:
    """Estimated bytes of ``model``'s weights stored sparse in ``encoding`` (``"dense"``,
    ``"bitmask"`` or ``"csr"``); see the module docstring for each format.

    Example:
        >>> import torch
        >>> from torchslim.prune.api import prune
        >>> from torchslim.prune.unstructured import MagnitudePrune
        >>> net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 10))
        >>> small = prune(net, MagnitudePrune(sparsity=0.9))
        >>> sparse_bytes(small, "bitmask") < sparse_bytes(small, "dense") / 5
        True
    """
    total = 0
    for _, t in deployable_tensors(model):
        encoded = tensor_bytes(t, encoding, index_bits)
        total += min(encoded, t.numel() * t.element_size()) if fallback_dense else encoded
    return total
