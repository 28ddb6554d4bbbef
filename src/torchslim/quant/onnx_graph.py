"""Small ONNX graph editing helpers for the QDQ lowering: initializers, producers and
consumers, Q/DQ pairs with torchslim's scales, deferred node insertion, and a look at the
graph ONNX Runtime really runs after its optimizations.

Example:
    >>> import tempfile, torch
    >>> from torchslim.export.onnx import export_onnx
    >>> from torchslim.quant.onnx_graph import optimized_op_counts
    >>> p = export_onnx(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/m.onnx", torch.zeros(1, 4))
    >>> optimized_op_counts(p)
    {'Gemm': 1}
"""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

MS_DOMAIN = "com.microsoft"
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
               "DynamicQuantizeMatMul", "MatMulNBits", "QLinearAdd", "QLinearAveragePool", "QLinearGlobalAveragePool")


class Graph:
    """Helper over an ONNX graph: initializers, producers, consumers, fresh names, and nodes to
    insert (each before a named node) once the rewrite is done."""

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
        if init is not None:
            return numpy_helper.to_array(init)
        prod = self.producer(name)
        if prod is not None and prod.op_type == "Constant":
            return numpy_helper.to_array(prod.attribute[0].t)
        return None

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

    def next_node(self, node: onnx.NodeProto) -> str | None:
        names = [n.name for n in self.g.node]
        i = names.index(node.name)
        return names[i + 1] if i + 1 < len(names) else None

    def first_in_scope(self, module_name: str) -> onnx.NodeProto | None:
        """The first node the torch.export-based exporter recorded under module ``module_name``."""
        for node in self.g.node:
            for p in node.metadata_props:
                if p.key == "pkg.torch.onnx.name_scopes" and module_name in ast.literal_eval(p.value):
                    return node
        return None


def qdq_nodes(gr: Graph, src: str, out: str, scale: float, zp: int, qmax: int, before: str | None) -> None:
    """``src -> [Clip] -> QuantizeLinear -> DequantizeLinear -> out`` (uint8, per tensor). With
    ``qmax < 255`` (fewer activation bits) a Clip keeps the codes in ``[0, qmax]`` exactly."""
    s = gr.add_init(gr.fresh(f"{src}_scale"), np.array(scale, dtype=np.float32))
    z = gr.add_init(gr.fresh(f"{src}_zp"), np.array(zp, dtype=np.uint8))
    if qmax < 255:
        lo = gr.add_init(gr.fresh(f"{src}_lo"), np.array((0 - zp) * scale, dtype=np.float32))
        hi = gr.add_init(gr.fresh(f"{src}_hi"), np.array((qmax - zp) * scale, dtype=np.float32))
        clipped = gr.fresh(f"{src}_clip")
        gr.new_nodes.append((before, helper.make_node("Clip", [src, lo, hi], [clipped], name=gr.fresh("Clip"))))
        src = clipped
    q_out = gr.fresh(f"{src}_q")
    gr.new_nodes.append((before, helper.make_node("QuantizeLinear", [src, s, z], [q_out], name=gr.fresh("Q"))))
    gr.new_nodes.append((before, helper.make_node("DequantizeLinear", [q_out, s, z], [out], name=gr.fresh("DQ"))))


def qdq(gr: Graph, src: str, scale: float, zp: int, before: onnx.NodeProto, cache: dict, qmax: int = 255) -> str:
    """Q -> DQ on tensor ``src`` before node ``before``; reuses an identical pair."""
    key = (src, round(scale, 12), zp, qmax)
    if key not in cache:
        cache[key] = gr.fresh(f"{src}_dq")
        qdq_nodes(gr, src, cache[key], scale, zp, qmax, before.name)
    return cache[key]


