"""Seeding and random-number state: what makes two runs, or a run and its resumption, equal.

The loop reseeds torch, Python ``random`` and NumPy at the start of *every* epoch from
``(seed, epoch)``, along with the DataLoader's own ``generator`` if it has one. An epoch's
shuffling, dropout and augmentation then depend only on the seed, the epoch number and the
weights, so a run resumed at epoch k draws exactly what an uninterrupted run draws there.
A sampler with a private generator the loop cannot see (a custom sampler) is not covered:
give the DataLoader ``generator=`` or ``shuffle=True`` instead.

RNG states are also encoded as tensors, numbers and lists (never pickled objects) so a
checkpoint can hold them and still load with ``torch.load(..., weights_only=True)``.

Example:
    >>> import torch
    >>> from torchslim.train.rng import seed_everything
    >>> seed_everything(3); a = torch.rand(1)
    >>> seed_everything(3); bool(torch.rand(1) == a)
    True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A well-mixed 63-bit seed for ``epoch`` of a run seeded with ``seed``; distributed ranks
    other than 0 get their own (so dropout and augmentation differ between ranks).

    Example:
        >>> epoch_seed(0, 1) != epoch_seed(0, 2) != epoch_seed(1, 1) != epoch_seed(0, 1, rank=1)
        True
    """
    entropy = [seed, epoch] if rank == 0 else [seed, epoch, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and all CUDA devices), Python ``random`` and NumPy's global RNG."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))


def seed_loader(data: Any, seed: int, epoch: int, rank: int = 0) -> None:
    """Reseed what shuffles ``data`` for ``epoch``: its ``generator`` (DataLoader) or its
    sampler's, and call ``sampler.set_epoch(epoch)`` where the sampler has it
    (DistributedSampler). Data made of ``parts`` (:class:`~torchslim.train.mixed.MixedData`)
    has each part reseeded, the i-th from ``seed + i``. Anything else is left alone."""
    for i, part in enumerate(getattr(data, "parts", ()) or ()):
        seed_loader(part, seed + i, epoch, rank)
    s = epoch_seed(seed, epoch, rank)
    sampler = getattr(data, "sampler", None)
    seen: set[int] = set()
    for owner in (data, sampler, getattr(data, "batch_sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and id(gen) not in seen:
            seen.add(id(gen))
            gen.manual_seed(s)
    if sampler is not None and callable(getattr(sampler, "set_epoch", None)):
        sampler.set_epoch(epoch)


def get_rng_state() -> dict[str, Any]:
    """The global RNG states of torch, Python and NumPy, as tensors, numbers and lists."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
