"""Models to and from ``.slim`` files: the manifest's module record (shapes after pruning or
factorization, technique modules, parametrizations; :mod:`torchslim.core.shapes`), one
encoding per state-dict tensor (:mod:`torchslim.export.slim.codec`), one ANS stream.

Saving decodes what it is about to write and checks it against what a reader must get back, so a
file that would not reload exactly is never written. Loading checks the file first
(:mod:`torchslim.export.slim.container`), decodes every tensor and checks a SHA-256 of the
decoded state, rebuilds a *copy* of the given model and loads it; any failure leaves nothing
half-loaded (the model passed in is never modified).

Example:
    >>> import tempfile, pathlib, torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "net.slim"
    >>> report = save_slim(net, p)
    >>> back = load_slim(p, torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    >>> x = torch.randn(3, 8)
    >>> torch.equal(back(x), net(x)), report.file_bytes == p.stat().st_size
    (True, True)
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.core.errors import InputError, TorchslimError
from torchslim.core.io import atomic_write
from torchslim.core.persist import ScaledInt, module_type_of
from torchslim.core.shapes import rebuild, record_shapes, structural_modules
from torchslim.export.slim import ans
from torchslim.export.slim.codec import Encoded, alias, decode_tensor, encode_tensor, segment_specs
from torchslim.export.slim.container import (
    FORMAT,
    FORMAT_VERSION,
    SlimFileError,
    container_bytes,
    parse_container,
    read_container,
    tensor_bytes,
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class TensorRow:
    """Size figures of one stored tensor: ``pos_bits``/``val_bits`` are coded bits of its
    position and value symbol streams, ``raw_bytes`` its uncoded payload,
    ``val_entropy_bits`` the empirical entropy (``n * H``) of its value symbols."""

    key: str
    encoding: str
    numel: int
    nnz: int
    pos_bits: float = 0.0
    val_bits: float = 0.0
    raw_bytes: int = 0
    val_symbols: int = 0
    val_entropy_bits: float = 0.0
    table_bits: int = 0

    @property
    def total_bits(self) -> float:
        """Everything this tensor costs in the payload (tables included)."""
        return self.pos_bits + self.val_bits + 8 * self.raw_bytes + self.table_bits


@dataclass
class SlimReport:
    """What :func:`save_slim` wrote: sizes of the file and of each tensor."""

    path: Path | None
    file_bytes: int
    manifest_bytes: int
    ans_bytes: int
    tensors: list[TensorRow] = field(default_factory=list)
    segments: list[ans.Segment] = field(default_factory=list, repr=False)
    raw: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def row(self, key: str) -> TensorRow:
        """The row of tensor ``key``."""
        return next(r for r in self.tensors if r.key == key)


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict (in name order)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k]
        h.update(f"\0{k}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def _hints(model: nn.Module) -> dict[str, tuple[ScaledInt, str]]:
    out = {}
    for name, m in structural_modules(model).items():
        mt = module_type_of(m)
        if mt is None:
            continue
        prefix = f"{name}." if name else ""
        for rel, h in mt.hints(m).items():
            out[f"{prefix}{rel}"] = (h, f"{prefix}{h.scale}")
    return out


def _describe(spec: dict[str, Any]) -> str:
    if spec["layout"] == "alias":
        return f"alias of {spec['of']}"
    v = spec["val"]
    val = f"{v['dtype']}" if v["kind"] == "raw" else f"{v['kind']}[{len(v['freqs'])}]"
    if spec["layout"] == "dense":
        return f"dense {val}"
    p = spec["pos"]
    pos = f"{p['kind']}{p.get('bits', '')}" + (f"/{p['order']}" if p["kind"] != "support" else f" of {p['of']}")
    return f"sparse({pos}) {val}"


def encode_state(model: nn.Module, float16: bool = False) -> tuple[dict[str, dict[str, Any]], list[Encoded], list[str]]:
    """Encode every state-dict tensor: (manifest entries by key, Encoded in manifest order, keys)."""
    state = model.state_dict()
    hints = _hints(model)
    scales = {s for _, s in hints.values()}
    first = [k for k in state if k not in hints]
    first.sort(key=lambda k: (k not in scales and state[k].dtype != torch.bool))  # scales, masks first
    order = first + [k for k in state if k in hints]
    done: dict[str, Encoded] = {}
    storage: dict[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype], str] = {}
    masks: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = {}
    for k in order:
        t = state[k]
        ident = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and ident in storage:
            done[k] = alias(storage[ident], t)
            continue
        storage[ident] = k
        hint, scale = hints.get(k, (None, None))
        support = None
        if t.is_floating_point() and tuple(t.shape) in masks:
            prefix = k.rpartition(".original")[0]
            cands = masks[tuple(t.shape)]
            support = next((c for c in cands if c[0].startswith(prefix)), cands[0]) if prefix else cands[0]
        enc = encode_tensor(k, t, hint=hint, scale=done[scale].expected if scale in done else None, scale_key=scale,
                            float16=float16 and k not in scales, support=support)
        done[k] = enc
        if t.dtype == torch.bool and t.numel() >= 16:
            masks.setdefault(tuple(t.shape), []).append((k, t.detach().cpu().numpy().ravel()))
    specs = {k: done[k].spec for k in order}
    return specs, [done[k] for k in order], order


def decode_state(manifest: dict[str, Any], payload: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict a manifest and payload hold; ValueError/KeyError if they disagree."""
    specs: dict[str, dict[str, Any]] = manifest["tensors"]
    seg_specs = [s for spec in specs.values() if spec["layout"] != "alias" for s in segment_specs(spec)]
    ans_bytes = payload["ans"].numpy().tobytes() if "ans" in payload else b""
    decoded = ans.decode(ans_bytes, seg_specs)
    state: dict[str, torch.Tensor] = {}
    i = 0
    for key, spec in specs.items():
        if spec["layout"] == "alias":
            state[key] = state[spec["of"]]
            continue
        n = len(segment_specs(spec))
        raw = None
        if spec["val"]["kind"] == "raw":
            start, count = (int(v) for v in spec["raw"])
            pool = payload[f"raw/{spec['val']['dtype']}"]
            if start < 0 or start + count > pool.numel():
                raise ValueError(f"tensor {key!r}: its raw values lie outside the payload")
            raw = pool[start:start + count]
        state[key] = decode_tensor(spec, decoded[i:i + n], raw, state)
        i += n
    return state


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and tensor_bytes(a) == tensor_bytes(b)


