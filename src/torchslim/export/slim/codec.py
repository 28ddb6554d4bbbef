"""Per-tensor encodings of a ``.slim`` file: the writer picks, for every tensor, the smallest of

- layout ``dense``, or ``sparse``: the non-zero positions, in row-major (``row``) or
  column-major (``col``, the 2-D view ``(shape[0], -1)`` transposed) scan order, stored as
  a ``bitmask`` (one symbol per position), as ``relative`` gaps with ``bits``-bit symbols (the
  largest symbol is an escape that advances ``2**bits - 1`` positions, Deep Compression's
  filler), or as the ``support`` of another tensor (a pruning mask already in the file);
- values: ``raw`` (float32, float16, ...; a slice of the payload tensor ``raw/<dtype>``), ``sym`` (integers,
  as ``value - offset`` symbols: int8/int4 weights, k-means codebook indices, mask bits), or
  ``scaled`` (a float tensor its module uses only through ``round(t / scale)``, see
  :class:`torchslim.core.persist.ScaledInt`: stored as integer symbols and restored as
  ``q * scale``).

Symbol streams are entropy coded (:mod:`torchslim.export.slim.ans`); sizes are compared with the
ideal coded length plus the table. Decoding is exact: the writer decodes what it wrote and
compares (``expected`` is what a reader gets back).

Example:
    >>> import torch
    >>> t = torch.zeros(4, 16); t[0, :3] = 1.5
    >>> enc = encode_tensor("w", t)
    >>> enc.spec["layout"], torch.equal(enc.expected, t)
    ('sparse', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from torchslim.core.persist import ScaledInt
from torchslim.core.shapes import dtype_named
from torchslim.export.slim.ans import Segment, ideal_bits, table_of

MAX_ALPHABET = 4096
GAP_BITS = range(1, 9)


@dataclass
class Encoded:
    """One tensor's manifest entry, its symbol segments (in order), its raw payload tensors,
    what decoding it gives back, and size figures for reports."""

    spec: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    raw: dict[str, torch.Tensor] = field(default_factory=dict)
    expected: torch.Tensor | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def _dt(t: torch.Tensor | torch.dtype) -> str:
    return str(t if isinstance(t, torch.dtype) else t.dtype).removeprefix("torch.")


def _view2d(shape: tuple[int, ...]) -> tuple[int, int]:
    rows = shape[0] if len(shape) else 1
    return rows, (int(np.prod(shape)) // rows if rows else 0)


def _scan(flat: np.ndarray, shape: tuple[int, ...], order: str) -> np.ndarray:
    """C-order flat array -> the scan order ``order``."""
    if order == "row":
        return flat
    r, c = _view2d(shape)
    return flat.reshape(r, c).T.reshape(-1)


def _unscan(flat: np.ndarray, shape: tuple[int, ...], order: str) -> np.ndarray:
    if order == "row":
        return flat
    r, c = _view2d(shape)
    return flat.reshape(c, r).T.reshape(-1)


def gaps(positions: np.ndarray, bits: int) -> np.ndarray:
    """Relative-index symbols of sorted ``positions`` (escape ``2**bits - 1`` = skip that many).

    Example:
        >>> import numpy as np
        >>> gaps(np.array([0, 5, 6]), 2).tolist()
        [0, 3, 1, 0]
    """
    esc = (1 << bits) - 1
    d = np.diff(np.concatenate([[-1], positions.astype(np.int64)])) - 1  # zeros skipped before each entry
    reps = d // esc + 1
    out = np.full(int(reps.sum()), esc, dtype=np.int32)
    out[np.cumsum(reps) - 1] = d % esc
    return out


def ungaps(symbols: np.ndarray, bits: int) -> np.ndarray:
    """Positions from :func:`gaps` symbols.

    Example:
        >>> import numpy as np
        >>> ungaps(np.array([0, 3, 1, 0]), 2).tolist()
        [0, 5, 6]
    """
    esc = (1 << bits) - 1
    s = symbols.astype(np.int64)
    advance = np.where(s == esc, esc, s + 1)
    return (np.cumsum(advance) - 1)[s != esc]


def _position_candidates(nz: np.ndarray, shape: tuple[int, ...]) -> list[tuple[float, dict[str, Any], Segment]]:
    """(estimated bits, spec, segment) for every way of storing the non-zero mask ``nz`` (C order)."""
    orders = ["row"] + (["col"] if len(shape) >= 2 and min(_view2d(shape)) > 1 else [])
    out = []
    for order in orders:
        scanned = _scan(nz, shape, order)
        bitmask = scanned.astype(np.int32)
        t = table_of(bitmask)
        out.append((ideal_bits(bitmask, t), {"kind": "bitmask", "order": order, "n": len(bitmask), "freqs": t}, Segment(bitmask, t)))
        pos = np.flatnonzero(scanned)
        for b in GAP_BITS:
            g = gaps(pos, b)
            t = table_of(g)
            out.append((ideal_bits(g, t), {"kind": "relative", "order": order, "bits": b, "n": len(g), "freqs": t}, Segment(g, t)))
    return out


def _decode_positions(pos: dict[str, Any], symbols: np.ndarray | None, numel: int, support: np.ndarray | None) -> np.ndarray:
    """Positions (indices into the scan order) from a decoded position segment."""
    if pos["kind"] == "support":
        return np.flatnonzero(support)
    if pos["kind"] == "bitmask":
        if len(symbols) != numel:
            raise ValueError(f"a bitmask of {len(symbols)} bits for a tensor of {numel}")
        return np.flatnonzero(symbols)
    p = ungaps(symbols, int(pos["bits"]))
    if len(p) and (p[-1] >= numel or p[0] < 0):
        raise ValueError("relative positions run past the tensor")
    return p


def _symbols_of(values: np.ndarray) -> tuple[int, np.ndarray] | None:
    if values.size == 0:
        return 0, values.astype(np.int32)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo >= MAX_ALPHABET:
        return None
    return lo, (values - lo).astype(np.int32)


def encode_tensor(
    key: str,
    t: torch.Tensor,
    *,
    hint: ScaledInt | None = None,
    scale: torch.Tensor | None = None,
    scale_key: str | None = None,
    float16: bool = False,
    support: tuple[str, np.ndarray] | None = None,
) -> Encoded:
    """The smallest encoding of ``t`` (see the module docstring). ``scale`` is the decoded scale
    tensor a ``hint`` refers to (stored under ``scale_key``); ``support`` a boolean C-order mask of another tensor already
    stored, (key, mask), whose True positions may be reused when they cover ``t``'s non-zeros."""
    t = t.detach().cpu().contiguous()
    if t.is_floating_point():
        t = t + 0.0  # -0.0 -> +0.0: a zero is a zero, whichever layout stores it
    shape = tuple(t.shape)
    base: dict[str, Any] = {"dtype": _dt(t), "shape": list(shape)}
    val_kind, values, expected, offset = "raw", None, t, 0
    stored = t
    if t.is_floating_point() and hint is not None and scale is not None:
        bshape = [1] * t.dim()
        if hint.axis is not None:
            bshape[hint.axis] = -1
        s = scale.to(t.dtype).reshape(bshape)
        q = torch.clamp(torch.round(t / s), hint.qmin, hint.qmax)
        back = q * s
        if bool(torch.isfinite(s).all()) and bool((s > 0).all()) and torch.equal(torch.clamp(torch.round(back / s), hint.qmin, hint.qmax), q):
            val_kind, values, expected, offset = "scaled", q.to(torch.int64).numpy().ravel(), back + 0.0, hint.qmin
            base["val"] = {"kind": "scaled", "scale": scale_key or hint.scale, "axis": hint.axis}
    if val_kind == "raw" and not t.is_floating_point() and t.numel() >= 8:
        ints = t.to(torch.int64).numpy().ravel()
        if _symbols_of(ints) is not None:
            val_kind, values = "sym", ints
            base["val"] = {"kind": "sym"}
    if val_kind == "raw":
        stored = t.to(torch.float16) if float16 and t.dtype == torch.float32 else t
        expected = stored.to(t.dtype)
        base["val"] = {"kind": "raw", "dtype": _dt(stored)}
        item = stored.element_size()

    def sym_part(vals: np.ndarray, fixed_offset: int | None) -> tuple[float, dict[str, Any], Segment]:
        off, syms = (fixed_offset, (vals - fixed_offset).astype(np.int32)) if fixed_offset is not None else _symbols_of(vals)
        tab = table_of(syms)
        return ideal_bits(syms, tab), {"offset": off, "n": len(syms), "freqs": tab}, Segment(syms, tab)

    fixed = offset if val_kind == "scaled" else None
    numpy_ok = stored.dtype != torch.bfloat16
    flat = values if values is not None else (stored.numpy().ravel() if numpy_ok else None)
    nz = (flat != 0) if values is not None else (expected.numpy().ravel() != 0 if numpy_ok else None)
    best: tuple[float, Encoded] | None = None
    # dense
    if val_kind == "raw":
        best = (8.0 * t.numel() * item, Encoded({**base, "layout": "dense"}, raw={f"raw/{key}": stored}))
    else:
        bits, part, seg = sym_part(flat, fixed)
        best = (bits, Encoded({**base, "layout": "dense", "val": {**base["val"], **part}}, segments=[seg]))
    # sparse
    nnz = int(nz.sum()) if nz is not None else t.numel()
    if t.numel() >= 16 and nnz < t.numel():
        cands = _position_candidates(nz, shape)
        mask = support[1] if support is not None else None
        if mask is not None and mask.shape == nz.shape and not bool((nz & ~mask).any()) and val_kind == "raw":
            cands.append((0.0, {"kind": "support", "order": "row", "of": support[0]}, Segment(np.zeros(0, np.int32), [1])))
        for pos_bits, pos, pseg in sorted(cands, key=lambda c: c[0])[:1] + [c for c in cands if c[1]["kind"] == "support"]:
            order = pos["order"]
            where = np.flatnonzero(mask) if pos["kind"] == "support" else np.flatnonzero(_scan(nz, shape, order))
            vals = _scan(flat, shape, order)[where]
            segs = [pseg] if pos["kind"] != "support" else []
            if val_kind == "raw":
                vt = torch.from_numpy(np.ascontiguousarray(vals))
                bits, spec = pos_bits + 8.0 * vt.numel() * item, {**base, "layout": "sparse", "nnz": len(where), "pos": pos}
                enc = Encoded(spec, segments=segs, raw={f"raw/{key}": vt})
            else:
                vbits, part, vseg = sym_part(vals, fixed)
                bits = pos_bits + vbits
                enc = Encoded({**base, "layout": "sparse", "nnz": len(where), "pos": pos, "val": {**base["val"], **part}},
                              segments=[*segs, vseg])
            if bits < best[0]:
                best = (bits, enc)
    enc = best[1]
    enc.expected = expected.reshape(shape).clone()
    enc.stats = {"numel": t.numel(), "nnz": nnz, "estimated_bits": best[0]}
    return enc


