"""Per-epoch checkpoints: written atomically, read back with ``weights_only=True``.

A checkpoint holds only tensors, numbers, strings, lists, tuples and dicts: the model's
``state_dict``, optimizer and scheduler state, the finished epoch, the history, the best
validation score (and its weights with ``keep_best``), the RNG states, the run's
hyperparameters and the state of callbacks that have ``state_dict()``. Loading never
unpickles arbitrary objects.

Example:
    >>> import tempfile, torch
    >>> from torchslim.train import fit
    >>> from torchslim.train.checkpoint import load_checkpoint
    >>> d = tempfile.mkdtemp()
    >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    >>> _ = fit(torch.nn.Linear(4, 2), data, epochs=1, checkpoint_dir=d, progress=False)
    >>> load_checkpoint(f"{d}/checkpoint.pt")["epoch"]
    1
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.io import atomic_write
from torchslim.train.dist import is_main_process

FORMAT = "torchslim.train/1"
CHECKPOINT_NAME = "checkpoint.pt"

# Settings whose checkpointed state would silently override (or lack) what a new run asks for.
_MUST_MATCH = ("optimizer", "lr", "weight_decay", "momentum", "schedule", "warmup_steps", "keep_best")


def checkpoint_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`torchslim.train.fit` keeps its checkpoint inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (the old file or the whole new one, never half).
    Only the main process writes; other ranks return at once."""
    if not is_main_process():
        return
    with atomic_write(path) as tmp:
        torch.save(dict(state, format=FORMAT), tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True`` onto
    the CPU; a file that is unreadable or not a torchslim checkpoint is a ConfigError."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or objects weights_only refuses to unpickle
        raise ConfigError(
            f"cannot read checkpoint {str(path)!r} with weights_only=True: {str(e).splitlines()[0]}"
        ) from e
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ConfigError(f"{str(path)!r} is not a torchslim training checkpoint (format {FORMAT})")
    return ck


def check_state_matches(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise a ConfigError naming the first key that is missing, unexpected or of another
    shape in the checkpoint's ``state`` compared with ``model.state_dict()``."""
    expected = model.state_dict()
    head = f"{source} does not match {type(model).__name__}: key"
    for key, tensor in expected.items():
        if key not in state:
            raise ConfigError(f"{head} {key!r} is missing from the checkpoint")
        got = state[key]
        if isinstance(tensor, torch.Tensor) and isinstance(got, torch.Tensor) and got.shape != tensor.shape:
            raise ConfigError(
                f"{head} {key!r} has shape {tuple(got.shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in the model"
            )
    for key in state:
        if key not in expected:
            raise ConfigError(f"{head} {key!r} is in the checkpoint but not in the model")


def check_run_config(saved: Mapping[str, Any], current: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse to resume with hyperparameters the checkpoint's state would override; warn when
    a resumed run cannot end as an uninterrupted one would (other epochs, steps or seed)."""
    for key in _MUST_MATCH:
        if key in saved and saved[key] != current.get(key):
            raise ConfigError(
                f"checkpoint {str(path)!r} was written with {key}={saved[key]!r}, this run asks for "
                f"{key}={current.get(key)!r}; pass resume=False or another checkpoint_dir"
            )
    changed = [k for k in ("epochs", "steps_per_epoch", "seed") if saved.get(k) != current.get(k)]
    if current.get("schedule") == "constant" and "epochs" in changed:
        changed.remove("epochs")  # a constant schedule does not depend on the run's length
    if changed:
        diffs = ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        warnings.warn(
            f"resuming {str(path)!r} with {diffs}: the result will differ from an uninterrupted run",
            stacklevel=3,
        )


def _stateful(callbacks: Sequence[Any]) -> list[Any]:
    return [cb for cb in callbacks if callable(getattr(cb, "state_dict", None))]


def callback_states(callbacks: Sequence[Any]) -> list[dict[str, Any]]:
    """``{"type": class name, "state": state_dict()}`` of each callback that has ``state_dict``."""
    return [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in _stateful(callbacks)]


def load_callback_states(callbacks: Sequence[Any], saved: Sequence[dict[str, Any]] | None) -> None:
    """Give the stateful callbacks back, in order, what :func:`callback_states` saved; the
    stateless ones do not take part, so adding or dropping one of those is fine."""
    saved = list(saved or [])
    stateful = _stateful(callbacks)
    names = [type(cb).__name__ for cb in stateful]
    if names != [entry["type"] for entry in saved]:
        raise ConfigError(
            f"the checkpoint holds state for callbacks {[e['type'] for e in saved]}, but this run's "
            f"stateful callbacks are {names}; pass the same callbacks, or resume=False"
        )
    for cb, entry in zip(stateful, saved, strict=True):
        if callable(getattr(cb, "load_state_dict", None)):
            cb.load_state_dict(entry["state"])