def slim_bytes(model: nn.Module, *, float16: bool = False, info: dict[str, Any] | None = None) -> tuple[bytes, SlimReport]:
    """The bytes of ``model``'s ``.slim`` file and its size report (nothing written)."""
    specs, encoded, keys = encode_state(model, float16)
    segments = [s for e in encoded for s in e.segments]
    ans_data, seg_bits = ans.encode(segments)
    payload: dict[str, torch.Tensor] = {"ans": torch.from_numpy(np.frombuffer(ans_data, dtype=np.uint8).copy())}
    pools: dict[str, list[torch.Tensor]] = {}
    for e in encoded:  # raw values: one payload tensor per stored dtype, each entry a slice of it
        for t in e.raw.values():
            pool = pools.setdefault(e.spec["val"]["dtype"], [])
            e.spec["raw"] = [sum(x.numel() for x in pool), t.numel()]
            pool.append(t.reshape(-1))
    payload.update({f"raw/{dt}": torch.cat(ts) for dt, ts in pools.items()})
    expected = {k: e.expected for k, e in zip(keys, encoded, strict=True)}
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "torchslim": _version("torchslim"),
        "constriction": _version("constriction"), "info": info or {}, "model": record_shapes(model),
        "tensors": specs, "state_sha256": state_digest(expected),
    }
    blob = container_bytes(manifest, payload)
    back = decode_state(*parse_container(blob))  # the writer's own check: a reader gets exactly `expected`
    bad = [k for k in keys if not _same(back[k], expected[k])]
    if bad:
        raise TorchslimError(f"internal error: the .slim encoding of {bad[:3]} does not decode exactly; nothing written")
    rows, j = [], 0
    for k, e in zip(keys, encoded, strict=True):
        row = TensorRow(k, _describe(e.spec), e.stats.get("numel", 0), e.stats.get("nnz", 0),
                        raw_bytes=sum(t.numel() * t.element_size() for t in e.raw.values()))
        if e.spec["layout"] == "sparse" and e.spec["pos"]["kind"] != "support":
            row.pos_bits, j = seg_bits[j], j + 1
            row.table_bits += ans.table_bits(e.spec["pos"]["freqs"])
        if e.spec["layout"] != "alias" and e.spec["val"]["kind"] != "raw":
            seg = e.segments[-1]
            row.val_bits, j = seg_bits[j], j + 1
            row.val_symbols, row.val_entropy_bits = len(seg.symbols), ans.empirical_entropy_bits(seg.symbols)
            row.table_bits += ans.table_bits(e.spec["val"]["freqs"])
        rows.append(row)
    text_len = len(blob) - sum(t.numel() * t.element_size() for t in payload.values())
    return blob, SlimReport(None, len(blob), text_len, len(ans_data), rows, segments, {k: v for k, v in payload.items() if k != "ans"})


def save_slim(model: nn.Module, path: str | os.PathLike[str], *, float16: bool = False,
              info: dict[str, Any] | None = None) -> SlimReport:
    """Write ``model`` to a ``.slim`` file atomically; returns the size report.

    ``float16=True`` stores float tensors stored raw as float16 (lossy; what a reader gets back
    is the float16-rounded value in the original dtype). ``info`` is a JSON-safe dict kept in
    the manifest (e.g. the zoo name).
    """
    blob, report = slim_bytes(model, float16=float16, info=info)
    with atomic_write(path) as tmp:
        tmp.write_bytes(blob)
    report.path = Path(path)
    return report


def read_slim(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Check a ``.slim`` file and decode it: (manifest, state dict). SlimFileError if bad."""
    manifest, payload = read_container(path)
    try:
        state = decode_state(manifest, payload)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise SlimFileError(f"{str(path)!r}: the payload does not decode as its manifest says ({e})") from None
    if state_digest(state) != manifest.get("state_sha256"):
        raise SlimFileError(f"{str(path)!r}: the decoded weights do not match the checksum written with them "
                            f"(written by constriction {manifest.get('constriction')}, this is {_version('constriction')})")
    return manifest, state


def load_slim(path: str | os.PathLike[str], model: nn.Module) -> nn.Module:
    """Rebuild a copy of ``model`` (a fresh instance of the saved model's original architecture,
    or an instance of the saved model itself) to the file's shapes and modules and load the
    weights; returns the copy in eval mode. ``model`` is left untouched.
    """
    manifest, state = read_slim(path)
    new = copy.deepcopy(model)
    rebuild(new, manifest["model"])
    try:
        new.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"{str(path)!r} does not fit {type(model).__name__}: {str(e).splitlines()[0]}") from None
    return new.eval()


__all__ = ["SlimReport", "TensorRow", "decode_state", "load_slim", "read_slim", "save_slim", "slim_bytes"]
