"""Slim student builders: a thinner (``width_student``) or shallower (``depth_student``) copy
of a teacher, of the same family and ready for distillation.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.students import width_student
    >>> teacher = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    >>> student = width_student(teacher, 0.5)
    >>> [tuple(m.weight.shape) for m in student if isinstance(m, nn.Linear)]
    [(150, 784), (50, 150), (10, 50)]
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.inputs import as_tuple
from torchslim.core.modules import set_module

WIDENABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _scale(width: int, multiplier: float) -> int:
    return max(1, int(round(width * multiplier)))


def _call_order(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of the Linear/Conv layers in the order the forward pass calls them."""
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=n: order.append(n))
        for n, m in model.named_modules() if isinstance(m, LAYERS)
    ]
    try:
        with torch.no_grad():
            model(*as_tuple(example_inputs))
    finally:
        for h in hooks:
            h.remove()
    return order


def _slice_copy(new: nn.Module, old: nn.Module) -> None:
    """Initialise ``new`` from the leading slice of each of ``old``'s tensors (same names)."""
    old_state = old.state_dict()
    with torch.no_grad():
        for key, t in new.state_dict().items():
            src = old_state[key]
            if t.dim() == 0:
                t.copy_(src)
            else:
                t.copy_(src[tuple(slice(0, d) for d in t.shape)])


def _rebuilt(m: nn.Module, keep_in: bool, keep_out: bool, multiplier: float) -> nn.Module:
    if isinstance(m, nn.Linear):
        i = m.in_features if keep_in else _scale(m.in_features, multiplier)
        o = m.out_features if keep_out else _scale(m.out_features, multiplier)
        new: nn.Module = nn.Linear(i, o, bias=m.bias is not None)
    elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
        i = m.in_channels if keep_in else _scale(m.in_channels, multiplier)
        o = m.out_channels if keep_out else _scale(m.out_channels, multiplier)
        depthwise = m.groups == m.in_channels == m.out_channels and m.groups > 1
        if m.groups != 1 and not depthwise:
            raise ConfigError(f"width_student: cannot scale a grouped convolution (groups={m.groups})")
        new = type(m)(i, o, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                      groups=i if depthwise else 1, bias=m.bias is not None, padding_mode=m.padding_mode)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = type(m)(_scale(m.num_features, multiplier), eps=m.eps, momentum=m.momentum,
                      affine=m.affine, track_running_stats=m.track_running_stats)
    else:  # LayerNorm
        if len(m.normalized_shape) != 1:
            raise ConfigError("width_student: only 1-D LayerNorm shapes can be scaled")
        new = nn.LayerNorm(_scale(m.normalized_shape[0], multiplier), eps=m.eps,
                           elementwise_affine=m.elementwise_affine)
    ref = next(m.parameters(), None)
    if ref is not None:
        new = new.to(device=ref.device, dtype=ref.dtype)
    _slice_copy(new, m)
    return new.train(m.training)


def width_student(model: nn.Module, multiplier: float, *, example_inputs: Any = None) -> nn.Module:
    """A copy of ``model`` with every hidden width (Linear features, conv channels, norm sizes)
    scaled by ``multiplier``; the input of the first layer and the output of the last keep their
    size. First and last are found by calling the model on ``example_inputs`` when given (and
    the student is then checked on them), else taken in registration order. Weights start from
    the leading slice of the teacher's. Hidden-to-hidden layers keep about ``multiplier**2`` of
    their parameters. Supports models built of Linear, Conv1d/2d (groups 1 or depthwise),
    BatchNorm and LayerNorm with parameter-free glue; a reshape that hard-codes a width (or a
    Flatten whose size is not a multiple of the channel count) is not supported.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchslim.arch.students import width_student
        >>> net = nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
        >>> width_student(net, 0.25, example_inputs=torch.zeros(1, 1, 8, 8))[0].out_channels
        4
    """
    if not multiplier > 0:
        raise ConfigError(f"width_student: multiplier must be > 0, got {multiplier}")
    student = copy.deepcopy(model)
    for name, m in student.named_modules():
        if isinstance(m, WIDENABLE) or not list(m.parameters(recurse=False)):
            continue
        raise ConfigError(
            f"width_student: module {name or '(model)'!r} ({type(m).__name__}) holds parameters "
            "of its own, which cannot be scaled; supported layers: Linear, Conv, BatchNorm, LayerNorm"
        )
    names = [n for n, m in student.named_modules() if isinstance(m, WIDENABLE)]
    layer_names = [n for n, m in student.named_modules() if isinstance(m, LAYERS)]
    if not layer_names:
        raise ConfigError("width_student: the model has no Linear or Conv layer")
    order = _call_order(student, example_inputs) if example_inputs is not None else layer_names
    first, last = order[0], order[-1]
    for name in names:
        m = student.get_submodule(name)
        set_module(student, name, _rebuilt(m, keep_in=name == first, keep_out=name == last, multiplier=multiplier))
    if example_inputs is not None:
        try:
            with torch.no_grad():
                student(*as_tuple(example_inputs))
        except RuntimeError as e:
            raise ConfigError(f"width_student: the scaled model does not run on the example inputs "
                              f"(a width is hard-coded somewhere): {e}") from None
    return student


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