def alias(of: str, t: torch.Tensor) -> Encoded:
    """An entry for a tensor that shares its storage with an earlier one."""
    return Encoded({"dtype": _dt(t), "shape": list(t.shape), "layout": "alias", "of": of}, expected=t.detach().clone())


def segment_specs(spec: dict[str, Any]) -> list[tuple[int, list[int]]]:
    """(count, table) of the symbol segments a tensor entry reads, in order."""
    out = []
    if spec["layout"] == "sparse" and spec["pos"]["kind"] != "support":
        out.append((int(spec["pos"]["n"]), spec["pos"]["freqs"]))
    if spec.get("layout") != "alias" and spec["val"]["kind"] != "raw":
        out.append((int(spec["val"]["n"]), spec["val"]["freqs"]))
    return out


def decode_tensor(
    spec: dict[str, Any], segments: list[np.ndarray], raw: torch.Tensor | None,
    ref: dict[str, torch.Tensor],
) -> torch.Tensor:
    """Rebuild one tensor from its entry, its decoded segments, its raw payload tensor and the
    tensors it refers to (``ref``: already decoded tensors by key)."""
    shape = tuple(int(d) for d in spec["shape"])
    dtype = dtype_named(spec["dtype"], "tensor entry")
    numel = int(np.prod(shape)) if shape else 1
    val = spec["val"]
    segs = list(segments)
    if spec["layout"] == "dense" and val["kind"] == "raw":
        if raw is None or raw.numel() != numel:
            raise ValueError(f"the raw tensor does not hold {numel} values")
        return raw.reshape(shape).to(dtype)
    if spec["layout"] == "sparse":
        pos = spec["pos"]
        support = None
        if pos["kind"] == "support":
            support = ref[spec["pos"]["of"]].numpy().ravel() != 0
        where = _decode_positions(pos, None if pos["kind"] == "support" else segs.pop(0), numel, support)
        if len(where) != int(spec["nnz"]):
            raise ValueError(f"{len(where)} positions decoded, the entry says {spec['nnz']}")
    if val["kind"] == "raw":
        values = raw.reshape(-1).to(dtype).numpy()
    else:
        values = segs.pop(0).astype(np.int64) + int(val["offset"])
    if spec["layout"] == "sparse":
        order = spec["pos"]["order"]
        full = np.zeros(numel, dtype=values.dtype)
        full[where] = values
        values = _unscan(full, shape, order)
    if values.size != numel:
        raise ValueError(f"{values.size} values decoded for a tensor of {numel}")
    if val["kind"] == "scaled":
        s = ref[val["scale"]].to(dtype)
        bshape = [1] * len(shape)
        if val["axis"] is not None:
            bshape[int(val["axis"])] = -1
        return torch.from_numpy(values.astype(np.float64)).to(dtype).reshape(shape) * s.reshape(bshape)
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype).reshape(shape)
