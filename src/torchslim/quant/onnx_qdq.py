"""ONNX lowering of quantized models: QuantizeLinear/DequantizeLinear with torchslim's own scales.

The model is exported as float (every :class:`QuantModule` replaced by its float layer with
the dequantized weights, plus a ReLU it fused), then the graph is rewritten with ``onnx``:

- static layers: the weight becomes an int8 initializer behind a per-channel
  ``DequantizeLinear``; the input gets ``QuantizeLinear -> DequantizeLinear`` with the
  calibrated uint8 scale; the bias becomes int32 at scale ``s_in * s_w``; the output (after a
  fused ReLU, or a MatMul's bias Add) gets Q/DQ with the output scale. ONNX Runtime fuses
  these groups into QLinearConv / QGemm / QLinearMatMul integer kernels, and runs max-pool and
  reshapes between two layers sharing a scale directly on uint8.
- dynamic layers: one ``com.microsoft.DynamicQuantizeMatMul`` (int8 weights (K, N), per-column
  scales, activations quantized on the fly).
- weight-only layers: int8 or int4 (opset 21) initializers behind a blocked
  ``DequantizeLinear`` feeding the MatMul.

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
from torchslim.quant.fake_quant import QuantModule, quant_modules
from torchslim.quant.weight_only import WeightOnlyLinear

MS_DOMAIN = "com.microsoft"


@dataclass
class _Layer:
    name: str
    param: str  # the weight's name in the float view
    w_float: np.ndarray  # dequantized weight as exported, (C_out, ...)
    module: nn.Module


def _float_view(model: nn.Module) -> tuple[nn.Module, list[_Layer]]:
    """A float copy of ``model``: quantized layers become plain layers holding their
    dequantized weights (a fused ReLU is kept explicit)."""
    view = copy.deepcopy(model)
    layers = []
    for name, qm in quant_modules(view):
        float_layer = copy.deepcopy(qm.module)
        with torch.no_grad():
            float_layer.weight.copy_(qm.quant_weight())
        new: nn.Module = nn.Sequential(float_layer, nn.ReLU()) if qm.fused_relu else float_layer
        set_module(view, name, new)
        param = f"{name}.0.weight" if qm.fused_relu else f"{name}.weight"
        layers.append(_Layer(name, param, float_layer.weight.detach().numpy().copy(), qm))
    for name, wo in [(n, m) for n, m in view.named_modules() if isinstance(m, WeightOnlyLinear)]:
        float_layer = wo.to_float()
        set_module(view, name, float_layer)
        layers.append(_Layer(name, f"{name}.weight", float_layer.weight.detach().numpy().copy(), wo))
    return view, layers


class _Graph:
    """Small helper over an ONNX graph: initializers, producers, consumers, fresh names."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model, self.g = model, model.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.counter = 0
        self.new_nodes: list[tuple[str | None, onnx.NodeProto]] = []  # (insert before node named, node)
        names = set()
        for k, n in enumerate(self.g.node):
            if not n.name or n.name in names:
                n.name = f"{n.op_type}__n{k}"
            names.add(n.name)

    def array(self, name: str) -> np.ndarray | None:
        init = self.inits.get(name)
        return numpy_helper.to_array(init) if init is not None else None

    def add_init(self, name: str, arr: np.ndarray) -> str:
        t = numpy_helper.from_array(arr, name)
        self.g.initializer.append(t)
        self.inits[name] = t
        return name

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__q{self.counter}"

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.g.node if tensor in n.input]

    def producer(self, tensor: str) -> onnx.NodeProto | None:
        return next((n for n in self.g.node if tensor in n.output), None)


def _find_node(gr: _Graph, layer: _Layer) -> tuple[onnx.NodeProto, bool] | None:
    """The Conv/Gemm/MatMul node computing ``layer`` and whether its weight is (K, N)
    (transposed); None when the layer is not in the graph at all (its output is unused)."""
    w = layer.w_float
    for node in gr.g.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b)
        if node.input[1] == layer.param:
            return node, transposed
        arr = gr.array(node.input[1])
        if arr is None:
            continue
        cand = arr.T if transposed and arr.ndim == 2 else arr
        if cand.shape == w.shape and np.array_equal(cand, w):
            return node, transposed
    shapes = {tuple(i.dims) for i in gr.g.initializer}
    if layer.param in gr.inits or tuple(w.shape) in shapes or tuple(w.shape[::-1]) in shapes:
        raise ExportError(f"quantized layer {layer.name!r}: its weight is in the ONNX graph but not as the weight of a Conv/Gemm/MatMul")
    return None


