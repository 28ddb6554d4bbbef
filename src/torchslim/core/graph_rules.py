"""Per-op rules: how each ATen op ties the dimensions of its inputs and outputs.

A rule gets the :class:`~torchslim.core.graph_dims.DimUnion`, the node, and a function giving
the layouts of an argument, and returns the layouts of the node's output (one per dim).
An op without a rule pins every dimension it touches (it is reported, never broken).

Example:
    >>> "aten.relu.default" in UNARY
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import fx

from torchslim.core.graph_dims import DimUnion, Layout, repeat

Layouts = list[Layout]
Get = Callable[[Any], Any]  # node arg -> list of layouts (tensor) or list of those (tuple) or None

UNARY = {
    f"aten.{n}" for n in (
        "relu.default", "relu_.default", "gelu.default", "silu.default", "sigmoid.default",
        "tanh.default", "hardtanh.default", "hardtanh_.default", "hardswish.default",
        "hardsigmoid.default", "leaky_relu.default", "elu.default", "mish.default",
        "dropout.default", "clone.default", "alias.default", "detach.default", "contiguous.default",
        "_to_copy.default", "to.dtype", "to.dtype_layout", "to.device", "type_as.default",
        "neg.default", "exp.default", "log.default", "sqrt.default", "rsqrt.default", "abs.default",
        "erf.default", "pow.Tensor_Scalar", "mul.Scalar", "div.Scalar", "add.Scalar", "sub.Scalar",
        "softmax.int", "log_softmax.int", "_softmax.default", "_log_softmax.default",
        "feature_dropout.default", "dropout_.default", "cos.default", "sin.default", "square.default",
        "relu6.default", "clamp.default", "clamp_min.default", "clamp_max.default", "lift_fresh_copy.default",
        "ge.Scalar", "gt.Scalar", "le.Scalar", "lt.Scalar", "eq.Scalar", "ne.Scalar", "logical_not.default",
        "bitwise_not.default", "masked_fill_.Scalar",
    )
}
BINARY = {
    f"aten.{n}" for n in (
        "add.Tensor", "sub.Tensor", "mul.Tensor", "div.Tensor", "maximum.default", "minimum.default",
        "where.self", "masked_fill.Scalar", "masked_fill.Tensor", "pow.Tensor_Tensor", "add_.Tensor",
        "mul_.Tensor", "rsub.Tensor", "eq.Tensor", "ne.Tensor", "lt.Tensor", "gt.Tensor",
        "__and__.Tensor", "__or__.Tensor", "logical_and.default", "logical_or.default",
    )
}
FACTORY = {  # outputs with no channel tie to any input (shape-only or constant)
    f"aten.{n}" for n in (
        "arange.default", "arange.start", "arange.start_step", "zeros.default", "ones.default",
        "full.default", "_assert_tensor_metadata.default", "sym_size.int", "scalar_tensor.default",
        "new_ones.default", "new_zeros.default", "empty.memory_format",
    )
}
POOL = {
    f"aten.{n}" for n in (
        "max_pool1d.default", "max_pool2d.default", "max_pool3d.default", "avg_pool1d.default",
        "avg_pool2d.default", "avg_pool3d.default", "adaptive_avg_pool1d.default",
        "adaptive_avg_pool2d.default", "adaptive_avg_pool3d.default", "adaptive_max_pool2d.default",
        "upsample_nearest2d.vec", "upsample_bilinear2d.vec",
    )
}
REDUCE = {f"aten.{n}" for n in ("mean.dim", "sum.dim_IntList", "amax.default", "amin.default", "linalg_vector_norm.default")}
RESHAPE = {
    f"aten.{n}" for n in (
        "view.default", "reshape.default", "_unsafe_view.default", "flatten.using_ints",
        "unflatten.int", "squeeze.dim", "squeeze.dims", "squeeze.default", "unsqueeze.default",
    )
}


def shape_of(node: Any) -> list[int] | None:
    """The static shape of a node's tensor value, or None."""
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    if isinstance(val, torch.Tensor):
        return [int(s) for s in val.shape]
    return None


