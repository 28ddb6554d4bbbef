"""ONNX lowering of quantized models: QuantizeLinear/DequantizeLinear with torchslim's own scales.

The model is exported as float (every :class:`QuantModule` replaced by its float layer with
the dequantized weights, plus a ReLU it fused), then the graph is rewritten with ``onnx``:

- static layers (``float_compute`` ones keep float weights and get only the output Q/DQ):
  the weight becomes an int8 initializer behind a per-channel
  ``DequantizeLinear``; the input gets ``QuantizeLinear -> DequantizeLinear`` with the
  calibrated uint8 scale; the bias becomes int32 at scale ``s_in * s_w``; the output (after a
  fused ReLU, or a MatMul's bias Add) gets Q/DQ with the output scale. ONNX Runtime fuses
  these groups into QLinearConv / QGemm / QLinearMatMul integer kernels, and runs max-pool and
  reshapes between two layers sharing a scale directly on uint8.
- dynamic layers: one ``com.microsoft.DynamicQuantizeMatMul`` (int8 weights (K, N), per-column
  scales, activations quantized on the fly).
- weight-only layers: int8 or int4 (opset 21) initializers behind a blocked
  ``DequantizeLinear`` feeding the MatMul.
- input quantizers (:class:`QuantInput`, around average pools): Q/DQ on the pool's input, so a
  residual add before it runs as ``QLinearAdd``.
- fewer than 8 activation bits (QAT): the codes still travel as uint8, with a ``Clip`` before
  each ``QuantizeLinear`` keeping them in ``[0, 2^bits - 1]``; weights with fewer bits are int8
  initializers holding values in the narrow range. ONNX Runtime runs them on the same kernels.

Registered with :func:`torchslim.export.onnx.register_lowering`, so ``torchslim.export`` and
``measure(runtime="onnxruntime")`` use it for any model holding a quantized layer.

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import Int8Static
    >>> from torchslim.export.onnx import export_onnx, OrtModel
    >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    >>> q = quantize(net, Int8Static(), calibration=[torch.randn(64, 8)])
    >>> path = export_onnx(q, tempfile.mkdtemp() + "/q.onnx", torch.randn(1, 8))
    >>> x = torch.randn(3, 8)
    >>> (OrtModel(path)(x) - q(x)).abs().max().item() < 0.05
    True
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from torchslim.core.modules import set_module
from torchslim.export.onnx import ExportError, export_onnx, register_lowering
from torchslim.quant.fake_quant import QuantInput, QuantModule, input_quantizers, quant_modules
from torchslim.quant.onnx_graph import (
    INTEGER_OPS,
    MS_DOMAIN,
    Graph,
    apply_insertions,
    drop_noop_activations,
    optimized_op_counts,
    qdq,
    qdq_nodes,
    set_opset,
    weight_dq,
)
from torchslim.quant.weight_only import WeightOnlyLinear


@dataclass
class _Layer:
    name: str
    param: str  # the weight's name in the float view
    w_float: np.ndarray | None  # dequantized weight as exported, (C_out, ...); None for QuantInput
    module: nn.Module


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


class _Scale(nn.Module):
    """SmoothQuant's per-channel input scaling in the float view: one ONNX ``Mul``."""

    def __init__(self, inv: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inv", inv.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.inv  # (..., C_in)


def _merge_same_muls(gr: Graph) -> None:
    """Siblings smoothed with one scale (q, k, v) each got a Mul: keep one per input and scale."""
    seen: dict[tuple[str, bytes], str] = {}
    for node in list(gr.g.node):
        if node.op_type != "Mul" or len(node.input) != 2 or node.input[1] not in gr.inits:
            continue
        key = (node.input[0], gr.array(node.input[1]).tobytes())
        if key not in seen:
            seen[key] = node.output[0]
            continue
        for user in gr.consumers(node.output[0]):
            for k, name in enumerate(user.input):
                if name == node.output[0]:
                    user.input[k] = seen[key]
        gr.g.node.remove(node)


def _float_view(model: nn.Module) -> tuple[nn.Module, list[_Layer]]:
    """A float copy of ``model``: quantized layers become plain layers holding their
    dequantized weights (a fused activation is kept explicit)."""
    view = copy.deepcopy(model)
    layers = []
    for name, qm in quant_modules(view):
        float_layer = copy.deepcopy(qm.module)
        with torch.no_grad():
            float_layer.weight.copy_(qm.quant_weight())
        act = qm.fused_act if qm.mode == "static" else None
        parts = ([_Scale(qm.smooth_inv)] if qm.smooth_inv is not None else []) + [float_layer]
        parts += [_ACTS[act]()] if act else []
        set_module(view, name, nn.Sequential(*parts) if len(parts) > 1 else float_layer)
        param = f"{name}.{parts.index(float_layer)}.weight" if len(parts) > 1 else f"{name}.weight"
        layers.append(_Layer(name, param, float_layer.weight.detach().numpy().copy(), qm))
    for name, qi in input_quantizers(view):
        set_module(view, name, qi.module)
        layers.append(_Layer(name, "", None, qi))
    for name, wo in [(n, m) for n, m in view.named_modules() if isinstance(m, WeightOnlyLinear)]:
        float_layer = wo.to_float()
        set_module(view, name, float_layer)
        layers.append(_Layer(name, f"{name}.weight", float_layer.weight.detach().numpy().copy(), wo))
    return view, layers


def _find_node(gr: Graph, layer: _Layer) -> tuple[onnx.NodeProto, bool] | None:
    """The Conv/Gemm/MatMul node computing ``layer`` and whether its weight is (K, N)
    (transposed); None when the layer is not in the graph at all (its output is unused)."""
    w = layer.w_float
    assert w is not None
    for node in gr.g.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b)
        if node.input[1] == layer.param:
            return node, transposed
        arr = gr.array(node.input[1]) if node.input[1] in gr.inits else None
        if arr is None:
            continue
        cand = arr.T if transposed and arr.ndim == 2 else arr
        if cand.shape == w.shape and np.array_equal(cand, w):
            return node, transposed
    shapes = {tuple(i.dims) for i in gr.g.initializer}
    if layer.param in gr.inits or tuple(w.shape) in shapes or tuple(w.shape[::-1]) in shapes:
        raise ExportError(f"quantized layer {layer.name!r}: its weight is in the ONNX graph but not as the weight of a Conv/Gemm/MatMul")
    return None


