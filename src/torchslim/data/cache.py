"""Built data-set arrays, kept on disk as ``.npz`` under ``core.io.cache_dir()/data``.

Building MNIST-5k (parsing a CSV) or MNIST-1D (running its generator) takes seconds; reading
the ``.npz`` back takes milliseconds. Files are written atomically and read with
``allow_pickle=False``; an unreadable or stale file is rebuilt with a warning.

Example:
    >>> import numpy as np
    >>> from torchslim.data.cache import cached_arrays
    >>> cached_arrays("doc-example", lambda: {"a": np.arange(3)}, disk=False)["a"].tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from torchslim.core.errors import MissingPackageError
from torchslim.core.io import atomic_write, cache_dir

Arrays = dict[str, np.ndarray]


def package_version(package: str, needed_for: str) -> str:
    """The installed version of distribution ``package`` (part of every cache key), or a
    :class:`MissingPackageError` naming it and what needed it."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageError(package, needed_for) from None


def cache_path(key: str) -> Path:
    """Where the arrays for ``key`` live on disk."""
    return cache_dir() / "data" / f"{key}.npz"


def _read(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _write(path: Path, arrays: Arrays) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # a file handle: np.savez would append ".npz" to a path


def cached_arrays(
    key: str,
    build: Callable[[], Arrays],
    *,
    disk: bool = True,
    check: Callable[[Arrays], object] | None = None,
) -> Arrays:
    """The arrays stored under ``key``, built with ``build()`` (and saved) when absent.

    ``check(arrays)`` may raise to reject a cached file (it is then rebuilt). Arrays come back
    read-only, so a caller cannot corrupt what another caller shares.
    """
    path = cache_path(key)
    arrays: Arrays | None = None
    if disk and path.is_file():
        try:
            arrays = _read(path)
            if check is not None:
                check(arrays)
        except Exception as e:  # noqa: BLE001 - any unreadable cache file is rebuilt
            warnings.warn(f"rebuilding data cache {path}: {type(e).__name__}: {e}", stacklevel=2)
            arrays = None
    if arrays is None:
        arrays = build()
        if check is not None:
            check(arrays)
        if disk:
            try:
                _write(path, arrays)
            except OSError as e:
                warnings.warn(f"could not write data cache {path}: {e}", stacklevel=2)
    for a in arrays.values():
        a.setflags(write=False)
    return arrays
