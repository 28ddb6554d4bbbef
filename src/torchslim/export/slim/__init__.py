"""The ``.slim`` artifact: one safetensors file holding a JSON manifest (torchslim and format
version, every module's shapes after pruning or factorization, technique modules, one encoding
per tensor) and the payload (ANS entropy-coded symbol streams, raw values), checksummed.

Encodings: float32/float16 raw; integers (int8/int4 weights, k-means codebook indices, mask
bits) as entropy-coded symbols; ``scaled`` int weights restored as ``q * scale``; sparse
layouts with bitmask or relative-index positions. Loading never unpickles and never leaves a
model half-loaded. The public ``torchslim.save`` / ``torchslim.load`` (zoo names, technique
module types) are in :mod:`torchslim.recipe.artifact`.

Example:
    >>> import tempfile, pathlib, torch
    >>> from torchslim.export.slim import load_slim, save_slim
    >>> net = torch.nn.Linear(16, 4)
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "lin.slim"
    >>> _ = save_slim(net, p)
    >>> torch.equal(load_slim(p, torch.nn.Linear(16, 4)).weight, net.weight)
    True
"""

from torchslim.export.slim.container import FORMAT, FORMAT_VERSION, SlimFileError, read_container
from torchslim.export.slim.model import (
    SlimReport,
    TensorRow,
    decode_state,
    load_slim,
    read_slim,
    save_slim,
    slim_bytes,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "SlimFileError", "SlimReport", "TensorRow", "decode_state", "load_slim",
    "read_container", "read_slim", "save_slim", "slim_bytes",
]
