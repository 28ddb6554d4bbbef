"""Deep Compression (Han, Mao & Dally, ICLR 2016) as one function with a config: iterative
magnitude pruning with retraining, k-means weight sharing with fine-tuned centroids, and entropy
coding into a ``.slim`` file, with the paper's per-stage size table.

1. Prune: ``steps`` rounds; round ``i`` removes ``1 - (1 - sparsity)**(i / steps)`` of the
   weights (smallest ``|w|``, pooled over the layers; ``layer_sparsity`` fixes chosen layers'
   own targets), then retrains ``retrain_epochs`` with L2 ``weight_decay`` (masks keep pruned
   weights at zero). The masks are then made permanent.
2. Share: :class:`~torchslim.quant.sharing.WeightSharing` (``bits`` for fc, ``conv_bits`` for
   conv, linear init), centroids fine-tuned ``share_epochs`` through ``torchslim.train.fit``.
3. Code: :func:`torchslim.recipe.artifact.save`: sparse positions and codebook indices as ANS
   coded symbols (the paper used Huffman coding), biases and codebooks float32 (``float16``:
   rounded to float16 in memory first, then stored as float16, so the reloaded model is still
   bit-identical to the in-memory one).

Stage sizes (``result.stages``): *original* float32; *pruned* = non-zeros as float32 plus a
fixed-width relative index each (the best width in 1-8 bits, fillers counted); *shared* = the
same with ``bits``-wide codebook indices plus the codebooks; *coded* = the ``.slim`` file,
manifest and headers included. ``result.layers`` is the paper's Table-2 view per layer; where
the writer found a dense index stream smaller (zeros coded as index 0), its coded bits are
split into position and weight bits by the chain rule ``H(index) = H(zero?) + p H(centroid)``.

Example:
    >>> import torch
    >>> from torchslim import data, zoo
    >>> splits = data.load("mnist_5k", batch_size=128, seed=0)
    >>> cfg = DeepCompression(sparsity=0.8, steps=1, retrain_epochs=1, share_epochs=1)
    >>> result = deep_compression(zoo.model("lenet300-mnist"), cfg, train_data=splits.train)  # doctest: +SKIP
    >>> result.stages[-1]["ratio"] > 10  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError, field_validator, model_validator
from torch import nn

from torchslim.core.config import Config, register_handler
from torchslim.core.targets import Target
from torchslim.export.slim import SlimReport, slim_bytes
from torchslim.export.slim.codec import gaps
from torchslim.measure.accuracy import evaluate
from torchslim.prune.api import prune
from torchslim.prune.unstructured import MagnitudePrune, make_permanent
from torchslim.quant.api import quantize
from torchslim.quant.sharing import SharedWeight, WeightSharing
from torchslim.recipe.artifact import save, zoo_name_of
from torchslim.train import fit


class DeepCompression(Config):
    """The three stages' settings (see the module docstring).

    Example:
        >>> DeepCompression(sparsity=0.95, bits=4).to_dict()["type"]
        'deep_compression'
    """

    sparsity: float = 0.92
    layer_sparsity: dict[str, float] = Field(default_factory=dict)
    steps: int = Field(default=4, ge=1)
    retrain_epochs: int = Field(default=4, ge=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    bits: int = 5
    conv_bits: int = 8
    layer_bits: dict[str, int] = Field(default_factory=dict)
    share_epochs: int = Field(default=3, ge=0)
    share_lr: float = Field(default=1e-4, gt=0)
    float16: bool = False
    target: Target = Target(include=("type:Linear", "type:Conv1d", "type:Conv2d"))
    seed: int = 0

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {v}")
        return v

    @field_validator("layer_sparsity")
    @classmethod
    def _layer_sparsity(cls, d: dict[str, float]) -> dict[str, float]:
        for k, v in d.items():
            if not 0.0 <= v < 1.0:
                raise ValueError(f"layer_sparsity[{k!r}] must be in [0, 1), got {v}")
        return d

    def sharing(self) -> WeightSharing:
        """The weight-sharing stage's config (``bits``, ``conv_bits``, ``layer_bits``, ``target``)."""
        return WeightSharing(bits=self.bits, conv_bits=self.conv_bits, layer_bits=self.layer_bits, target=self.target)

    @model_validator(mode="after")
    def _sharing_valid(self) -> DeepCompression:
        try:  # checked here, before any pruning runs, by the weight-sharing config's own rules
            self.sharing()
        except ValidationError as e:
            raise ValueError("; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())) from None
        return self


@dataclass
class DeepCompressionResult:
    """``model``: the compressed model (weight-shared layers); ``stages``: size and accuracy
    after each stage; ``layers``: per-layer rows; ``report``: the ``.slim`` size report."""

    model: nn.Module
    stages: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    report: SlimReport
    path: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def stage_table(self) -> str:
        """The stages as a markdown table."""
        lines = ["| stage | bytes | ratio | val accuracy |", "|---|---:|---:|---:|"]
        for s in self.stages:
            acc = "" if s.get("val_accuracy") is None else f"{100 * s['val_accuracy']:.2f}%"
            lines.append(f"| {s['stage']} | {s['bytes']:,} | {s['ratio']:.1f}x | {acc} |")
        return "\n".join(lines)

    def layer_table(self) -> str:
        """The paper's Table-2 view as markdown."""
        head = ("| layer | weights | kept | weight bits (P+Q) | weight bits (P+Q+H) | index bits (P) | "
                "index bits (P+Q+H) | ratio (P+Q) | ratio (P+Q+H) |")
        lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in self.layers:
            lines.append(f"| {r['layer']} | {r['weights']:,} | {100 * r['kept']:.1f}% | {r['weight_bits_pq']} | "
                         f"{r['weight_bits_pqh']:.2f} | {r['index_bits_p']} | {r['index_bits_pqh']:.2f} | "
                         f"{100 * r['ratio_pq']:.2f}% | {100 * r['ratio_pqh']:.2f}% |")
        return "\n".join(lines)


def _schedule(final: float, steps: int) -> list[float]:
    return [1.0 - (1.0 - final) ** (i / steps) for i in range(1, steps + 1)]


def _prune_step(model: nn.Module, config: DeepCompression, step: int) -> nn.Module:
    fixed = sorted(config.layer_sparsity)
    s = _schedule(config.sparsity, config.steps)[step]
    if config.sparsity > 0:
        model = prune(model, MagnitudePrune(sparsity=s, scope="global", target=config.target, ignore=tuple(fixed)))
    for name in fixed:
        ls = _schedule(config.layer_sparsity[name], config.steps)[step]
        model = prune(model, MagnitudePrune(sparsity=ls, scope="layer", target=Target(include=(name,))))
    return model


def index_bits_fixed(weight: torch.Tensor) -> tuple[int, int]:
    """(best fixed width b in 1..8, entries incl. fillers) for the non-zeros' relative indices."""
    pos = np.flatnonzero(weight.detach().cpu().numpy().ravel() != 0)
    return min(((b, len(gaps(pos, b))) for b in range(1, 9)), key=lambda be: be[0] * be[1])


def _layer_rows(model: nn.Module, report: SlimReport) -> list[dict[str, Any]]:
    rows = []
    for name, m in model.named_modules():
        if not isinstance(m, SharedWeight):
            continue
        w = m.weight.detach()
        nnz, numel = int((w != 0).sum()), w.numel()
        idx = report.row(f"{name}.indices")
        pos_bits, val_bits, val_entropy = idx.pos_bits, idx.val_bits, idx.val_entropy_bits
        if idx.encoding.startswith("dense"):  # zeros coded in the index stream: split by the chain rule
            p = nnz / numel
            h_pos = 0.0 if p in (0.0, 1.0) else -numel * (p * math.log2(p) + (1 - p) * math.log2(1 - p))
            share = h_pos / idx.val_entropy_bits if idx.val_entropy_bits else 0.0
            pos_bits, val_bits, val_entropy = share * idx.val_bits, (1 - share) * idx.val_bits, idx.val_entropy_bits - h_pos
        b, entries = index_bits_fixed(w)
        k_bits = max(1, math.ceil(math.log2(max(2, len(m.codebook)))))
        book_bits = 32 * len(m.codebook)
        pq_bits = entries * (b + k_bits) + book_bits
        pqh_bits = idx.pos_bits + idx.val_bits + idx.table_bits + report.row(f"{name}.codebook").total_bits
        rows.append({
            "layer": name, "weights": numel, "kept": nnz / numel, "weight_bits_pq": k_bits,
            "weight_bits_pqh": val_bits / max(1, nnz), "index_bits_p": b,
            "index_bits_pqh": pos_bits / max(1, nnz), "ratio_pq": pq_bits / (32 * numel),
            "ratio_pqh": pqh_bits / (32 * numel), "entropy_bits_per_index": val_entropy / max(1, nnz),
            "layout": idx.encoding,
        })
    return rows


def stage_bytes(state: dict[str, torch.Tensor], shared_bits: dict[str, int] | None = None) -> int:
    """Size estimate of the pruned stage (``shared_bits`` None) or the shared stage: every
    weight matrix as its non-zeros (float32, or ``shared_bits[key]``-bit indices plus a float32
    codebook) with fixed-width relative indices; other tensors dense.

    Example:
        >>> w = torch.zeros(10, 10); w[0, 0] = 1.0
        >>> stage_bytes({"fc.weight": w})
        5
    """
    bits = 0
    for key, t in state.items():
        if t.dim() >= 2 and t.is_floating_point():
            b, entries = index_bits_fixed(t)
            if shared_bits is not None and key in shared_bits:
                bits += entries * (b + shared_bits[key]) + 32 * (2 ** shared_bits[key])
            else:
                bits += entries * (b + 32)
        else:
            bits += 8 * t.numel() * t.element_size()
    return math.ceil(bits / 8)


def _dense_view(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The shared model's tensors with each SharedWeight as one dense weight, and its index bits."""
    state, bits = {}, {}
    shared = {n: m for n, m in model.named_modules() if isinstance(m, SharedWeight)}
    for key, t in model.state_dict().items():
        layer, _, leaf = key.rpartition(".")
        if layer in shared and leaf in ("codebook", "indices"):
            if leaf == "indices":
                m = shared[layer]
                state[f"{layer}.weight"] = m.weight.detach()
                bits[f"{layer}.weight"] = max(1, math.ceil(math.log2(max(2, len(m.codebook)))))
            continue
        state[key] = t
    return state, bits


def deep_compression(
    model: nn.Module, config: DeepCompression, *, train_data: Any, val_data: Any = None,
    path: str | os.PathLike[str] | None = None, progress: bool = False,
) -> DeepCompressionResult:
    """Run the pipeline on a copy of ``model`` (a trained float model); write the ``.slim`` file
    to ``path`` if given. Returns the compressed model, the stage and layer tables and the size
    report. See the module docstring for the stages."""
    fit_opts = {"lr": config.lr, "weight_decay": config.weight_decay, "progress": progress, "seed": config.seed,
                "val_data": val_data}
    float_bytes = sum(4 * p.numel() for p in model.parameters())
    stages = [{"stage": "original (float32)", "bytes": float_bytes, "ratio": 1.0,
               "val_accuracy": evaluate(model, val_data) if val_data is not None else None}]
    work = copy.deepcopy(model)
    history = []
    for step in range(config.steps):
        work = _prune_step(work, config, step)
        if config.retrain_epochs:
            res = fit(work, train_data, epochs=config.retrain_epochs, description=f"prune {step + 1}", **fit_opts)
            history.append({"stage": f"prune {step + 1}", "val": res.history[-1].val_metric})
    work = make_permanent(work).eval()
    pruned_bytes = stage_bytes(work.state_dict())
    stages.append({"stage": f"pruned ({config.steps} steps)", "bytes": pruned_bytes, "ratio": float_bytes / pruned_bytes,
                   "val_accuracy": evaluate(work, val_data) if val_data is not None else None})
    sharing = config.sharing()
    share_opts = {**fit_opts, "lr": config.share_lr, "weight_decay": 0.0, "description": "share"}
    if config.share_epochs:
        shared = quantize(work, sharing, train_data=train_data, epochs=config.share_epochs, **share_opts)
    else:
        shared = quantize(work, sharing)
    shared.eval()
    if config.float16:  # round in memory first: the model *is* what the file holds
        with torch.no_grad():
            for t in [*shared.parameters(), *shared.buffers()]:
                if t.dtype == torch.float32:
                    t.copy_(t.half().float())
    shared_bytes = stage_bytes(*_dense_view(shared))
    val_acc = evaluate(shared, val_data) if val_data is not None else None
    stages.append({"stage": "weight sharing", "bytes": shared_bytes, "ratio": float_bytes / shared_bytes, "val_accuracy": val_acc})
    if path is not None:
        report = save(shared, path, float16=config.float16)
    else:
        name = zoo_name_of(shared)
        _, report = slim_bytes(shared, float16=config.float16, info={"zoo": name} if name else {})
    stages.append({"stage": "entropy coded (.slim file)", "bytes": report.file_bytes,
                   "ratio": float_bytes / report.file_bytes, "val_accuracy": val_acc})
    return DeepCompressionResult(shared, stages, _layer_rows(shared, report), report,
                                 Path(path) if path is not None else None, history)


@register_handler(DeepCompression)
def _deep_compression_stage(model: nn.Module, config: DeepCompression, *, ctx: Any) -> nn.Module:
    """As a recipe stage (``type: deep_compression``): the runner's train/val data."""
    return deep_compression(model, config, train_data=ctx.train, val_data=ctx.val, progress=ctx.progress).model
