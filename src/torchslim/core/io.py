"""Atomic file writes: a reader sees the old file or the whole new one, never half of it.

Example:
    >>> import tempfile, pathlib
    >>> from torchslim.core.io import atomic_write
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_write(p) as tmp:
    ...     _ = tmp.write_text("done")
    >>> p.read_text()
    'done'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def cache_dir() -> Path:
    """Where torchslim keeps what it builds (trained teachers): ``$TORCHSLIM_CACHE`` or
    ``$XDG_CACHE_HOME/torchslim`` (default ``~/.cache/torchslim``)."""
    env = os.environ.get("TORCHSLIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torchslim"
