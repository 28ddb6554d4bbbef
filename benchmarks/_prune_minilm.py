"""The all-MiniLM-L6-v2 part of ``python -m benchmarks prune``: 25% of the heads and of the FFN
neurons removed by torchslim and by Torch-Pruning's BERT recipe; embedding cosine to the
original before and after a short recovery, and the speed-up in torch and ONNX Runtime.

Example (needs the ``minilm`` extra; a few minutes):
    >>> from benchmarks._prune_minilm import bench_minilm  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._prune_common import latency, macs, params
from benchmarks._prune_models import sentences
from torchslim import zoo

P = importlib.import_module("torchslim.prune")


class Embedder(nn.Module):
    """A sentence encoder as sentence-transformers runs all-MiniLM-L6-v2: mean pooling over the
    attention mask, then L2 normalisation."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.m = encoder

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T), (B, T)
        h = self.m(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, 384)
        w = mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return F.normalize((h * w).sum(1) / w.sum(1).clamp_min(1), dim=-1)  # (B, 384)


def tp_minilm(model: nn.Module, x: tuple[torch.Tensor, ...], ratio: float) -> nn.Module:
    """Torch-Pruning's BERT recipe: heads declared per q/k/v projection, whole heads removed,
    FFN neurons pruned; every layer writing the hidden width is ignored so it stays 384."""
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    heads = {}
    for mod in m.modules():
        if hasattr(mod, "num_attention_heads") and hasattr(mod, "query"):
            heads.update({mod.query: mod.num_attention_heads, mod.key: mod.num_attention_heads, mod.value: mod.num_attention_heads})
    ignored = [mod for n, mod in m.named_modules() if n.endswith("output.dense") or n.endswith("pooler.dense")]
    pruner = tp.pruner.MetaPruner(m, list(x), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=ignored, num_heads=heads, prune_num_heads=True,
                                  prune_head_dims=False, head_pruning_ratio=ratio,
                                  output_transform=lambda out: out.last_hidden_state.sum())
    pruner.step()
    for mod in m.modules():
        if not hasattr(mod, "query") or mod.query not in pruner.num_heads:
            continue
        mod.num_attention_heads = pruner.num_heads[mod.query]
        mod.all_head_size = mod.query.out_features
    return m


def _cosine(model: nn.Module, batches: list[tuple[torch.Tensor, ...]], ref: list[torch.Tensor]) -> float:
    with torch.inference_mode():
        return float(torch.cat([(model(*b) * r).sum(1) for b, r in zip(batches, ref, strict=True)]).mean())


def bench_minilm(workdir: Path, recover_epochs: int = 2) -> dict[str, Any]:
    try:
        encoder, tok = zoo.minilm()
    except ImportError as e:
        return {"skipped": str(e)}
    torch.set_num_threads(2)
    texts = sentences()
    train_s, test_s = texts[:640], texts[640:960]

    def batches(ss: list[str], pad: str = "longest") -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for i in range(0, len(ss), 32):
            b = tok(ss[i:i + 32], padding=pad, truncation=True, max_length=128, return_tensors="pt")
            out.append((b["input_ids"], b["attention_mask"]))
        return out

    test_b, train_b = batches(test_s), [(b,) for b in batches(train_s)]
    teacher = Embedder(encoder).eval()
    with torch.inference_mode():
        ref = [teacher(*b) for b in test_b]
    x = train_b[0][0]
    cfg = {"sparsity": 0.25, "ignore": ("m.pooler",), "round_to": 16}  # round_to: FFN widths (not heads)
    ours = P.prune(teacher, P.StructuredPrune(importance="taylor", scope="global", **cfg), example_inputs=x, data=train_b)
    uniform = P.prune(teacher, P.StructuredPrune(importance="taylor", **cfg), example_inputs=x, data=train_b)
    ours_l2 = P.prune(teacher, P.StructuredPrune(**cfg), example_inputs=x)
    theirs = Embedder(tp_minilm(encoder, x, 0.25))
    layers = ours.m.encoder.layer
    out: dict[str, Any] = {
        "sentences": {"recovery": len(train_s), "held_out": len(test_s)},
        "heads": [blk.attention.self.query.out_features // 32 for blk in layers],
        "ffn": [blk.intermediate.dense.out_features for blk in layers],
        "params": {"unpruned": params(encoder), "torchslim": params(ours), "torch-pruning": params(theirs)},
        "cosine": {"torchslim taylor global": _cosine(ours, test_b, ref), "torchslim taylor layer": _cosine(uniform, test_b, ref),
                   "torchslim l2 layer": _cosine(ours_l2, test_b, ref), "torch-pruning": _cosine(theirs, test_b, ref)},
    }
    print("minilm before recovery", out, flush=True)
    for label, m in (("torchslim taylor global", ours), ("torch-pruning", theirs)):
        for p in m.m.embeddings.parameters():
            p.requires_grad_(False)  # not pruned; skips 11.7M embedding gradients per step
        P.recover(m, train_b, epochs=recover_epochs, teacher=teacher, match="outputs", lr=1e-4,
                  optimizer="adamw", progress=False)
        out["cosine"][f"{label} + recovery"] = _cosine(m, test_b, ref)
    out["recovery"] = {"epochs": recover_epochs, "lr": 1e-4, "loss": "1 - cos + relative mse of embeddings"}
    bench = batches(test_s[:32], pad="max_length")[0]  # (32, 128)
    pruned = {"torchslim": ours, "torchslim layer": uniform, "torch-pruning": theirs}
    lat = latency({"unpruned": teacher, **pruned}, bench, workdir,
                  rounds=11, inner=1, threads=2, title="all-MiniLM-L6-v2: batch 32 x seq 128, 2 threads")
    out["latency_ms"] = lat
    out["speedup"] = {f"{k} {rt}": lat[f"unpruned {rt}"] / lat[f"{k} {rt}"] for k in pruned for rt in ("torch", "ort")}
    out["macs_ratio"] = {k: macs(teacher, bench) / macs(m, bench) for k, m in pruned.items()}
    print("minilm", {k: v for k, v in out.items() if k != "latency_ms"}, flush=True)
    return out