def _requant_output(gr: Graph, node: onnx.NodeProto, qm: QuantModule) -> None:
    """Rename the layer's final output ``t`` (after bias Add / fused activation) to ``t_pre``
    and add ``Q -> DQ`` writing ``t``, so every reader (and a graph output) sees the quantized value."""
    last = node
    while True:
        users = gr.consumers(last.output[0])
        nxt = users[0] if len(users) == 1 else None
        if nxt is not None and last.name == node.name and node.op_type == "MatMul" and nxt.op_type == "Add" and any(i in gr.inits for i in nxt.input):
            last = nxt
            continue
        if nxt is not None and qm.fused_act and nxt.op_type in ("Relu", "Clip"):
            last = nxt
        break
    out = last.output[0]
    pre = gr.fresh(f"{out}_pre")
    last.output[0] = pre
    qdq_nodes(gr, pre, out, float(qm.out_scale.detach()), int(qm.out_zp), qm.act_qmax, gr.next_node(last))


def _lower_static(gr: Graph, layer: _Layer, cache: dict) -> None:
    qm: QuantModule = layer.module  # type: ignore[assignment]
    found = _find_node(gr, layer)
    if found is None:  # dead in the exported graph (e.g. an unused pooler)
        return
    node, transposed = found
    if qm.float_compute:  # a float layer whose output keeps its grid for the integer layers reading it
        if qm.quantize_output:
            _requant_output(gr, node, qm)
        return
    w_q = qm.int_weight().numpy()  # (C_out, ...)
    w_s = qm.w_scale.detach().numpy().astype(np.float32)  # (C_out,)
    in_s, in_zp = float(qm.in_scale.detach()), int(qm.in_zp)
    node.input[0] = qdq(gr, node.input[0], in_s, in_zp, node, cache, qm.act_qmax)
    weight_dq(gr, node, w_q.T.copy() if transposed else w_q, w_s, 1 if transposed else 0)
    if len(node.input) > 2 and node.input[2] and node.input[2] in gr.inits:
        b = gr.array(node.input[2]).astype(np.float64)  # (C_out,)
        bs = (np.float32(in_s) * w_s).astype(np.float32)
        b_q = np.clip(np.round(b / bs), -(2**31), 2**31 - 1).astype(np.int32)
        bn = gr.add_init(gr.fresh(f"{node.name}_b_int"), b_q)
        bsn = gr.add_init(gr.fresh(f"{node.name}_b_scale"), bs)
        bz = gr.add_init(gr.fresh(f"{node.name}_b_zp"), np.zeros(bs.shape, dtype=np.int32))
        out = gr.fresh(f"{node.name}_b_dq")
        gr.new_nodes.append((node.name, helper.make_node("DequantizeLinear", [bn, bsn, bz], [out], name=gr.fresh("DQb"), axis=0)))
        node.input[2] = out
    if qm.quantize_output:
        _requant_output(gr, node, qm)


