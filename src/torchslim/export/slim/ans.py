"""Entropy coding of symbol streams with asymmetric numeral systems (``constriction``'s ANS coder).

Every symbol stream of a ``.slim`` file (shared-weight indices, integer weights, relative
position gaps, bitmask bits) is a *segment*: non-negative integer symbols and a frequency table
(the empirical counts, quantized to :data:`TABLE_BITS` bits so the table stays short; stored in
the manifest). All segments of a file go through one ANS stack, so the coder's flush overhead
(a few dozen bits) is paid once. ANS codes a stream in about its empirical cross-entropy under
the table; Huffman coding (Deep Compression) needs between ``H`` and ``H + 1`` bits per symbol.

Example:
    >>> import numpy as np
    >>> a = np.array([0, 0, 1, 0, 2, 0, 0, 1], dtype=np.int32)
    >>> seg = Segment(a, table_of(a))
    >>> data, bits = encode([seg])
    >>> [s.tolist() for s in decode(data, [(len(a), seg.freqs)])]
    [[0, 0, 1, 0, 2, 0, 0, 1]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from torchslim.core.errors import MissingPackageError

try:
    import constriction
except ImportError:  # pragma: no cover - constriction is a dependency
    constriction = None

TABLE_BITS = 12  # frequency tables sum to about 2**12


def _require() -> None:
    if constriction is None:  # pragma: no cover
        raise MissingPackageError("constriction", "entropy coding of .slim files")


@dataclass
class Segment:
    """One symbol stream: ``symbols`` (int32, each < len(freqs)) and its frequency table."""

    symbols: np.ndarray
    freqs: list[int]


def table_of(symbols: np.ndarray) -> list[int]:
    """The quantized frequency table of ``symbols``: counts scaled to sum about
    ``2**TABLE_BITS``, at least 1 for every symbol present, trailing zeros trimmed.

    Example:
        >>> import numpy as np
        >>> table_of(np.array([0, 0, 0, 2]))
        [3072, 0, 1024]
    """
    counts = np.bincount(np.asarray(symbols, dtype=np.int64).ravel())
    total = int(counts.sum())
    if total == 0:
        return [1]
    scaled = np.where(counts > 0, np.maximum(1, np.rint(counts * (2**TABLE_BITS / total))), 0)
    return [int(v) for v in scaled]


def cross_entropy_bits(symbols: np.ndarray, freqs: list[int]) -> float:
    """Bits an ideal coder needs for ``symbols`` under the table ``freqs``.

    Example:
        >>> import numpy as np
        >>> cross_entropy_bits(np.array([0, 1]), [1, 1])
        2.0
    """
    counts = np.bincount(np.asarray(symbols, dtype=np.int64).ravel(), minlength=len(freqs)).astype(np.float64)
    f = np.asarray(freqs, dtype=np.float64)
    used = counts > 0
    return float(-(counts[used] * np.log2(f[used] / f.sum())).sum())


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """``n * H``: the stream's length times the entropy of its own symbol histogram.

    Example:
        >>> import numpy as np
        >>> empirical_entropy_bits(np.array([0, 1, 2, 3]))
        8.0
    """
    counts = np.bincount(np.asarray(symbols, dtype=np.int64).ravel()).astype(np.float64)
    counts = counts[counts > 0]
    n = counts.sum()
    return float(-(counts * np.log2(counts / n)).sum()) if n else 0.0


def table_bits(freqs: list[int]) -> int:
    """What a table costs in the JSON manifest, in bits (its characters)."""
    return 8 * (len(",".join(map(str, freqs))) + 2)


def _model(freqs: list[int]) -> object:
    probs = np.asarray(freqs, dtype=np.float64)
    if len(probs) == 1:  # a one-symbol alphabet: give the coder a second, unused symbol
        probs = np.array([probs[0], 0.0])
    return constriction.stream.model.Categorical(probs, perfect=False)


def encode(segments: list[Segment]) -> tuple[bytes, list[float]]:
    """All segments through one ANS stack: (little-endian bytes, coded bits of each segment).

    The bits of a segment are the growth of the coder's valid bits while it was pushed; they
    add up to the stream's size up to the final flush.
    """
    _require()
    coder = constriction.stream.stack.AnsCoder()
    bits = [0.0] * len(segments)
    for i in range(len(segments) - 1, -1, -1):  # a stack: push the last segment first
        seg = segments[i]
        if len(seg.symbols) == 0:
            continue
        before = coder.num_valid_bits()
        coder.encode_reverse(np.ascontiguousarray(seg.symbols, dtype=np.int32), _model(seg.freqs))
        bits[i] = float(coder.num_valid_bits() - before)
    words = coder.get_compressed().astype("<u4")
    return words.tobytes(), bits


def decode(data: bytes, specs: list[tuple[int, list[int]]]) -> list[np.ndarray]:
    """Decode the streams ``encode`` wrote: ``specs`` is (count, table) per segment, in order.
    Raises ValueError if the data do not hold exactly these streams."""
    _require()
    if len(data) % 4:
        raise ValueError("the entropy-coded stream is not a whole number of 32-bit words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    out = []
    for n, freqs in specs:
        out.append(np.asarray(coder.decode(_model(freqs), n), dtype=np.int64) if n else np.zeros(0, np.int64))
    if not coder.is_empty():
        raise ValueError("the entropy-coded stream holds more data than the manifest describes")
    return out


def ideal_bits(symbols: np.ndarray, freqs: list[int]) -> float:
    """Estimated coded size of a segment including its table, for choosing an encoding."""
    return cross_entropy_bits(symbols, freqs) + table_bits(freqs) + (0 if len(symbols) else -table_bits(freqs))


def ceil_bytes(bits: float) -> int:
    """Whole bytes for ``bits``."""
    return math.ceil(bits / 8)


def pack_fixed(segments: list[Segment]) -> bytes:
    """The segments without entropy coding: each symbol at the fixed width of its alphabet,
    ``ceil(log2(len(freqs)))`` bits, bit-packed and concatenated (the "packed payload" a
    general-purpose compressor is compared on).

    Example:
        >>> import numpy as np
        >>> len(pack_fixed([Segment(np.arange(16, dtype=np.int32), [1] * 16)]))  # 16 x 4 bits
        8
    """
    out = []
    for seg in segments:
        width = max(1, math.ceil(math.log2(max(2, len(seg.freqs)))))
        bits = (seg.symbols.astype(np.uint32)[:, None] >> np.arange(width, dtype=np.uint32)) & 1
        out.append(np.packbits(bits.astype(np.uint8).ravel(), bitorder="little").tobytes())
    return b"".join(out)
