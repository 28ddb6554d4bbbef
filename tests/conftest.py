"""One private cache for the whole test session: teachers and data are built from scratch
(so a teacher's accuracy test can fail), once, and never touch the user's cache.

For quick local iteration, ``TORCHSLIM_TEST_CACHE=/some/dir`` reuses that folder instead
(CI never sets it, so CI always trains from scratch)."""

from __future__ import annotations

import os
import tempfile

_SESSION_CACHE = os.environ.get("TORCHSLIM_TEST_CACHE") or tempfile.mkdtemp(prefix="torchslim-test-cache-")


def pytest_configure(config: object) -> None:
    os.environ["TORCHSLIM_CACHE"] = _SESSION_CACHE
