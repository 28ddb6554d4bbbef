"""Trained teachers: train a zoo model with its recipe once, then load it from the cache.

Weights live at ``cache_dir()/zoo/<name>-<key>.safetensors``, where ``<key>`` is a short hash
of the architecture's source file, the recipe, the data set and :data:`ZOO_FORMAT_VERSION`:
editing a model or its recipe trains a new teacher instead of loading a stale one. The file's
safetensors metadata holds the measured test accuracy, the training time and a SHA-256 of the
tensors; a ``.json`` beside it repeats the record for people. Files are written atomically and
read without pickle. A file that fails to parse, has the wrong tensors or a wrong checksum is
retrained with a warning, never half-loaded.

Example:
    >>> from torchslim import zoo
    >>> model = zoo.teacher("lenet300-mnist", progress=False)  # doctest: +SKIP
    >>> zoo.teacher_record("lenet300-mnist")["test_accuracy"] > 0.95  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from torchslim import data, train
from torchslim.core.io import atomic_write, cache_dir
from torchslim.measure.accuracy import evaluate
from torchslim.zoo.registry import ZOO, ZooEntry, model

ZOO_FORMAT_VERSION = 1  # bump to invalidate every cached teacher


def cache_key(entry: ZooEntry) -> str:
    """12 hex digits identifying what a teacher is: architecture source, recipe, data set."""
    source = inspect.getsource(sys.modules[entry.architecture.__module__])
    identity = {
        "architecture": f"{entry.architecture.__module__}.{entry.architecture.__qualname__}",
        "source": source,
        "recipe": entry.recipe.to_dict(),
        "dataset": entry.dataset,
        "data_format": data.DATA_FORMAT_VERSION,
        "num_classes": entry.num_classes,
        "zoo_format": ZOO_FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def teacher_path(name: str) -> Path:
    """Where the cached weights of teacher ``name`` are (or will be) stored."""
    entry = ZOO.get(name)
    return cache_dir() / "zoo" / f"{name}-{cache_key(entry)}.safetensors"


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``state`` (in name order)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def teacher_record(name: str) -> dict[str, Any] | None:
    """The record stored with the cached teacher ``name`` (``test_accuracy``,
    ``train_seconds``, ``recipe``, ...), or None if it is not cached or unreadable."""
    path = teacher_path(name)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return json.loads(meta["record"])
    except (OSError, SafetensorError, KeyError, ValueError):
        return None


def _load(entry: ZooEntry, path: Path) -> nn.Module | None:
    """The cached teacher, or None (with a warning if a file was there but unusable)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
        if meta.get("tensors_sha256") != tensors_digest(state):
            raise ValueError("checksum mismatch (the file was changed or truncated)")
        net = model(entry.name)
        net.load_state_dict(state, strict=True)
    except (OSError, SafetensorError, RuntimeError, ValueError, KeyError) as e:
        warnings.warn(
            f"cached teacher {path} is unusable ({type(e).__name__}: {e}); retraining",
            stacklevel=3,
        )
        return None
    return net.eval()


def _save(net: nn.Module, record: dict[str, Any], path: Path) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    meta = {"record": json.dumps(record), "tensors_sha256": tensors_digest(state)}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    with atomic_write(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def _train(entry: ZooEntry, progress: bool) -> tuple[nn.Module, dict[str, Any]]:
    r = entry.recipe
    splits = data.load(entry.dataset, batch_size=r.batch_size, seed=r.seed, shift=r.shift)
    net = model(entry.name)
    start = time.perf_counter()
    result = train.fit(
        net, splits.train, epochs=r.epochs, val_data=splits.val, optimizer=r.optimizer, lr=r.lr,
        weight_decay=r.weight_decay, schedule=r.schedule, warmup_steps=r.warmup_steps, seed=r.seed,
        progress=progress, description=f"teacher {entry.name}",
    )
    seconds = time.perf_counter() - start
    net = result.model.eval()
    accuracy = evaluate(net, splits.test)
    record = {
        "name": entry.name, "key": cache_key(entry), "dataset": entry.dataset,
        "test_accuracy": accuracy, "test_samples": splits.sizes["test"],
        "val_accuracy": result.best_val, "train_seconds": round(seconds, 2),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "recipe": r.to_dict(),
        "documented_accuracy": entry.documented_accuracy,
    }
    if accuracy < entry.documented_accuracy:
        warnings.warn(
            f"teacher {entry.name} reached {accuracy:.2%} test accuracy, below its documented "
            f"{entry.documented_accuracy:.2%}", stacklevel=3,
        )
    return net, record


def teacher(name: str, *, retrain: bool = False, progress: bool = True) -> nn.Module:
    """The trained teacher ``name`` in eval mode: loaded from the cache, or trained with its
    recipe (and cached) when absent, stale, unusable, or when ``retrain`` is set.

    Example:
        >>> from torchslim import zoo
        >>> net = zoo.teacher("mlp-mnist1d", progress=False)  # doctest: +SKIP
        >>> net(zoo.example_inputs("mlp-mnist1d")).shape  # doctest: +SKIP
        torch.Size([1, 10])
    """
    entry = ZOO.get(name)
    path = teacher_path(name)
    if not retrain:
        cached = _load(entry, path)
        if cached is not None:
            return cached
    net, record = _train(entry, progress)
    try:
        _save(net, record, path)
    except OSError as e:
        warnings.warn(f"could not cache teacher {name} at {path}: {e}", stacklevel=2)
    return net