def _qdq(gr: _Graph, src: str, scale: float, zp: int, before: onnx.NodeProto, cache: dict) -> str:
    """Q -> DQ (uint8, per tensor) on tensor ``src``; reuses an identical pair."""
    key = (src, round(scale, 12), zp)
    if key in cache:
        return cache[key]
    s = gr.add_init(gr.fresh(f"{src}_scale"), np.array(scale, dtype=np.float32))
    z = gr.add_init(gr.fresh(f"{src}_zp"), np.array(zp, dtype=np.uint8))
    q_out, dq_out = gr.fresh(f"{src}_q"), gr.fresh(f"{src}_dq")
    gr.new_nodes.append((before.name, helper.make_node("QuantizeLinear", [src, s, z], [q_out], name=gr.fresh("Q"))))
    gr.new_nodes.append((before.name, helper.make_node("DequantizeLinear", [q_out, s, z], [dq_out], name=gr.fresh("DQ"))))
    cache[key] = dq_out
    return dq_out


def _weight_dq(gr: _Graph, node: onnx.NodeProto, q: np.ndarray, scale: np.ndarray, axis: int, zp_dtype: type = np.int8,
               block: int | None = None) -> None:
    w_name = gr.add_init(gr.fresh(f"{node.name}_w_int"), q)
    s_name = gr.add_init(gr.fresh(f"{node.name}_w_scale"), scale.astype(np.float32))
    z_name = gr.add_init(gr.fresh(f"{node.name}_w_zp"), np.zeros(scale.shape, dtype=zp_dtype))
    out = gr.fresh(f"{node.name}_w_dq")
    attrs = {"axis": axis} if block is None else {"axis": axis, "block_size": block}
    gr.new_nodes.append((node.name, helper.make_node("DequantizeLinear", [w_name, s_name, z_name], [out], name=gr.fresh("DQw"), **attrs)))
    node.input[1] = out


def _requant_output(gr: _Graph, node: onnx.NodeProto, scale: float, zp: int, fused_relu: bool) -> None:
    """Rename the layer's final output ``t`` (after bias Add / fused ReLU) to ``t_pre`` and add
    ``Q -> DQ`` writing ``t``, so every reader (and a graph output) sees the quantized value."""
    last = node
    while True:
        users = gr.consumers(last.output[0])
        nxt = users[0] if len(users) == 1 else None
        if nxt is not None and last.name == node.name and node.op_type == "MatMul" and nxt.op_type == "Add" and any(i in gr.inits for i in nxt.input):
            last = nxt
            continue
        if nxt is not None and fused_relu and nxt.op_type == "Relu":
            last = nxt
        break
    out = last.output[0]
    pre = gr.fresh(f"{out}_pre")
    last.output[0] = pre
    s = gr.add_init(gr.fresh(f"{out}_scale"), np.array(scale, dtype=np.float32))
    z = gr.add_init(gr.fresh(f"{out}_zp"), np.array(zp, dtype=np.uint8))
    q_out = gr.fresh(f"{out}_q")
    after = _next_node(gr, last)
    gr.new_nodes.append((after, helper.make_node("QuantizeLinear", [pre, s, z], [q_out], name=gr.fresh("Qo"))))
    gr.new_nodes.append((after, helper.make_node("DequantizeLinear", [q_out, s, z], [out], name=gr.fresh("DQo"))))


def _next_node(gr: _Graph, node: onnx.NodeProto) -> str | None:
    names = [n.name for n in gr.g.node]
    i = names.index(node.name)
    return names[i + 1] if i + 1 < len(names) else None


def _lower_static(gr: _Graph, layer: _Layer, cache: dict) -> None:
    qm: QuantModule = layer.module  # type: ignore[assignment]
    found = _find_node(gr, layer)
    if found is None:  # dead in the exported graph (e.g. an unused pooler)
        return
    node, transposed = found
    w_q = qm.int_weight().numpy()  # (C_out, ...)
    w_s = qm.w_scale.detach().numpy().astype(np.float32)  # (C_out,)
    in_s, in_zp = float(qm.in_scale), int(qm.in_zp)
    node.input[0] = _qdq(gr, node.input[0], in_s, in_zp, node, cache)
    _weight_dq(gr, node, w_q.T.copy() if transposed else w_q, w_s, 1 if transposed else 0)
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
        _requant_output(gr, node, float(qm.out_scale), int(qm.out_zp), qm.fused_relu)


