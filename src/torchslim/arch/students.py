"""Slim student builders: a thinner (``width_student``, see :mod:`torchslim.arch.width`) or
shallower (``depth_student``) copy of a teacher, of the same family and ready for distillation.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.students import depth_student
    >>> block = lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    >>> net = nn.Sequential(nn.Linear(4, 8), block(), block(), block(), nn.Linear(8, 2))
    >>> len(depth_student(net, 1, example_inputs=torch.zeros(1, 4)))
    3
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.arch.width import width_student
from torchslim.core.errors import ConfigError
from torchslim.core.inputs import as_tuple
from torchslim.core.modules import set_module

__all__ = ["depth_student", "width_student"]


def depth_student(model: nn.Module, keep: float | int = 0.5, *, example_inputs: Any) -> nn.Module:
    """A copy of ``model`` keeping ``keep`` (a fraction, or a count per container) of the
    removable blocks of each nn.Sequential/nn.ModuleList, evenly spaced (first and last kept).
    A block is removable when it is a container module (not a single layer) whose output has
    the shape of its input on ``example_inputs`` (a residual or transformer block). The report
    ``depth_report`` maps each container to the indices kept and removed.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchslim.arch.students import depth_student
        >>> block = lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        >>> net = nn.Sequential(nn.Linear(4, 8), *[block() for _ in range(4)], nn.Linear(8, 2))
        >>> small = depth_student(net, 0.5, example_inputs=torch.zeros(1, 4))
        >>> len(small), small.depth_report
        (4, {'': {'kept': [1, 4], 'removed': [2, 3]}})
    """
    student = copy.deepcopy(model)
    shapes: dict[str, bool] = {}
    hooks = []
    containers = [(n, m) for n, m in student.named_modules() if isinstance(m, (nn.Sequential, nn.ModuleList))]
    for cname, c in containers:
        for key, child in c.named_children():
            full = f"{cname}.{key}" if cname else key

            def hook(mod: nn.Module, inp: tuple[Any, ...], out: Any, full: str = full) -> None:
                same = bool(inp) and isinstance(inp[0], torch.Tensor) and isinstance(out, torch.Tensor) and inp[0].shape == out.shape
                shapes[full] = shapes.get(full, True) and same

            hooks.append(child.register_forward_hook(hook))
    try:
        with torch.no_grad():
            student(*as_tuple(example_inputs))
    finally:
        for h in hooks:
            h.remove()
    report: dict[str, dict[str, list[int]]] = {}
    for cname, c in containers:
        try:
            if (student.get_submodule(cname) if cname else student) is not c:
                continue
        except AttributeError:  # inside a block removed above
            continue
        keys = list(c._modules.keys())
        removable = [
            i for i, k in enumerate(keys)
            if shapes.get(f"{cname}.{k}" if cname else k, False) and any(True for _ in c._modules[k].children())
        ]
        if len(removable) < 2:
            continue
        n = len(removable)
        k = keep if isinstance(keep, int) and not isinstance(keep, bool) else max(1, int(round(n * float(keep))))
        if not 1 <= k <= n:
            raise ConfigError(f"depth_student: cannot keep {k} of the {n} removable blocks of {cname or '(model)'!r}")
        kept_pos = sorted({int(round(p)) for p in np.linspace(0, n - 1, k)})
        removed = [removable[i] for i in range(n) if i not in kept_pos]
        if not removed:
            continue
        report[cname] = {"kept": [removable[i] for i in kept_pos], "removed": removed}
        items = [(key, c._modules[key]) for i, key in enumerate(keys) if i not in removed]
        new = nn.Sequential(OrderedDict(items)) if isinstance(c, nn.Sequential) else nn.ModuleList([m for _, m in items])
        if type(c) not in (nn.Sequential, nn.ModuleList):
            new = copy.copy(c)
            new._modules = OrderedDict(items if isinstance(c, nn.Sequential) else [(str(i), m) for i, (_, m) in enumerate(items)])
        if cname:
            set_module(student, cname, new)
        else:
            student = new
    if not report:
        raise ConfigError("depth_student: found no nn.Sequential/nn.ModuleList with two or more "
                          "shape-preserving blocks to remove")
    student.depth_report = report  # type: ignore[assignment]
    return student