def _lower_input(gr: Graph, layer: _Layer, cache: dict) -> None:
    qi: QuantInput = layer.module  # type: ignore[assignment]
    node = gr.first_in_scope(layer.name)
    if node is None:
        raise ExportError(f"cannot find the ONNX node of {layer.name!r} to quantize its input "
                          "(the TorchScript fallback exporter keeps no module names)")
    node.input[0] = qdq(gr, node.input[0], float(qi.in_scale), int(qi.in_zp), node, cache, qi.act_qmax)
    pool = qi.module
    size = getattr(pool, "output_size", None)
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    if node.op_type == "ReduceMean" and size in (1, (1,), (1, 1)) and keepdims == 1:
        # the exporter writes a global average pool as ReduceMean; as GlobalAveragePool between
        # Q/DQ pairs ONNX Runtime runs it on uint8 (QLinearGlobalAveragePool)
        del node.input[1:]
        del node.attribute[:]
        node.op_type = "GlobalAveragePool"


def _lower_dynamic(gr: Graph, layer: _Layer) -> None:
    qm: QuantModule = layer.module  # type: ignore[assignment]
    found = _find_node(gr, layer)
    if found is None:  # dead in the exported graph (e.g. an unused pooler)
        return
    node, transposed = found
    w_q = qm.int_weight().numpy()  # (N, K)
    w_s = qm.w_scale.detach().numpy().astype(np.float32)  # (N,)
    b = gr.add_init(gr.fresh(f"{node.name}_w_int"), w_q.T.copy())  # (K, N)
    if np.all(w_s == w_s[0]):  # per-tensor weights: a scalar scale (ORT's faster path)
        w_s = np.array(w_s[0], dtype=np.float32)
    s = gr.add_init(gr.fresh(f"{node.name}_w_scale"), w_s)
    z = gr.add_init(gr.fresh(f"{node.name}_w_zp"), np.zeros(w_s.shape, dtype=np.int8))
    inputs = [node.input[0], b, s, z]
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        inputs.append(node.input[2])
    new = helper.make_node("DynamicQuantizeMatMul", inputs, list(node.output), name=gr.fresh("DynQMatMul"), domain=MS_DOMAIN)
    gr.new_nodes.append((node.name, new))
    node.op_type = "__remove__"


