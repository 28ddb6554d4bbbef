"""One dependency graph for structured pruning, quantizer placement and folding.

Capture: ``torch.export.export(strict=False)``. It gives an ATen-level graph in which every
node carries its fake-tensor shape (``meta["val"]``) and the module that produced it
(``meta["nn_module_stack"]``), and parameters appear as named graph inputs; it also handles
models that ``torch.fx.symbolic_trace`` cannot (Python control flow on shapes, Hugging Face
models). If non-strict export fails, strict (TorchDynamo) export is tried; if both fail a
:class:`GraphCaptureError` names the cause.

Analysis: every dimension of every tensor (parameters included) gets a layout over
union-find components (:mod:`torchslim.core.graph_dims`); each op ties dims by its rule
(:mod:`torchslim.core.graph_rules`). A :class:`ChannelGroup` is a root component that
touches parameters and is not pinned: removing unit ``u`` removes the matching slices of
every member parameter. Model inputs and outputs pin their dims (output shapes never change);
ops without a rule pin what they touch and are listed in :attr:`DependencyGraph.unsupported`.

Grouped convolutions and GroupNorm make a whole group the unit (every group keeps its size);
depthwise convolutions follow their input channel by channel; transposed convolutions tie
their weight's dim 0 to the input. ``nn.MultiheadAttention``'s packed heads are pinned (see
``torchslim.prune.split_attention``).

Reshapes: a view that splits a channel dim into ``(heads, head_dim)`` makes the head the unit
(the module that did the split is recorded, so its head-count attributes can be updated); a
merge (flatten) makes the leading dim's channels repeat over the inner size. ``torch.export``
bakes every size into a constant, so a view to a *hard-coded* size looks like any other; the
pruner confirms each group by a trial removal on a copy and pins the groups that break
(``torchslim.prune.structured.engine.preflight``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> g = build_graph(net, (torch.zeros(1, 4),))
    >>> [(grp.units, sorted({m.param for m in grp.members})) for grp in g.groups]
    [(8, ['0.bias', '0.weight', '2.weight'])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from torchslim.core.errors import TorchslimError
from torchslim.core.graph_dims import DimUnion, Layout, repeat
from torchslim.core.graph_rules import (
    BINARY,
    FACTORY,
    POOL,
    REDUCE,
    RESHAPE,
    UNARY,
    broadcast,
    reshape,
    shape_of,
    tie_matmul,
)


class GraphCaptureError(TorchslimError, RuntimeError):
    """The model's forward could not be captured as a graph."""


@dataclass(frozen=True)
class Member:
    """Unit ``u`` of a group is ``param[offset + u*k : offset + (u+1)*k]`` along ``dim``."""

    param: str
    dim: int
    offset: int
    k: int


@dataclass
class ChannelGroup:
    """Tied channels: ``units`` removable units, each spanning slices of every member."""

    root: int
    units: int
    members: list[Member]
    head_splits: list[tuple[str, int]] = field(default_factory=list)  # (attention module, head_dim)

    @property
    def is_heads(self) -> bool:
        """True if a unit is an attention head (the channels were split into heads)."""
        return bool(self.head_splits)

    def name(self) -> str:
        """A readable name: the first producing parameter (dim 0), or the first member."""
        first = next((m for m in self.members if m.dim == 0 and m.param.endswith("weight")), self.members[0])
        kind = "heads" if self.is_heads else "channels"
        return f"{first.param.rsplit('.', 1)[0]}:{kind}"


@dataclass
class DependencyGraph:
    """Groups of tied channels, pinned groups (with reasons) and ops without a rule."""

    groups: list[ChannelGroup]
    pinned: dict[str, list[str]]  # group name -> reasons it must keep its size
    unsupported: list[str]  # "op in module" without a rule
    graph: fx.Graph | None = None


