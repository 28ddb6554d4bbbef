"""The ``.slim`` file itself: one safetensors file. Its metadata holds a readable summary (format,
version, torchslim version, ``info`` such as the zoo name) and a SHA-256 checksum; its tensors
are the payload: ``manifest`` (the whole JSON manifest, DEFLATE-compressed with the standard
library's zlib and the preset dictionary :data:`MANIFEST_DICT`, because a JSON string inside the safetensors header would be escaped and its
frequency tables and module records are a sizeable part of a small model's file), ``ans`` (the
entropy-coded symbol streams as bytes) and ``raw/<dtype>`` (values stored as they are, every
tensor's a slice of the pool of its dtype).

The checksum covers the manifest text and every payload tensor (name, dtype, shape, bytes), so a
flipped byte anywhere, a truncation or an edit is detected before anything is decoded. It is a
checksum, not a signature: someone who rewrites a file can rewrite its checksum too. Reading
never unpickles: a ``torch.save`` (zip or legacy pickle) file is refused by its first bytes.

Example:
    >>> import tempfile, pathlib, torch
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.slim"
    >>> _ = write_container(p, {"format": FORMAT, "version": FORMAT_VERSION}, {"raw/a": torch.ones(2)})
    >>> manifest, tensors = read_container(p)
    >>> manifest["version"], tensors["raw/a"].tolist()
    (1, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from torchslim.core.errors import InputError
from torchslim.core.io import atomic_write

FORMAT = "torchslim.slim"
FORMAT_VERSION = 1
MANIFEST_KEY = "torchslim.slim"
DIGEST_KEY = "torchslim.sha256"
MAX_HEADER = 64 << 20
SUMMARY = ("format", "version", "torchslim", "info")
# zlib's preset dictionary for format version 1: strings every manifest repeats, so a small
# model's manifest compresses ~35% better. Part of the format: never edit it for version 1.
MANIFEST_DICT = (
    b'"kind":"bitmask","kind":"support","order":"col","BatchNorm2d","num_features":,"LayerNorm",'
    b'"quant_module","quant_input","weight_only_linear","low_rank_linear","low_rank_conv","weight_mask",'
    b'"params":{"weight":[{"key":"weight_mask"}]},"mode":"static","observer_kind":"minmax","calibrated":true,'
    b'"val":{"kind":"scaled","scale":".w_scale","axis":0,"layout":"alias","of":"Conv1d","Dropout","GELU",'
    b'{"format":"torchslim.slim","version":1,"torchslim":"0.1.0","constriction":"0.5.0","info":{"zoo":"lenet-mnist"},'
    b'"model":{"format":"torchslim.pruned/1","model":"","modules":{"":{"type":""},"tensors":{"codebook":[],'
    b'"indices":[]},"dtypes":{"indices":"uint8"},"key":"shared_weight","replaces":"Linear","Conv2d",".module":'
    b'{"type":"Conv2d","tensors":{"bias":[]},"attrs":{"in_channels":1,"out_channels":6,"kernel_size":[5,5],'
    b'"stride":[1,1],"padding":[0,0],"dilation":[1,1],"output_padding":[0,0],"groups":1},"plain":{"bias":true,'
    b'"padding_mode":"zeros"}"type":"MaxPool2d","ReLU","Flatten","attrs":{"start_dim":1,"end_dim":-1}},'
    b'"SharedWeight","in_features":,"out_features":}},"tensors":{".codebook":{"dtype":"float32","shape":[],'
    b'"val":{"kind":"raw","dtype":"float16"},"layout":"dense","raw":[0,]},".indices":{"dtype":"uint8","shape":[],'
    b'"val":{"kind":"sym","offset":0,"n":,"freqs":[]},"layout":"sparse","nnz":,"pos":{"kind":"relative",'
    b'"order":"row","bits":,"n":,"freqs":[]}},".module.bias":{"dtype":"float32","shape":[],"val":{"kind":"raw",'
    b'"dtype":"float32"},"layout":"dense","raw":[]}},"state_sha256":"'
)


class SlimFileError(InputError):
    """A file is not a readable ``.slim`` file: truncated, corrupted, edited, a pickle, or from
    a newer format version. Nothing was loaded."""


def digest(manifest_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the manifest text and every tensor's name, dtype, shape and bytes.

    Example:
        >>> len(digest("{}", {"a": torch.zeros(1)}))
        64
    """
    h = hashlib.sha256()
    h.update(manifest_json.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"\0{name}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The tensor's elements as bytes, C order (any dtype, any strides).

    Example:
        >>> tensor_bytes(torch.tensor([1], dtype=torch.int16))
        b'\\x01\\x00'
    """
    flat = t.detach().cpu().reshape(-1).clone(memory_format=torch.contiguous_format)
    return flat.view(torch.uint8).numpy().tobytes()


def write_container(path: str | os.PathLike[str], manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> int:
    """Write the file atomically; returns its size in bytes."""
    blob = container_bytes(manifest, tensors)
    with atomic_write(path) as tmp:
        tmp.write_bytes(blob)
    return len(blob)


def container_bytes(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bytes:
    """The bytes :func:`write_container` writes."""
    text = json.dumps({k: manifest[k] for k in SUMMARY if k in manifest}, separators=(",", ":"))
    deflate = zlib.compressobj(9, zdict=MANIFEST_DICT)
    packed = deflate.compress(json.dumps(manifest, separators=(",", ":")).encode()) + deflate.flush()
    tensors = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in tensors.items()}
    tensors["manifest"] = torch.frombuffer(bytearray(packed), dtype=torch.uint8)
    return st_save(tensors, metadata={MANIFEST_KEY: text, DIGEST_KEY: digest(text, tensors)})


def _refuse_pickle(data: bytes, where: str) -> None:
    if data[8:9] == b"{":  # a safetensors header (its length's first byte may be 0x80)
        return
    if data[:4] == b"PK\x03\x04" or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise SlimFileError(f"{where} holds a pickle (a torch.save file?): torchslim never unpickles; "
                            "a .slim file is written by torchslim.save")


def parse_container(data: bytes, where: str = "file") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Check and split a file's bytes into (manifest, payload tensors); SlimFileError if bad."""
    _refuse_pickle(data, where)
    if len(data) < 8:
        raise SlimFileError(f"{where} is truncated or not a .slim file ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, MAX_HEADER):
        raise SlimFileError(f"{where} is truncated or not a .slim file (header of {n} bytes, file of {len(data)})")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
        meta = header.pop("__metadata__", None) or {}
        end = max([int(v["data_offsets"][1]) for v in header.values()], default=0)
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError, IndexError) as e:
        raise SlimFileError(f"{where} is corrupted or not a .slim file: unreadable header ({e})") from None
    if not isinstance(meta, dict) or MANIFEST_KEY not in meta or DIGEST_KEY not in meta:
        raise SlimFileError(f"{where} is a safetensors file without a torchslim manifest (not a .slim file)")
    if len(data) != 8 + n + end:
        what = "truncated" if len(data) < 8 + n + end else "followed by extra bytes"
        raise SlimFileError(f"{where} is {what}: {len(data)} bytes, the header describes {8 + n + end}")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise SlimFileError(f"{where} is corrupted: {e}") from None
    text = meta[MANIFEST_KEY]
    try:
        manifest = json.loads(text)
        version = int(manifest.get("version", 0)) if isinstance(manifest, dict) else -1
    except (ValueError, TypeError, AttributeError):
        manifest, version = None, -1
    newer = version > FORMAT_VERSION
    if digest(text, tensors) != meta[DIGEST_KEY]:
        if newer:
            raise SlimFileError(f"{where}: its manifest says .slim format version {version}, newer than the "
                                f"{FORMAT_VERSION} this torchslim reads: upgrade torchslim (or the file is corrupted: "
                                "its checksum does not match)")
        raise SlimFileError(f"{where} is corrupted or was edited: its SHA-256 checksum does not match the contents")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SlimFileError(f"{where}: the manifest is not a {FORMAT} manifest")
    if newer:
        raise SlimFileError(f"{where} was written with .slim format version {version} (torchslim "
                            f"{manifest.get('torchslim', '?')}); this torchslim reads versions up to {FORMAT_VERSION}: "
                            "upgrade torchslim")
    try:
        inflate = zlib.decompressobj(zdict=MANIFEST_DICT)
        full = json.loads(inflate.decompress(tensors.pop("manifest").numpy().tobytes()) + inflate.flush())
    except (KeyError, zlib.error, ValueError, UnicodeDecodeError) as e:
        raise SlimFileError(f"{where}: its manifest cannot be read ({e})") from None
    if not isinstance(full, dict) or any(full.get(k) != manifest.get(k) for k in SUMMARY):
        raise SlimFileError(f"{where}: its manifest does not agree with its header")
    return full, tensors


def read_container(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a ``.slim`` file: (manifest, payload tensors); SlimFileError if bad."""
    where = repr(str(path))
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SlimFileError(f"cannot read {where}: {e}") from None
    return parse_container(data, where)
