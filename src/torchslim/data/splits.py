"""Fixed, stratified splits of a labelled array into train / val / test indices.

Example:
    >>> import numpy as np
    >>> from torchslim.data.splits import stratified_split
    >>> y = np.repeat(np.arange(2), 10)
    >>> tr, va, te = stratified_split(y, val=0.2, test=0.3, seed=0)
    >>> len(tr), len(va), len(te)
    (10, 4, 6)
"""

from __future__ import annotations

import numpy as np


def _quotas(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Per-class sample counts summing to ``round(total * fraction)`` (largest remainder)."""
    raw = counts * fraction
    quota = np.floor(raw).astype(int)
    extra = int(round(counts.sum() * fraction)) - int(quota.sum())
    quota[np.argsort(-(raw - quota), kind="stable")[:extra]] += 1
    return quota


def stratified_split(
    y: np.ndarray, *, val: float, test: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test): each class is shuffled with ``seed`` and cut so that val
    and test get their fraction of every class and exactly ``round(len(y) * fraction)`` in
    total; each index array is sorted, and the three are disjoint and cover ``range(len(y))``."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    n_test, n_val = _quotas(counts, test), _quotas(counts, val)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c, t, v in zip(classes, n_test, n_val, strict=True):
        idx = rng.permutation(np.flatnonzero(y == c))
        parts[2].append(idx[:t])
        parts[1].append(idx[t : t + v])
        parts[0].append(idx[t + v :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def take(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays dict (``x_train``, ``y_train``, ...) for the given index splits."""
    out = {}
    for split, idx in (("train", train), ("val", val), ("test", test)):
        out[f"x_{split}"] = np.ascontiguousarray(x[idx], dtype=np.float32)
        out[f"y_{split}"] = np.ascontiguousarray(y[idx], dtype=np.int64)
    return out