def capture(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model(*inputs)``: non-strict first, then strict.

    Example:
        >>> import torch
        >>> ep = capture(torch.nn.Linear(2, 3), (torch.zeros(1, 2),))
        >>> sorted(ep.graph_signature.inputs_to_parameters.values())
        ['bias', 'weight']
    """
    errors = []
    for strict in (False, True):
        try:
            with torch.no_grad():
                return torch.export.export(model, inputs, strict=strict)
        except Exception as e:  # noqa: BLE001 - reported below with both causes
            errors.append(f"{'strict' if strict else 'non-strict'}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise GraphCaptureError(f"cannot capture {type(model).__name__} with torch.export ({'; '.join(errors)})")


def _module_of(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def build_graph(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> DependencyGraph:
    """Capture ``model`` on ``inputs`` and compute its channel groups.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
        >>> [g.units for g in build_graph(net.eval(), (torch.zeros(1, 3, 8, 8),)).groups]
        [8]
    """
    ep = capture(model, inputs)
    sig = ep.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
             **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    dims = DimUnion()
    env: dict[fx.Node, Any] = {}
    params: dict[str, Layout | list[Layout]] = {}
    unsupported: list[str] = []

    def get(a: Any) -> Any:
        return env.get(a) if isinstance(a, fx.Node) else None

    for node in ep.graph.nodes:
        if node.op == "placeholder":
            shp = shape_of(node)
            if shp is None:
                continue
            env[node] = [dims.fresh(s) for s in shp]
            if node.name in names:
                params[names[node.name]] = env[node]
                dims.untouched.update(lay[0][0] for lay in env[node])
            else:
                for lay in env[node]:
                    dims.pin_layout(lay, "model input")
        elif node.op == "output":
            for a in torch.utils._pytree.tree_leaves(node.args):
                for lay in get(a) or []:
                    if isinstance(lay, list) and lay and isinstance(lay[0], tuple):
                        dims.pin_layout(lay, "model output")
        elif node.op == "call_function":
            env[node] = _apply(dims, node, get, unsupported)
    groups, pinned = _collect(dims, params)
    return DependencyGraph(groups=groups, pinned=pinned, unsupported=unsupported, graph=ep.graph)


def _apply(dims: DimUnion, node: fx.Node, get: Any, unsupported: list[str]) -> Any:
    t = str(node.target)
    mod = _module_of(node)
    why = f"{t.removeprefix('aten.')} in {mod or 'the model'}"
    a = node.args
    x = get(a[0]) if a else None
    xs = shape_of(a[0]) if a and isinstance(a[0], fx.Node) else None
    out_shape = shape_of(node)
    if t == "<built-in function getitem>":
        src = get(a[0])
        return src[a[1]] if isinstance(src, list) and a[1] < len(src) and isinstance(src[a[1]], list) else None
    if t in UNARY and x is not None:
        return x
    if t in BINARY:
        return broadcast(dims, node, get, why)
    if t in ("aten.linear.default",):
        w, b = get(a[1]), get(a[2]) if len(a) > 2 else None
        dims.bind(w, 1, x[-1], why)
        if b is not None:
            dims.tie_layouts(b[0], w[0], why)
        return x[:-1] + [w[0]]
    if t in CONV:
        return _conv(dims, node, get, why)
    if t in ("aten.group_norm.default", "aten.native_group_norm.default"):
        return _group_norm(dims, node, get, why)
    if t in ("aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default"):
        for p in a[1:5]:
            if get(p) is not None:
                dims.bind(get(p), 0, x[1], why)
        return x if t == "aten.batch_norm.default" else [x, None, None]
    if t == "aten.layer_norm.default":
        if len(a[1]) != 1 or len(a) < 3 or a[2] is None:
            dims.pin_layout(x[-1], f"{why}: normalized shape without a weight")
        for p in a[2:4]:
            if get(p) is not None:
                dims.bind(get(p), 0, x[-1], why)
        return x
    if t == "aten.embedding.default":
        dims.pin_layout(get(a[0])[0], f"{why}: rows are looked up by index")
        return get(a[1]) + [get(a[0])[1]]
    if t in FACTORY:
        return [dims.fresh(s) for s in out_shape] if out_shape is not None else None
    if t in POOL and x is not None and out_shape is not None:
        return x[:2] + [dims.fresh(s) for s in out_shape[2:]] if len(out_shape) == len(xs) else _pin_all(dims, node, get, why, unsupported)
    if t in REDUCE and x is not None:
        at = 2 if t == "aten.linalg_vector_norm.default" else 1  # (x, ord, dim, keepdim) vs (x, dim, keepdim)
        red = {d % len(xs) for d in (a[at] if len(a) > at and a[at] is not None else range(len(xs)))}
        keep = len(a) > at + 1 and a[at + 1]
        return [dims.fresh(1) if d in red else x[d] for d in range(len(xs)) if keep or d not in red]
    if t in RESHAPE and x is not None and out_shape is not None:
        return reshape(dims, x, xs, out_shape, mod, why)
    if t in ("aten.transpose.int", "aten.permute.default", "aten.t.default") and x is not None:
        order = list(range(len(xs)))
        if t == "aten.permute.default":
            order = [d % len(xs) for d in a[1]]
        else:
            d0, d1 = (a[1] % len(xs), a[2] % len(xs)) if t == "aten.transpose.int" else (0, 1)
            order[d0], order[d1] = order[d1], order[d0]
        return [x[d] for d in order]
    if t in ("aten.expand.default", "aten.expand_as.default") and x is not None:
        out = [dims.fresh(s) for s in out_shape]
        for j in range(1, len(xs) + 1):
            if xs[-j] == out_shape[-j]:
                out[-j] = x[-j]
        return out
    if t == "aten.cat.default":
        d = (a[1] if len(a) > 1 else 0) % len(out_shape)
        parts = [(get(p), shape_of(p)) for p in a[0]]
        out = [dims.fresh(s) for s in out_shape]
        out[d] = [seg for lay, shp in parts if shp[d] for seg in lay[d]]
        for j in range(len(out_shape)):
            if j != d:
                out[j] = parts[0][0][j]
                for lay, _ in parts[1:]:
                    dims.tie_layouts(out[j], lay[j], why)
        return out
    if t in ("aten.select.int", "aten.slice.Tensor") and x is not None:
        d = a[1] % len(xs)
        if t == "aten.slice.Tensor" and out_shape == xs:
            return x
        dims.pin_layout(x[d], f"{why}: indexes into the dimension")
        out = list(x)
        if t == "aten.select.int":
            out.pop(d)
        else:
            out[d] = dims.fresh(out_shape[d])
        return out
    if t == "aten.im2col.default" and x is not None and len(xs) == 4:  # nn.Unfold: (B, C, H, W) -> (B, C*kh*kw, L)
        return [x[0], repeat(x[1], a[1][0] * a[1][1]), dims.fresh(out_shape[2])]
    if t in ("aten.matmul.default", "aten.bmm.default", "aten.mm.default"):
        return tie_matmul(dims, x, get(a[1]), xs, shape_of(a[1]), out_shape, why)
    if t == "aten.scaled_dot_product_attention.default":
        q, k, v = x, get(a[1]), get(a[2])
        for j in range(len(q) - 2):
            dims.tie_layouts(q[j], k[j], why)
            dims.tie_layouts(q[j], v[j], why)
        dims.tie_layouts(q[-1], k[-1], why)
        dims.tie_layouts(k[-2], v[-2], why)
        return q[:-1] + [v[-1]]
    return _pin_all(dims, node, get, why, unsupported)


CONV = ("aten.conv1d.default", "aten.conv2d.default", "aten.conv3d.default", "aten.convolution.default",
        "aten.conv_transpose1d.default", "aten.conv_transpose2d.input", "aten.conv_transpose3d.input")


def _conv(dims: DimUnion, node: fx.Node, get: Any, why: str) -> Any:
    """Convolutions, plain, grouped, depthwise and transposed. Grouped: a unit is a whole group
    (its ``C_in/G`` inputs and ``C_out/G`` outputs), so every group keeps the same size."""
    a = node.args
    t = str(node.target)
    x, w = get(a[0]), get(a[1])
    b = get(a[2]) if len(a) > 2 else None
    xs, ws, out_shape = shape_of(a[0]), shape_of(a[1]), shape_of(node)
    transposed = bool(a[6]) if t == "aten.convolution.default" else "transpose" in t
    groups = a[8] if t == "aten.convolution.default" else (a[6] if len(a) > 6 else 1)
    c_in = xs[1]
    if not transposed:  # weight (C_out, C_in/G, *k)
        if groups == 1:
            dims.bind(w, 1, x[1], why)
        elif ws[1] == 1:  # depthwise (multiplier m = C_out/C_in): out channel o <- in channel o // m
            dims.bind(w, 0, repeat(x[1], ws[0] // c_in), why)
        else:
            unit = dims.fresh(groups)[0][0]
            dims.tie_layouts(x[1], [(unit, c_in // groups, c_in)], why)
            dims.bind(w, 0, [(unit, ws[0] // groups, ws[0])], why)
        out_ch = w[0]
    else:  # weight (C_in, C_out/G, *k)
        dims.bind(w, 0, x[1], why)
        if groups == 1:
            out_ch = w[1]
        else:
            dims.pin_layout(w[1], f"{why}: outputs within a group of a grouped transposed convolution")
            unit = dims.fresh(groups)[0][0]
            dims.tie_layouts(x[1], [(unit, c_in // groups, c_in)], why)
            out_ch = [(unit, ws[1], ws[1] * groups)]
    if b is not None:
        dims.bind(b, 0, out_ch, why)
    return [x[0], out_ch] + [dims.fresh(s) for s in out_shape[2:]]


def _group_norm(dims: DimUnion, node: fx.Node, get: Any, why: str) -> Any:
    """GroupNorm: a unit is a whole group of ``C/G`` channels (the other groups' statistics
    stay exactly as they were)."""
    a = node.args
    x = get(a[0])
    c = shape_of(a[0])[1]
    native = str(node.target) == "aten.native_group_norm.default"
    groups, params = (a[6], a[1:3]) if native else (a[1], a[2:4])
    lays = [get(p) for p in params if get(p) is not None]
    if groups == 1 or not lays:
        dims.pin_layout(x[1], f"{why}: " + ("one group normalizes over every channel" if groups == 1
                                             else "GroupNorm without affine parameters"))
    else:
        unit = dims.fresh(groups)[0][0]
        dims.tie_layouts(x[1], [(unit, c // groups, c)], why)
        for lay in lays:
            dims.bind(lay, 0, x[1], why)
    return [x, None, None] if native else x


def _pin_all(dims: DimUnion, node: fx.Node, get: Any, why: str, unsupported: list[str]) -> Any:
    unsupported.append(why)
    for arg in torch.utils._pytree.tree_leaves((node.args, node.kwargs)):
        lay = get(arg)
        if isinstance(lay, list):
            for dim in lay:
                if isinstance(dim, list) and dim and isinstance(dim[0], tuple):
                    dims.pin_layout(dim, f"{why}: no rule for this op")
    shp = shape_of(node)
    if shp is None:
        return None
    out = [dims.fresh(s) for s in shp]
    for lay in out:
        dims.pin_layout(lay, f"{why}: no rule for this op")
    return out


def _collect(dims: DimUnion, params: dict[str, Any]) -> tuple[list[ChannelGroup], dict[str, list[str]]]:
    by_root: dict[int, list[Member]] = {}
    for pname, lays in params.items():
        for d, lay in enumerate(lays):
            off = 0
            for c, k, n in lay:
                root, kr = dims.find(c)
                by_root.setdefault(root, []).append(Member(pname, d, off, k * kr))
                off += n
    groups, pinned = [], {}
    for root, members in by_root.items():
        grp = ChannelGroup(root, dims.size[root], members, list(dims.info[root].head_splits))
        if grp.units < 2 or all(m.dim != 0 for m in members):
            continue
        if dims.info[root].pinned:
            pinned[grp.name()] = list(dims.info[root].pinned)
        else:
            groups.append(grp)
    return groups, pinned
