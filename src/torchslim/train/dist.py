"""torch.distributed awareness: only the main process writes checkpoints and prints.

Example:
    >>> from torchslim.train.dist import is_main_process
    >>> is_main_process()  # no process group: a single process is the main one
    True
"""

from __future__ import annotations

import torch.distributed as dist


def is_main_process() -> bool:
    """True without an initialized process group, else True only on rank 0."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    return dist.get_rank() == 0