def broadcast(dims: DimUnion, node: fx.Node, get: Get, why: str) -> Layouts:
    """Elementwise with broadcasting: equal-size dims (aligned from the right) are tied."""
    out_shape = shape_of(node) or []
    out: Layouts = [dims.fresh(s) for s in out_shape]
    first = [True] * len(out_shape)
    for arg in node.args:
        lay = get(arg)
        shp = shape_of(arg) if isinstance(arg, fx.Node) else None
        if lay is None or shp is None or not isinstance(lay, list) or (lay and not isinstance(lay[0], list)):
            continue
        for j in range(1, len(shp) + 1):
            if shp[-j] != out_shape[-j] or shp[-j] == 1:
                continue
            if first[-j]:
                out[-j], first[-j] = lay[-j], False
            else:
                dims.tie_layouts(out[-j], lay[-j], why)
    return out


def reshape(dims: DimUnion, x: Layouts, in_shape: list[int], out_shape: list[int], module: str, why: str) -> Layouts:
    """View/reshape/flatten: match blocks of input and output dims with equal products."""
    out: Layouts = [dims.fresh(s) for s in out_shape]
    i = j = 0
    while i < len(in_shape) or j < len(out_shape):
        bi, bj = [i], [j]
        pi = in_shape[i] if i < len(in_shape) else 1
        pj = out_shape[j] if j < len(out_shape) else 1
        while pi != pj:
            if pi < pj and bi[-1] + 1 < len(in_shape):
                bi.append(bi[-1] + 1)
                pi *= in_shape[bi[-1]]
            elif bj[-1] + 1 < len(out_shape):
                bj.append(bj[-1] + 1)
                pj *= out_shape[bj[-1]]
            else:
                break
        ins = [d for d in bi if d < len(in_shape) and in_shape[d] != 1]
        outs = [d for d in bj if d < len(out_shape) and out_shape[d] != 1]
        if len(ins) == 1 and len(outs) == 1:
            out[outs[0]] = x[ins[0]]
        elif len(ins) > 1 and len(outs) == 1:  # merge: the leading input dim is the coarse one
            inner = 1
            for d in ins[1:]:
                inner *= in_shape[d]
                dims.pin_layout(x[d], f"{why}: merged as an inner dimension")
            out[outs[0]] = repeat(x[ins[0]], inner)
        elif len(ins) == 1 and len(outs) > 1:  # split: the leading output dim is coarse
            inner = 1
            for d in outs[1:]:
                inner *= out_shape[d]
            lead = dims.coarsen(x[ins[0]], inner, module, why)
            if lead is not None:
                out[outs[0]] = lead
        else:
            for d in ins:
                dims.pin_layout(x[d], f"{why}: reshape mixes dimensions")
        i, j = bi[-1] + 1, bj[-1] + 1
    return out


def tie_matmul(dims: DimUnion, a: Layouts, b: Layouts, a_shape: list[int], b_shape: list[int],
               out_shape: list[int], why: str) -> Layouts:
    """(..., n, k) @ (..., k, m) -> (..., n, m); batch dims broadcast; k tied."""
    if len(a_shape) < 2 or len(b_shape) < 2:
        dims.pin_layout([s for lay in a + b for s in lay], f"{why}: matmul with a 1-D operand")
        return [dims.fresh(s) for s in out_shape]
    dims.tie_layouts(a[-1], b[-2], why)
    out: Layouts = [dims.fresh(s) for s in out_shape]
    out[-2], out[-1] = a[-2], b[-1]
    for lay, shp in ((a, a_shape), (b, b_shape)):
        for j in range(3, len(shp) + 1):
            if shp[-j] == out_shape[-j] and shp[-j] != 1:
                dims.tie_layouts(out[-j], lay[-j], why)
                out[-j] = lay[-j]
    return out