def weight_dq(gr: Graph, node: onnx.NodeProto, q: np.ndarray, scale: np.ndarray, axis: int, zp_dtype: type = np.int8,
              block: int | None = None) -> None:
    """An integer weight initializer behind a (per-channel or blocked) DequantizeLinear feeding
    ``node``; equal per-channel scales are written as one (per-tensor) scale."""
    if block is None and scale.ndim == 1 and scale.size > 0 and np.all(scale == scale[0]):
        scale = np.array(scale[0], dtype=np.float32)
    w_name = gr.add_init(gr.fresh(f"{node.name}_w_int"), q)
    s_name = gr.add_init(gr.fresh(f"{node.name}_w_scale"), scale.astype(np.float32))
    z_name = gr.add_init(gr.fresh(f"{node.name}_w_zp"), np.zeros(scale.shape, dtype=zp_dtype))
    out = gr.fresh(f"{node.name}_w_dq")
    attrs = {"axis": axis} if block is None else {"axis": axis, "block_size": block}
    gr.new_nodes.append((node.name, helper.make_node("DequantizeLinear", [w_name, s_name, z_name], [out], name=gr.fresh("DQw"), **attrs)))
    node.input[1] = out


def _noop_after(gr: Graph, node: onnx.NodeProto, dq: onnx.NodeProto) -> bool:
    """Whether Relu / Clip ``node`` changes nothing on the uint8 values ``dq`` dequantizes."""
    if len(dq.input) < 3:
        return False
    scale, zp = gr.array(dq.input[1]), gr.array(dq.input[2])
    if scale is None or zp is None or zp.dtype != np.uint8 or zp.size != 1:
        return False
    s, z = float(scale), int(zp)
    if node.op_type == "Relu":
        return z == 0
    lo = gr.array(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    hi = gr.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    lo_ok = lo is None or float(lo) <= -z * s + 1e-7
    hi_ok = hi is None or float(hi) >= (255 - z) * s - 1e-7
    return lo_ok and hi_ok


def drop_noop_activations(gr: Graph) -> None:
    """Bypass a Relu or Clip reading a DequantizeLinear whose whole uint8 range it leaves as is
    (the activation was fused into the layer before the quantizer)."""
    out_names = {o.name for o in gr.g.output}
    for node in list(gr.g.node):
        if node.op_type not in ("Relu", "Clip") or node.output[0] in out_names:
            continue
        prod = gr.producer(node.input[0])
        if prod is None or prod.op_type != "DequantizeLinear" or not _noop_after(gr, node, prod):
            continue
        for user in gr.consumers(node.output[0]):
            for k, name in enumerate(user.input):
                if name == node.output[0]:
                    user.input[k] = node.input[0]
        gr.g.node.remove(node)


def apply_insertions(gr: Graph) -> None:
    """Insert the queued nodes, drop nodes marked ``__remove__`` and unused initializers."""
    before: dict[str, list[onnx.NodeProto]] = {}
    tail: list[onnx.NodeProto] = []
    for anchor, new in gr.new_nodes:
        if anchor is None:
            tail.append(new)
        else:
            before.setdefault(anchor, []).append(new)
    out = []
    for n in list(gr.g.node):
        out.extend(before.get(n.name, []))
        if n.op_type != "__remove__":
            out.append(n)
    out.extend(tail)
    gr.new_nodes = []
    del gr.g.node[:]
    gr.g.node.extend(out)
    used = {i for n in gr.g.node for i in n.input}
    keep = [i for i in gr.g.initializer if i.name in used]
    del gr.g.initializer[:]
    gr.g.initializer.extend(keep)
    del gr.g.value_info[:]


def set_opset(model: onnx.ModelProto, opset: int) -> None:
    """Raise the default-domain opset to at least ``opset`` and declare com.microsoft."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version < opset:
            imp.version = opset
    if not any(imp.domain == MS_DOMAIN for imp in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


def optimized_graph(path: str | Path) -> onnx.GraphProto:
    """The graph ONNX Runtime (CPU, all optimizations) actually runs for the file at ``path``."""
    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath).graph


def optimized_op_counts(path: str | Path) -> dict[str, int]:
    """Node types (with counts) in the graph ONNX Runtime actually runs after its optimizations."""
    counts: dict[str, int] = {}
    for n in optimized_graph(path).node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts
