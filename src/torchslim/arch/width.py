"""Width student: a copy of a teacher with every hidden width scaled by a multiplier.

With ``example_inputs`` the widths come from :func:`torchslim.core.graph.build_graph`: each
channel group (dimensions tied across layers, residual adds, norms, flatten, concat, and
parameters a module holds itself, such as a CLS token or a position embedding) keeps its
leading ``round(units * multiplier)`` units; attention heads are units of their own (fewer
heads of the same size, and the module's head count is updated). The model's input and
output dimensions never change. Without ``example_inputs`` (or when the graph cannot be
captured) layers are rebuilt one by one in registration order: every Linear/Conv/norm width
is scaled except the first layer's input and the last layer's output, which needs a model
built only of those layers and parameter-free glue.

Weights start from the teacher's kept slices, so a student of a trained teacher starts from
a meaningful function, ready for distillation.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.width import width_student
    >>> teacher = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    >>> student = width_student(teacher, 0.5)
    >>> [tuple(m.weight.shape) for m in student if isinstance(m, nn.Linear)]
    [(150, 784), (50, 150), (10, 50)]
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.graph import ChannelGroup, GraphCaptureError, build_graph
from torchslim.core.inputs import as_tuple
from torchslim.core.modules import get_module, set_module
from torchslim.core.surgery import fix_sizes, shrink, tensor_sizes, update_heads

WIDENABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _scale(width: int, multiplier: float) -> int:
    return max(1, int(round(width * multiplier)))


# --- graph path: channel groups from core.graph -------------------------------------------


def _dropped(groups: list[ChannelGroup], multiplier: float) -> tuple[dict[str, dict[int, set[int]]], dict[int, int]]:
    """tensor name -> dim -> indices to drop (every unit past the kept ones); and id(group) -> kept units."""
    drop: dict[str, dict[int, set[int]]] = {}
    kept: dict[int, int] = {}
    for g in groups:
        keep = min(g.units, _scale(g.units, multiplier))
        kept[id(g)] = keep
        for m in g.members:
            drop.setdefault(m.param, {}).setdefault(m.dim, set()).update(
                range(m.offset + keep * m.k, m.offset + g.units * m.k))
    return drop, kept


def _by_graph(student: nn.Module, multiplier: float, inputs: tuple[torch.Tensor, ...]) -> None:
    groups = build_graph(copy.deepcopy(student).eval(), inputs).groups  # same parameter names
    drop, kept = _dropped(groups, multiplier)
    before = {n: tensor_sizes(m) for n, m in student.named_modules()}
    with torch.no_grad():
        for name, dims in drop.items():
            owner_name, _, attr = name.rpartition(".")
            owner = get_module(student, owner_name)
            if owner._parameters.get(attr) is not None:
                p = owner._parameters[attr]
                owner._parameters[attr] = nn.Parameter(shrink(p.data, dims), requires_grad=p.requires_grad)
            elif owner._buffers.get(attr) is not None:
                owner._buffers[attr] = shrink(owner._buffers[attr], dims)
    for name, m in student.named_modules():
        fix_sizes(m, before[name])
    for g in groups:
        for mod_name, head_dim in dict.fromkeys(g.head_splits):  # q, k and v name the same module
            update_heads(get_module(student, mod_name), g.units, kept[id(g)], head_dim)


# --- rebuild path: layer by layer, registration order --------------------------------------


def _call_order(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of the Linear/Conv layers in the order the forward pass calls them."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: order.append(n))
             for n, m in model.named_modules() if isinstance(m, LAYERS)]
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
            t.copy_(src if t.dim() == 0 else src[tuple(slice(0, d) for d in t.shape)])


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


def _by_layers(student: nn.Module, multiplier: float, example_inputs: Any, why: str) -> None:
    for name, m in student.named_modules():
        if not isinstance(m, WIDENABLE) and list(m.parameters(recurse=False)):
            raise ConfigError(
                f"width_student: module {name or '(model)'!r} ({type(m).__name__}) holds parameters of its own; "
                f"their widths are found from the graph, which needs example_inputs ({why})")
    names = [n for n, m in student.named_modules() if isinstance(m, WIDENABLE)]
    layer_names = [n for n, m in student.named_modules() if isinstance(m, LAYERS)]
    if not layer_names:
        raise ConfigError("width_student: the model has no Linear or Conv layer")
    order = _call_order(student, example_inputs) if example_inputs is not None else layer_names
    first, last = order[0], order[-1]
    for name in names:
        m = student.get_submodule(name)
        set_module(student, name, _rebuilt(m, keep_in=name == first, keep_out=name == last, multiplier=multiplier))


def width_student(model: nn.Module, multiplier: float, *, example_inputs: Any = None) -> nn.Module:
    """A copy of ``model`` with every hidden width (features, channels, norm sizes, attention
    heads, and the matching dimensions of parameters a module holds itself) scaled by
    ``multiplier`` in (0, 1]; hidden-to-hidden layers keep about ``multiplier**2`` of their
    parameters. With ``example_inputs`` the tied widths come from the model's graph (see the
    module docstring) and the student is checked on them. The student's attribute
    ``width_path`` says which path built it (``"graph"`` or ``"layers"``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchslim.arch.width import width_student
        >>> net = nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
        >>> width_student(net, 0.25, example_inputs=torch.zeros(1, 1, 8, 8))[0].out_channels
        4
    """
    if not 0 < multiplier <= 1:
        raise ConfigError(f"width_student: multiplier must be in (0, 1], got {multiplier}")
    student = copy.deepcopy(model)
    path = "layers"
    if example_inputs is None:
        _by_layers(student, multiplier, None, "none were given")
    else:
        inputs = as_tuple(example_inputs)
        try:
            _by_graph(student, multiplier, inputs)
            path = "graph"
        except GraphCaptureError as e:
            student = copy.deepcopy(model)
            _by_layers(student, multiplier, inputs, f"the graph could not be captured: {e}")
        was = student.training
        try:
            with torch.no_grad():
                student.eval()(*inputs)
        except RuntimeError as e:
            raise ConfigError(f"width_student: the scaled model does not run on the example inputs "
                              f"(a width is hard-coded somewhere): {e}") from None
        finally:
            student.train(was)
    student.width_path = path  # type: ignore[assignment]
    return student
