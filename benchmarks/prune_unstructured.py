"""Unstructured pruning of LeNet-300-100 on MNIST-5k: accuracy against sparsity, our masks
against ``torch.nn.utils.prune`` (the peer), with the same fine-tuning budget.

Run: ``python -m benchmarks prune_unstructured``. For each sparsity (50/80/90/95%):

- one-shot magnitude, global and per layer, without fine-tuning;
- the same followed by ``FT_EPOCHS`` epochs of fine-tuning (Adam, cosine, shift-1 augmentation:
  the teacher's recipe) through ``torchslim.train.fit``;
- gradual (Zhu & Gupta cubic ramp over the same epochs: ramp to the final sparsity by the end
  of epoch ``FT_EPOCHS - 1``, one epoch to recover) — the same budget;
- the random baseline (per layer) with the same fine-tuning;
- the peer: ``torch.nn.utils.prune.global_unstructured(L1Unstructured)`` over the same three
  weights, one-shot and with the same ``fit`` call;
- plus 2:4 (50%) and a lottery ticket at 90% (3 rounds, more epochs: budget noted).

Reported: test accuracy (1,000 samples), achieved sparsity of the weights, non-zero parameters,
bytes of the dense safetensors file and estimated sparse bytes (bitmask, CSR with 8-bit
relative indices). A latency check (``harness.side_by_side``) compares the 90% model dense with
zeros against torch CSR weights at batch 1 and 64. The plot ``prune_unstructured.png`` (accuracy
against sparsity) is written beside the JSON.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from torch.nn.utils import prune as torch_prune

from benchmarks.harness import side_by_side
from torchslim import data, zoo
from torchslim.core.io import atomic_write
from torchslim.measure import evaluate
from torchslim.measure.params import count_params, state_dict_bytes
from torchslim.prune.api import prune
from torchslim.prune.unstructured import (
    GradualPrune,
    LotteryTicket,
    MagnitudePrune,
    NMPrune,
    RandomPrune,
    make_permanent,
    sparse_bytes,
)
from torchslim.train import fit

SPARSITIES = (0.5, 0.8, 0.9, 0.95)
FT_EPOCHS = 3
FIT = {"lr": 3e-3, "progress": False}  # Adam, cosine schedule (fit's defaults)
LAYERS = ("fc1", "fc2", "fc3")


def _weight_sparsity(model: nn.Module) -> float:
    ws = [getattr(model, n).weight.detach() for n in LAYERS]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def _record(model: nn.Module, test: Any, seconds: float, **extra: Any) -> dict[str, Any]:
    """Accuracy and sizes of a pruned model (masks made permanent on a copy)."""
    plain = make_permanent(copy.deepcopy(model)).eval()
    total, nonzero = count_params(plain)
    return {
        "accuracy": evaluate(plain, test), "weight_sparsity": round(_weight_sparsity(plain), 5),
        "params_total": total, "params_nonzero": nonzero, "dense_bytes": state_dict_bytes(plain),
        "bitmask_bytes": sparse_bytes(plain, "bitmask"), "csr_bytes": sparse_bytes(plain, "csr"),
        "seconds": round(seconds, 2), **extra,
    }


def _peer(teacher: nn.Module, sparsity: float, train: Any | None) -> nn.Module:
    """torch.nn.utils.prune: global L1 over the three weights, fine-tuned with the same fit."""
    net = copy.deepcopy(teacher)
    params = [(getattr(net, n), "weight") for n in LAYERS]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    if train is not None:
        fit(net, train, epochs=FT_EPOCHS, **FIT)
    for module, name in params:
        torch_prune.remove(module, name)
    return net


def _run(label: str, fn: Any, test: Any, rows: list[dict[str, Any]], sparsity: float, **extra: Any) -> None:
    t0 = time.perf_counter()
    model = fn()
    row = {"method": label, "sparsity": sparsity, **_record(model, test, time.perf_counter() - t0, **extra)}
    rows.append(row)
    print(f"{label:28s} s={sparsity:.2f} acc={row['accuracy']:.3f} achieved={row['weight_sparsity']:.3f} "
          f"nnz={row['params_nonzero']} bitmask={row['bitmask_bytes']} csr={row['csr_bytes']} ({row['seconds']} s)",
          flush=True)


def _latency(model: nn.Module) -> dict[str, Any]:
    """Dense weights with zeros against torch CSR weights (torch.mm), batch 1 and 64, 1 thread."""
    plain = make_permanent(copy.deepcopy(model)).eval()
    dense = [(getattr(plain, n).weight.detach(), getattr(plain, n).bias.detach()) for n in LAYERS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        csr = [(w.to_sparse_csr(), b) for w, b in dense]

    def mlp(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        h = x.t()  # (784, B): W @ h keeps the sparse operand on the left
        for i, (w, b) in enumerate(layers):
            h = torch.mm(w, h) + b[:, None]
            if i < len(layers) - 1:
                h = torch.relu(h)
        return h.t()

    out: dict[str, Any] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch in (1, 64):
            x = torch.rand(batch, 784)
            torch.testing.assert_close(mlp(csr, x), mlp(dense, x), atol=1e-4, rtol=1e-4)
            res = side_by_side({"dense (zeros)": lambda x=x: mlp(dense, x), "csr": lambda x=x: mlp(csr, x)},
                               rounds=15, inner=20, title=f"LeNet-300-100 at 90%: batch {batch}, 1 thread")
            res.print()
            out[f"batch{batch}"] = {n: c.median_ms for n, c in res.cases.items()} | {"csr_speedup": res.ratio("csr")}
    finally:
        torch.set_num_threads(previous)
    return out


def _plot(rows: list[dict[str, Any]], teacher_acc: float, path: Path) -> Path:
    """Left: every method over the whole range; right: the fine-tuned ones near the teacher.
    The peer is drawn with crosses and dotted lines: where it equals ours, both stay visible."""
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2)
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if sum(r["method"] == m for r in rows) > 1]
    color = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(r["method"] for r in rows))}
    for ax, lo in zip(axes, (0, 88), strict=True):
        for method in methods:
            if lo and "one-shot" in method:
                continue
            pts = sorted((r["weight_sparsity"] * 100, r["accuracy"] * 100) for r in rows if r["method"] == method)
            peer = method.startswith("peer")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ":" if peer else ("--" if "one-shot" in method else "-"),
                    marker="x" if peer else "o", markersize=9 if peer else 5, color=color[method], label=method)
        for r in rows:
            if r["method"] not in methods:
                ax.plot(r["weight_sparsity"] * 100, r["accuracy"] * 100, marker="*", markersize=12,
                        linestyle="", color=color[r["method"]], label=r["method"])
        ax.axhline(teacher_acc * 100, color="black", linewidth=0.8, label=f"dense teacher {teacher_acc:.1%}")
        ax.set(xlabel="weight sparsity (%)", ylabel="MNIST-5k test accuracy (%)", ylim=(lo, 98))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_title("all methods")
    axes[1].set_title(f"fine-tuned ({FT_EPOCHS} epochs), near the teacher")
    fig.suptitle("LeNet-300-100, unstructured pruning: torchslim vs torch.nn.utils.prune (peer)")
    FigureCanvasAgg(fig)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def main(out_dir: Path) -> dict[str, Any]:
    teacher = zoo.teacher("lenet300-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=64, seed=0)
    train = data.load("mnist_5k", batch_size=64, seed=0, shift=1).train
    test = splits.test
    teacher_acc = evaluate(teacher, test)
    print(f"teacher lenet300-mnist: {teacher_acc:.3f}", flush=True)
    rows: list[dict[str, Any]] = []
    ft = {"train_data": train, "epochs": FT_EPOCHS, **FIT}
    for s in SPARSITIES:
        _run("one-shot global", lambda s=s: prune(teacher, MagnitudePrune(sparsity=s, scope="global")), test, rows, s)
        _run("one-shot layer", lambda s=s: prune(teacher, MagnitudePrune(sparsity=s, scope="layer")), test, rows, s)
        _run("peer one-shot global", lambda s=s: _peer(teacher, s, None), test, rows, s)
        _run("global + FT", lambda s=s: prune(teacher, MagnitudePrune(sparsity=s), **ft), test, rows, s)
        _run("layer + FT", lambda s=s: prune(teacher, MagnitudePrune(sparsity=s, scope="layer"), **ft), test, rows, s)
        _run("gradual global", lambda s=s: prune(
            teacher, GradualPrune(final_sparsity=s, end_epoch=FT_EPOCHS - 1, frequency=10), **ft), test, rows, s)
        _run("random layer + FT", lambda s=s: prune(teacher, RandomPrune(sparsity=s), **ft), test, rows, s)
        _run("peer global + FT", lambda s=s: _peer(teacher, s, train), test, rows, s)
    _run("2:4 + FT", lambda: prune(teacher, NMPrune(n=2, m=4), **ft), test, rows, 0.5)
    per_round = 1 - 0.1 ** (1 / 3)
    _run("lottery ticket (3 rounds)", lambda: prune(
        teacher, LotteryTicket(rounds=3, sparsity_per_round=per_round, rewind_epoch=1), train_data=train,
        epochs=FT_EPOCHS, **FIT), test, rows, 0.9, epochs_total=1 + 4 * FT_EPOCHS)
    plot = _plot(rows, teacher_acc, Path(out_dir) / "prune_unstructured.png")
    latency = _latency(prune(teacher, MagnitudePrune(sparsity=0.9)))
    return {
        "teacher_accuracy": teacher_acc, "fine_tune_epochs": FT_EPOCHS, "fit": FIT, "rows": rows,
        "latency_ms_90pct": latency, "plot": str(plot), "threads": torch.get_num_threads(),
    }