def _lower_weight_only(gr: Graph, layer: _Layer) -> None:
    wo: WeightOnlyLinear = layer.module  # type: ignore[assignment]
    found = _find_node(gr, layer)
    if found is None:  # dead in the exported graph (e.g. an unused pooler)
        return
    node, transposed = found
    q, scale = wo.int_weight().numpy(), wo.scales.detach().numpy()  # (N, K), (N, K // g)
    dtype = TensorProto.INT4 if wo.bits == 4 else TensorProto.INT8
    if node.op_type == "Gemm":  # Gemm(x, W, b, transB=1) -> MatMul(x, W^T) + b, the form ORT fuses
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        del node.attribute[:]
        node.op_type = "MatMul"
        if bias is not None:
            out, mm = node.output[0], gr.fresh(f"{node.name}_mm")
            node.output[0] = mm
            del node.input[2]
            gr.new_nodes.append((gr.next_node(node), helper.make_node("Add", [mm, bias], [out], name=gr.fresh("Add"))))
    qt = q.T.copy()  # (K, N)
    st = scale.T.copy()  # (K // g, N)
    w_name = gr.fresh(f"{node.name}_w_int")
    t = helper.make_tensor(w_name, dtype, qt.shape, qt.flatten().tolist()) if wo.bits == 4 else numpy_helper.from_array(qt.astype(np.int8), w_name)
    gr.g.initializer.append(t)
    gr.inits[w_name] = t
    s_name = gr.add_init(gr.fresh(f"{node.name}_w_scale"), st.astype(np.float32))
    out = gr.fresh(f"{node.name}_w_dq")
    if st.shape[0] == 1:  # one scale per output column: plain per-channel DQ on axis 1
        s_name = gr.add_init(gr.fresh(f"{node.name}_w_scale1"), st[0].astype(np.float32))
        dq = helper.make_node("DequantizeLinear", [w_name, s_name], [out], name=gr.fresh("DQw"), axis=1)
    else:
        dq = helper.make_node("DequantizeLinear", [w_name, s_name], [out], name=gr.fresh("DQw"), axis=0, block_size=wo.group)
    gr.new_nodes.append((node.name, dq))
    node.input[1] = out


def lower_quantized(model: nn.Module, tmp: Path, inputs: tuple[torch.Tensor, ...], opset: int, dynamic_batch: bool) -> None:
    """The registered lowering: write ``model`` as a QDQ ONNX graph at ``tmp``."""
    view, layers = _float_view(model)
    needs = 21 if any(isinstance(ly.module, WeightOnlyLinear) for ly in layers) else 13
    with tempfile.TemporaryDirectory() as d:
        float_path = export_onnx(view, Path(d) / "float.onnx", inputs, opset=max(opset, 18), dynamic_batch=dynamic_batch)
        onnx_model = onnx.load(str(float_path))
    gr = Graph(onnx_model)
    _merge_same_muls(gr)
    cache: dict = {}
    for layer in layers:
        if isinstance(layer.module, WeightOnlyLinear):
            _lower_weight_only(gr, layer)
        elif isinstance(layer.module, QuantInput):
            _lower_input(gr, layer, cache)
        elif layer.module.mode == "dynamic":
            _lower_dynamic(gr, layer)
        else:
            _lower_static(gr, layer, cache)
    apply_insertions(gr)
    drop_noop_activations(gr)
    set_opset(onnx_model, max(opset, needs))
    onnx.save(onnx_model, str(tmp))


def is_quantized(model: nn.Module) -> bool:
    """True when ``model`` holds a torchslim quantized layer (then export uses QDQ)."""
    return any(isinstance(m, (QuantModule, QuantInput, WeightOnlyLinear)) for m in model.modules())


register_lowering("torchslim.quant", is_quantized, lower_quantized)

__all__ = ["INTEGER_OPS", "is_quantized", "lower_quantized", "optimized_op_counts"]
