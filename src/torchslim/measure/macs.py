"""Multiply-accumulates (MACs) per forward pass, attributed to the module that does them.

Counting uses ``torch.utils.flop_counter.FlopCounterMode`` (convolutions incl. grouped and
depthwise, ``mm``/``addmm``/``bmm``/``baddbmm``, attention), extended here with the CPU
kernels it does not know (``_scaled_dot_product_flash_attention_for_cpu``, ``mv``,
``addmv``, ``dot``). MACs = FLOPs / 2.

Attribution: FlopCounterMode gives every module the *total* of the ops run while it was
on the call stack. A module's *own* MACs are its total minus its direct children's totals,
so a functional ``q @ k.transpose(-2, -1)`` inside an attention module is charged to that
module, and the own MACs of all modules add up to the model's total.

Limits and fallbacks:

- The total is always the counter's global count (plus the fallback below). Per-module
  shares can be off when a module runs inside a module that is not its parent (one passed
  in as an argument): its work is then also charged to that caller. A module run through
  ``.forward()`` instead of ``__call__`` is invisible; its work stays with its caller.
- A module named like a Linear or Conv (not transposed) whose ops the counter does not
  know (``torch.ao`` quantized ``Linear``/``Conv``: opaque ``quantized::`` kernels), and
  whose children did no counted work, gets the analytic count ``out.numel() *
  weight[0].numel()`` (linear: ``N * in * out``; conv: ``N*Cout*Hout*Wout*Cin/groups*kh*kw``).
- Ops neither counted nor covered above (elementwise, norms, softmax, pooling) are 0 MACs.

Example:
    >>> import torch
    >>> from torchslim.measure.macs import count_macs
    >>> total, layers = count_macs(torch.nn.Linear(8, 4), (torch.zeros(2, 8),))
    >>> total, layers[0].macs
    (64, 64)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

aten = torch.ops.aten

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")


@dataclass
class LayerStat:
    """One module's own share of a forward pass.

    ``name`` is the qualified module name (``""`` for the model itself), ``macs`` the module's
    own MACs (children excluded), ``params`` its own parameters (``recurse=False``),
    ``output_shape`` the shape of its first output tensor (``None`` if it was never called),
    ``precision`` one of ``fp32 | fp16 | bf16 | int8 | int4``.
    """

    name: str
    type: str
    macs: int
    params: int
    output_shape: list[int] | None
    precision: str
    output_numel: int = 0
    calls: int = 0


# --- flop formulas FlopCounterMode lacks (all return FLOPs = 2 * MACs) -------------------


def _sdpa_cpu_flop(q_shape: Any, k_shape: Any, v_shape: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    # q (B, H, L, E), k (B, H, S, E), v (B, H, S, Ev): q @ k^T and attn @ v
    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _mv_flop(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    # a (M, N) @ b (N,) -> (M,)
    return 2 * a_shape[0] * a_shape[1]


def _addmv_flop(self_shape: Any, a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    return 2 * a_shape[0] * a_shape[1]


def _dot_flop(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    return 2 * a_shape[0]


EXTRA_FORMULAS: dict[Any, Any] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    aten.mv: _mv_flop,
    aten.addmv: _addmv_flop,
    aten.dot: _dot_flop,
    aten.vdot: _dot_flop,
}


# --- precision --------------------------------------------------------------------------

_DTYPE_PRECISION = {
    torch.float32: "fp32", torch.float64: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
    torch.int8: "int8", torch.uint8: "int8", torch.qint8: "int8", torch.quint8: "int8",
    torch.quint4x2: "int4",
}


def own_weights(module: nn.Module) -> list[torch.Tensor]:
    """A module's own parameters (``recurse=False``); for ``torch.ao`` quantized modules, whose
    weights are packed and not parameters, the tensors that ``weight()`` and ``bias()`` return.

    Example:
        >>> import torch
        >>> [tuple(t.shape) for t in own_weights(torch.nn.Linear(3, 2))]
        [(2, 3), (2,)]
    """
    params = list(module.parameters(recurse=False))
    if params:
        return params
    found = []
    for attr in ("weight", "bias"):
        fn = getattr(type(module), attr, None)
        if callable(fn) and not isinstance(fn, nn.Module):  # a method, e.g. quantized Linear.weight()
            try:
                t = getattr(module, attr)()
            except Exception:  # noqa: BLE001 - an opaque module: nothing to read
                continue
            if isinstance(t, torch.Tensor):
                found.append(t)
    return found


def _own_dtype(module: nn.Module) -> torch.dtype | None:
    weights = own_weights(module)
    return weights[0].dtype if weights else None


def layer_precisions(model: nn.Module) -> dict[str, str]:
    """Precision of every module: its ``torchslim_precision`` attribute if a technique set one,
    else the dtype of its own parameters, else its nearest ancestor's, else ``"fp32"``.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).half())
        >>> layer_precisions(m)["1"]
        'fp16'
    """
    out: dict[str, str] = {}
    for name, module in model.named_modules():
        tag = getattr(module, "torchslim_precision", None)
        if isinstance(tag, str) and tag in PRECISIONS:
            out[name] = tag
            continue
        dtype = _own_dtype(module)
        if dtype is not None and dtype in _DTYPE_PRECISION:
            out[name] = _DTYPE_PRECISION[dtype]
        else:
            parent = name.rpartition(".")[0] if name else None
            out[name] = out.get(parent, "fp32") if parent is not None else "fp32"
    return out


# --- counting ---------------------------------------------------------------------------


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        for o in out.values():
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def _analytic_macs(module: nn.Module, output_numel: int) -> int:
    """MACs of a linear/conv-like module from its weight and output: out.numel() * weight[0].numel().

    Only for modules whose class is a Linear or a (non-transposed) Conv by name, so an
    Embedding or a learned positional table (lookups, no MACs) is never charged.
    """
    kind = type(module).__name__
    if not ("Linear" in kind or "Conv" in kind) or "Transpose" in kind:
        return 0
    weights = [t for t in own_weights(module) if t.dim() >= 2]
    if not weights:
        return 0
    w = weights[0]
    return int(output_numel * w[0].numel())  # (N, Cout, ...) * Cin/groups * k...


@torch.no_grad()  # not inference_mode: FlopCounterMode fails on parametrized (masked) modules there
def count_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[int, list[LayerStat]]:
    """Total MACs of ``model(*inputs)`` and per-module stats (see the module docstring).

    The list holds every module that has own MACs or own parameters, plus leaf modules that
    ran; the model itself appears as name ``""`` only if it does work of its own.

    Example:
        >>> import torch
        >>> conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        >>> count_macs(conv, (torch.zeros(1, 3, 4, 4),))[0] == 8 * 4 * 4 * 3 * 3 * 3
        True
    """
    modules = dict(model.named_modules())
    outputs: dict[str, tuple[list[int], int]] = {}  # name -> (shape, numel) of the first output
    calls: dict[str, int] = {}

    def hook_for(name: str) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            t = _first_tensor(out)
            if t is not None:
                outputs[name] = (list(t.shape), t.numel())
            calls[name] = calls.get(name, 0) + 1

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules.items()]
    try:
        with FlopCounterMode(display=False, depth=None, custom_mapping=EXTRA_FORMULAS) as counter:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()

    # FlopCounterMode keys modules as "<RootClass>.<qualified name>"; the root is "<RootClass>".
    root_key = type(model).__name__
    totals: dict[str, int] = {}
    for key, per_op in counter.get_flop_counts().items():
        if key == root_key:
            totals[""] = sum(per_op.values())
        elif key.startswith(root_key + "."):
            totals[key[len(root_key) + 1 :]] = sum(per_op.values())

    children = {n: [f"{n}.{c}" if n else c for c, _ in m.named_children()] for n, m in modules.items()}
    precisions = layer_precisions(model)
    layers: list[LayerStat] = []
    fallback_macs = 0  # work the counter did not see, added from the analytic formula
    for name, module in modules.items():
        own_flops = totals.get(name, 0) - sum(totals.get(c, 0) for c in children[name])
        own = max(own_flops, 0) // 2
        is_leaf = not children[name]
        if own == 0 and calls.get(name) and not any(totals.get(c, 0) for c in children[name]):
            own = _analytic_macs(module, outputs.get(name, ([], 0))[1]) * calls[name]  # opaque kernels
            fallback_macs += own
        own_params = sum(t.numel() for t in own_weights(module))
        if own or own_params or (is_leaf and name and calls.get(name)):
            shape, numel = outputs.get(name, (None, 0))
            layers.append(
                LayerStat(
                    name=name,
                    type=type(module).__name__,
                    macs=int(own),
                    params=int(own_params),
                    output_shape=shape,
                    precision=precisions[name],
                    output_numel=int(numel),
                    calls=calls.get(name, 0),
                )
            )
    return int(counter.get_total_flops() // 2 + fallback_macs), layers
