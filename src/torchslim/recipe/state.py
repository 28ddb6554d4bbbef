"""Per-stage run state, so an interrupted run continues from the last finished stage.

``<out>/state/stage-NN/`` holds ``record.json`` (the stage's record and what its family needs
to rebuild the model's structure), ``model.safetensors`` (the weights; never pickle) and the
ONNX file measured. A stage directory is written under a temporary name and renamed into
place, so it is either complete or absent. Each record carries a fingerprint of the recipe up
to and including that stage: editing stage 3 keeps stages 1-2 and reruns from 3.

Example:
    >>> import tempfile, torch
    >>> from torchslim.recipe.state import StateDir
    >>> s = StateDir(tempfile.mkdtemp())
    >>> s.save(0, {"fingerprint": "abc"}, torch.nn.Linear(2, 2))
    >>> s.record(0, "abc")["fingerprint"], sorted(s.weights(0))
    ('abc', ['bias', 'weight'])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from torchslim.core.io import atomic_write


def fingerprint(data: Any) -> str:
    """16 hex digits of SHA-256 over canonical JSON.

    Example:
        >>> fingerprint({"a": 1}) == fingerprint({"a": 1}), len(fingerprint([1]))
        (True, 16)
    """
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StateDir:
    """The state folder of one run."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _stage(self, i: int) -> Path:
        return self.root / f"stage-{i:02d}"

    def workdir(self, i: int, fp: str) -> Path:
        """Scratch space of stage ``i`` while it runs (training checkpoints), per fingerprint."""
        return self.root / f"stage-{i:02d}.work-{fp}"

    def clear(self) -> None:
        """Forget every saved stage and measurement."""
        if self.root.exists():
            shutil.rmtree(self.root)

    def drop_from(self, i: int) -> None:
        """Forget stage ``i`` and every later one."""
        if not self.root.exists():
            return
        for p in self.root.glob("stage-*"):
            try:
                n = int(p.name[6:8])
            except ValueError:
                continue
            if n >= i and not p.name.endswith(".work") and ".work-" not in p.name:
                shutil.rmtree(p, ignore_errors=True)

    def save(self, i: int, record: dict[str, Any], model: nn.Module | None, onnx: Path | None = None) -> None:
        """Write stage ``i``'s record, weights and ONNX file as one directory, atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".stage-{i:02d}.", dir=self.root))
        try:
            if model is not None:
                state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
                         if isinstance(v, torch.Tensor)}
                save_file(state, str(tmp / "model.safetensors"))
            if onnx is not None and Path(onnx).is_file():
                shutil.copyfile(onnx, tmp / "model.onnx")
            (tmp / "record.json").write_text(json.dumps(record, indent=2, default=str))
            target = self._stage(i)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def record(self, i: int, fp: str) -> dict[str, Any] | None:
        """Stage ``i``'s record if it exists, is readable and has fingerprint ``fp``."""
        p = self._stage(i) / "record.json"
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        return rec if rec.get("fingerprint") == fp else None

    def weights(self, i: int) -> dict[str, torch.Tensor]:
        """Stage ``i``'s saved state dict (safetensors; empty if none was saved)."""
        p = self._stage(i) / "model.safetensors"
        if not p.is_file():
            return {}
        try:
            return load_file(str(p))
        except (OSError, SafetensorError) as e:
            raise ValueError(f"{p}: unreadable ({e})") from None

    def onnx(self, i: int) -> Path | None:
        """Stage ``i``'s ONNX file, if saved."""
        p = self._stage(i) / "model.onnx"
        return p if p.is_file() else None

    def save_json(self, name: str, data: Any) -> None:
        """Write ``<root>/<name>.json`` atomically."""
        with atomic_write(self.root / f"{name}.json") as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str))

    def load_json(self, name: str) -> Any:
        """``<root>/<name>.json``, or None if absent or unreadable."""
        try:
            return json.loads((self.root / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None