def _lower_dynamic(gr: _Graph, layer: _Layer) -> None:
    qm: QuantModule = layer.module  # type: ignore[assignment]
    found = _find_node(gr, layer)
    if found is None:  # dead in the exported graph (e.g. an unused pooler)
        return
    node, transposed = found
    w_q = qm.int_weight().numpy()  # (N, K)
    w_s = qm.w_scale.detach().numpy().astype(np.float32)  # (N,)
    b = gr.add_init(gr.fresh(f"{node.name}_w_int"), w_q.T.copy())  # (K, N)
    s = gr.add_init(gr.fresh(f"{node.name}_w_scale"), w_s)
    z = gr.add_init(gr.fresh(f"{node.name}_w_zp"), np.zeros(w_s.shape, dtype=np.int8))
    inputs = [node.input[0], b, s, z]
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        inputs.append(node.input[2])
    new = helper.make_node("DynamicQuantizeMatMul", inputs, list(node.output), name=gr.fresh("DynQMatMul"), domain=MS_DOMAIN)
    gr.new_nodes.append((node.name, new))
    node.op_type = "__remove__"


def _lower_weight_only(gr: _Graph, layer: _Layer) -> None:
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
            gr.new_nodes.append((_next_node(gr, node), helper.make_node("Add", [mm, bias], [out], name=gr.fresh("Add"))))
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


def _drop_relu_after_zero_dq(gr: _Graph) -> None:
    """A ReLU reading a DequantizeLinear with zero point 0 (uint8) changes nothing: bypass it."""
    for node in list(gr.g.node):
        if node.op_type != "Relu":
            continue
        prod = gr.producer(node.input[0])
        if prod is None or prod.op_type != "DequantizeLinear" or len(prod.input) < 3:
            continue
        zp = gr.array(prod.input[2])
        if zp is None or zp.dtype != np.uint8 or zp.any():
            continue
        out_names = {o.name for o in gr.g.output}
        if node.output[0] in out_names:
            continue
        for user in gr.consumers(node.output[0]):
            for k, name in enumerate(user.input):
                if name == node.output[0]:
                    user.input[k] = node.input[0]
        gr.g.node.remove(node)


def _apply_insertions(gr: _Graph) -> None:
    nodes = list(gr.g.node)
    before: dict[str, list[onnx.NodeProto]] = {}
    tail: list[onnx.NodeProto] = []
    for anchor, new in gr.new_nodes:
        if anchor is None:
            tail.append(new)
        else:
            before.setdefault(anchor, []).append(new)
    out = []
    for n in nodes:
        out.extend(before.get(n.name, []))
        if n.op_type != "__remove__":
            out.append(n)
    out.extend(tail)
    del gr.g.node[:]
    gr.g.node.extend(out)
    used = {i for n in gr.g.node for i in n.input}
    keep = [i for i in gr.g.initializer if i.name in used]
    del gr.g.initializer[:]
    gr.g.initializer.extend(keep)
    del gr.g.value_info[:]


def _set_opset(model: onnx.ModelProto, opset: int) -> None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version < opset:
            imp.version = opset
    if not any(imp.domain == MS_DOMAIN for imp in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


def lower_quantized(model: nn.Module, tmp: Path, inputs: tuple[torch.Tensor, ...], opset: int, dynamic_batch: bool) -> None:
    """The registered lowering: write ``model`` as a QDQ ONNX graph at ``tmp``."""
    view, layers = _float_view(model)
    needs = 21 if any(isinstance(ly.module, WeightOnlyLinear) for ly in layers) else 13
    with tempfile.TemporaryDirectory() as d:
        float_path = export_onnx(view, Path(d) / "float.onnx", inputs, opset=max(opset, 18), dynamic_batch=dynamic_batch)
        onnx_model = onnx.load(str(float_path))
    gr = _Graph(onnx_model)
    cache: dict = {}
    for layer in layers:
        if isinstance(layer.module, WeightOnlyLinear):
            _lower_weight_only(gr, layer)
        elif layer.module.mode == "dynamic":
            _lower_dynamic(gr, layer)
        else:
            _lower_static(gr, layer, cache)
    _apply_insertions(gr)
    _drop_relu_after_zero_dq(gr)
    _set_opset(onnx_model, max(opset, needs))
    onnx.save(onnx_model, str(tmp))


def is_quantized(model: nn.Module) -> bool:
    """True when ``model`` holds a torchslim quantized layer (then export uses QDQ)."""
    return any(isinstance(m, (QuantModule, WeightOnlyLinear)) for m in model.modules())


register_lowering("torchslim.quant", is_quantized, lower_quantized)

INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
               "DynamicQuantizeMatMul", "MatMulNBits", "QLinearAdd", "QLinearAveragePool", "QLinearGlobalAveragePool")


def optimized_op_counts(path: str | Path) -> dict[str, int]:
    """Node types (with counts) in the graph ONNX Runtime actually runs after its optimizations.

    Example:
        >>> import tempfile, torch
        >>> from torchslim.export.onnx import export_onnx
        >>> p = export_onnx(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/m.onnx", torch.zeros(1, 4))
        >>> optimized_op_counts(p)
        {'Gemm': 1}
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        g = onnx.load(opts.optimized_model_filepath).graph
    counts: dict[str, int] = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts
