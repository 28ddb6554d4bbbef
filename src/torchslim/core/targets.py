"""Targets: which layers a config applies to.

A target is a list of include patterns and a list of exclude patterns. A pattern is

- a qualified module name (``"features.0"``): that module and everything inside it;
- ``"re:<regex>"``: modules whose qualified name fully matches the regex (and their insides);
- ``"type:<ClassName>"``: modules of that class (``"type:Linear"``, ``"type:torch.nn.Conv2d"``).

Example:
    >>> import torch.nn as nn
    >>> from torchslim.core.targets import Target, select
    >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> [n for n, _ in select(m, Target(include=["type:Linear"], exclude=["2"]))]
    ['0']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn

from torchslim.core.errors import ConfigError


class Target(BaseModel):
    """Which modules to act on: ``include`` (default: all) minus ``exclude``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    include: tuple[str, ...] = ("re:.*",)
    exclude: tuple[str, ...] = ()

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _as_tuple(cls, v: object) -> object:
        if isinstance(v, str):
            v = (v,)
        if isinstance(v, (list, tuple)):
            for p in v:
                if isinstance(p, str) and p.startswith("re:"):
                    try:
                        re.compile(p[3:])
                    except re.error as e:
                        raise ValueError(f"bad regex in target pattern {p!r}: {e}") from None
            return tuple(v)
        return v


def _matches_one(pattern: str, name: str, module: nn.Module) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    if pattern.startswith("type:"):
        wanted = pattern[5:]
        prefix, _, cls_name = wanted.rpartition(".")
        if prefix == "nn":
            prefix = "torch.nn"
        # "Linear", "nn.Linear", "torch.nn.Linear" and "torch.nn.modules.linear.Linear" all match.
        return any(
            cls.__name__ == cls_name and cls.__module__.startswith(prefix) for cls in type(module).__mro__
        )
    return name == pattern


def _matches(patterns: Sequence[str], name: str, module: nn.Module, ancestors: dict[str, nn.Module]) -> bool:
    """True if ``name`` or one of its ancestors matches a pattern (types match the module itself)."""
    for p in patterns:
        if p.startswith("type:"):
            if _matches_one(p, name, module):
                return True
        elif any(_matches_one(p, a, ancestors[a]) for a in _lineage(name) if a in ancestors):
            return True
    return False


def _lineage(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def select(
    model: nn.Module,
    target: Target | None = None,
    kinds: tuple[type[nn.Module], ...] | None = None,
) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs that the target includes and does not exclude, optionally only
    modules that are instances of ``kinds``. The model itself (name "") is never returned."""
    target = target or Target()
    modules = dict(model.named_modules())
    chosen = []
    for name, module in modules.items():
        if not name or (kinds is not None and not isinstance(module, kinds)):
            continue
        if _matches(target.include, name, module, modules) and not _matches(
            target.exclude, name, module, modules
        ):
            chosen.append((name, module))
    return chosen


def check_names_exist(model: nn.Module, target: Target, where: str = "target") -> None:
    """Raise if a plain-name pattern names no module: a typo should not silently select nothing."""
    names = {n for n, _ in model.named_modules()}
    for p in (*target.include, *target.exclude):
        if not p.startswith(("re:", "type:")) and p not in names:
            close = [n for n in names if n and (p in n or n in p)][:5]
            raise ConfigError(f"{where}: no module named {p!r} in {type(model).__name__}" + (f" (did you mean {close}?)" if close else ""))
