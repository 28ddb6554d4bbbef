"""Structured pruning, torchslim against Torch-Pruning 1.6.1, side by side in one process.

Run: ``python -m benchmarks prune`` (``PRUNE_BENCH=coverage,mnist,space,large,minilm`` picks parts).

- **mnist**: resnet-mnist and mobilenet-mnist (trained teachers). Both tools prune to half the
  MACs (torchslim: ``target_macs=0.5``; Torch-Pruning: bisection on its ratio), both recover with
  the same budget (:data:`FT`, :data:`FT_EPOCHS`: ``recover`` = ``train.fit``, Adam, cosine, logit KD from the
  unpruned teacher). Test accuracy (1,000 images), MACs ratio, batch-1 latency speed-up in torch
  and ONNX Runtime (1 thread, interleaved medians), and speed-up / MACs ratio (the goal: >= 0.9).
  torchslim also runs latency-aware (``runtime="onnxruntime"`` and ``"torch"``: channels go where
  the measured latency drops most), and on resnet-mnist depth pruning (``BlockPrune``) alone and
  with channel pruning. Depth then width (both models, :data:`DEPTH_CONFIG`): blocks (resnet:
  residual branches; mobilenet: shape-preserving layers, ``layers=True``) removed down to, never
  below, half the MACs, then channels (plain and latency-aware) to half the MACs in total.
  mobilenet-mnist also gets a latency target (:data:`TIME_CONFIG`): layers removed until the
  model measures at most 0.55 of its original latency on torch, and on ORT.
  ``PRUNE_BENCH=resnet-mnist`` (or ``mobilenet-mnist``) runs one model; the sections a run does
  not redo are kept from the previous ``prune.json``.
- **large**: the same latency comparison on a ResNet-18 (3x64x64) and a MobileNet-v1 (3x128x128)
  built here (random weights; latency does not depend on them), where compute, not per-op
  overhead, dominates. Torch-Pruning is run with its default call and with ``round_to=16``.
  MobileNet-v1 also gets :data:`LARGE_LAYERS` layers removed first (:func:`layers_then_channels`),
  and, in another arm, every stride-1 depthwise layer (its 9 of 13): torch eager runs a
  depthwise conv in about the same time whatever its channels. Random weights say nothing of
  the accuracy such removals cost.
- **minilm** (:mod:`benchmarks._prune_minilm`): all-MiniLM-L6-v2 (needs the ``minilm`` extra):
  25% of the heads and of the FFN neurons removed. Mean cosine of sentence embeddings to the original on 320 held-out real
  sentences (Python's own documentation), before and after a short recovery (embeddings
  distilled from the original on 640 other sentences), and the speed-up at batch 32 x seq 128,
  2 threads, torch and ORT. Torch-Pruning runs with its documented BERT recipe (heads declared).
- **space**: mobilenet-mnist's anatomy (:mod:`benchmarks._prune_space`): the batch-1 cost of
  each block and of an empty call on both runtimes, and every depth choice (nothing, the
  depthwise layer or the whole block, per block) followed by channels to half the MACs, with
  each one's speed-up / MACs ratio: the best any structured pruning of it reaches.
- **coverage**: which models and transformer blocks each tool prunes (50%, default call) with
  the output shapes kept, and what torchslim leaves pinned.

``prune_speedups.png`` in the output folder plots every arm's speed-up / MACs ratio, torch
against ONNX Runtime, one panel per model (:mod:`benchmarks._prune_plot`).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks._prune_common import latency, macs, params
from benchmarks._prune_minilm import bench_minilm
from benchmarks._prune_models import Decoder, MHABlock, MobileNetV1, ResNet18, random_bn
from benchmarks._prune_plot import plot_speedups, speedup_sections
from benchmarks._prune_space import space
from torchslim import data, zoo
from torchslim.measure import evaluate

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")
FT = {"epochs": 10, "lr": 3e-3, "kd_weight": 1.0, "temperature": 4.0}  # the same for both tools
# mobilenet-mnist (trained 15 epochs) loses whole layers in its depth arms: 20 epochs of recovery, for every arm
FT_EPOCHS = {"resnet-mnist": 10, "mobilenet-mnist": 20}
MNIST_CONFIG = {"target_macs": 0.5, "round_to": 8, "scope": "global", "importance": "l2"}
LATENCY_CONFIG = {"target_macs": 0.5, "round_to": 8, "importance": "l2"}  # + runtime: latency-aware allocation
BLOCK_CONFIG = {"target_macs": 0.5, "runtime": "torch"}  # resnet-mnist depth pruning
MAX_BLOCKS_CONFIG = {"target_macs": 0.5}  # the same ranked by output change alone (not by timings, which vary)
DEPTH_CONFIG = {"target_macs": 0.5, "runtime": "torch", "overshoot": False}  # depth, then channels to 0.5
TIME_CONFIG = {"target_latency": 0.55, "layers": True}  # mobilenet: layers out until 1.8x faster, measured
LARGE_CONFIG = {"target_macs": 0.5, "round_to": 16, "importance": "l2"}  # AVX-512: 16-float blocks
LARGE_LAYERS = 4  # MobileNet-v1: layers BlockPrune removes before channels (random weights: a latency probe)
POINTWISE = r"re:^features\.\d*[02468]$"  # MobileNetV1's stem and 1x1 layers: kept when only depthwise layers may go


def _rest(target: float, original: nn.Module, deep: nn.Module, x: Any) -> float:
    """The fraction of ``deep``'s MACs (a depth-pruned ``original``) that leaves ``target`` of the original's."""
    return target * macs(original, x) / macs(deep, x)


def tp_prune(model: nn.Module, x: Any, ratio: float, **options: Any) -> nn.Module:
    """Torch-Pruning's default call: L2 group magnitude, classifier ignored."""
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    last = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][-1:]
    pruner = tp.pruner.MetaPruner(m, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=last, **options)
    pruner.step()
    return m


def tp_to_target(model: nn.Module, x: torch.Tensor, keep: float, **options: Any) -> tuple[nn.Module, float]:
    """Bisection on Torch-Pruning's ratio until MACs <= keep * original."""
    goal, lo, hi = keep * macs(model, x), 0.0, 0.9
    best = None
    for _ in range(10):
        mid = (lo + hi) / 2
        m = tp_prune(model, x, mid, **options)
        if macs(m, x) <= goal:
            hi, best = mid, m
        else:
            lo = mid
    return best or tp_prune(model, x, hi, **options), hi


def _speedups(out: dict[str, Any], lat: dict[str, float], labels: list[str]) -> None:
    out["latency_ms"] = lat
    for label in labels:
        for rt in ("torch", "ort"):
            out[label][f"speedup_{rt}"] = lat[f"unpruned {rt}"] / lat[f"{label} {rt}"]
        out[label]["ort_over_macs"] = out[label]["speedup_ort"] / out[label]["macs_ratio"]
        out[label]["torch_over_macs"] = out[label]["speedup_torch"] / out[label]["macs_ratio"]


def _show(name: str, out: dict[str, Any]) -> None:
    for k, v in out.items():
        if isinstance(v, dict) and k != "latency_ms":
            print(name, k, {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()}, flush=True)


def mnist_arms(name: str, teacher: nn.Module, x: torch.Tensor, train: Any) -> tuple[dict[str, nn.Module], float]:
    """Every pruned variant of the mnist section, at (about) half the MACs: torchslim's plain
    MACs search, its latency-aware allocation on ORT and on torch (:data:`LATENCY_CONFIG`), and on
    resnet depth pruning (:data:`BLOCK_CONFIG`, branches ranked by output change per measured
    torch time saved, removed while any is left and the MACs are above half) alone, and
    (:data:`MAX_BLOCKS_CONFIG`, ranked by output change alone) then channels to half the MACs in
    total (global L2 at ``round_to=16``, and latency-aware on torch);
    Torch-Pruning at the same MACs (and the ratio its bisection found)."""
    arms = {"torchslim": P.prune(teacher, P.StructuredPrune(**MNIST_CONFIG), example_inputs=x)}
    for rt in ("onnxruntime", "torch"):
        arms[f"torchslim latency {rt}"] = P.prune(teacher, P.StructuredPrune(**LATENCY_CONFIG, runtime=rt), example_inputs=x)
    if name == "resnet-mnist":
        arms["torchslim blocks"] = P.prune(teacher, P.BlockPrune(**BLOCK_CONFIG), example_inputs=x, data=train)
        blocks = P.prune(teacher, P.BlockPrune(**MAX_BLOCKS_CONFIG), example_inputs=x, data=train)
        rest = {**LATENCY_CONFIG, "target_macs": _rest(LATENCY_CONFIG["target_macs"], teacher, blocks, x)}
        if rest["target_macs"] < 1:  # every branch it removes, then channels for the rest
            arms["torchslim max blocks + channels r16"] = P.prune(
                blocks, P.StructuredPrune(**{**rest, "round_to": 16}, scope="global"), example_inputs=x)
            arms["torchslim max blocks + latency torch"] = P.prune(
                blocks, P.StructuredPrune(**rest, runtime="torch"), example_inputs=x)
    arms.update(depth_then_width(name, teacher, x, train))
    if name == "mobilenet-mnist":  # overhead-bound: a latency target instead of a MACs one
        for rt, short in (("torch", "torch"), ("onnxruntime", "ort")):
            arms[f"torchslim layers to 0.55 {short} time"] = P.prune(
                teacher, P.BlockPrune(**TIME_CONFIG, runtime=rt), example_inputs=x, data=train)
    arms["torch-pruning"], ratio = tp_to_target(teacher, x, 0.5)
    return arms, ratio


def depth_then_width(name: str, teacher: nn.Module, x: torch.Tensor, train: Any) -> dict[str, nn.Module]:
    """Blocks removed while the MACs stay >= half (:data:`DEPTH_CONFIG`; mobilenet: layers), then
    channels (global L2, and latency-aware on ORT and on torch) to half the original MACs."""
    label = "blocks" if name == "resnet-mnist" else "layers"
    deep = P.prune(teacher, P.BlockPrune(**DEPTH_CONFIG, layers=label == "layers"), example_inputs=x, data=train)
    rest = {**LATENCY_CONFIG, "target_macs": _rest(LATENCY_CONFIG["target_macs"], teacher, deep, x)}
    arms = {f"torchslim {label}>=0.5": deep,
            f"torchslim {label} + channels": P.prune(deep, P.StructuredPrune(**rest, scope="global"), example_inputs=x)}
    for rt, short in (("onnxruntime", "ort"), ("torch", "torch")):
        arms[f"torchslim {label} + latency {short}"] = P.prune(deep, P.StructuredPrune(**rest, runtime=rt), example_inputs=x)
    return arms


def bench_mnist(name: str, workdir: Path, seed: int = 0) -> dict[str, Any]:
    teacher = zoo.teacher(name, progress=False).eval()
    x = zoo.example_inputs(name, batch_size=1)
    splits = data.load(zoo.info(name).dataset, batch_size=64, seed=seed, shift=2)
    base = macs(teacher, x)
    arms, tp_ratio = mnist_arms(name, teacher, x, splits.train)
    out: dict[str, Any] = {"unpruned": {"macs": base, "params": params(teacher), "acc": evaluate(teacher, splits.test)}}
    for label, m in arms.items():
        acc0 = evaluate(m, splits.test)
        P.recover(m, splits.train, teacher=teacher, progress=False, seed=seed, **{**FT, "epochs": FT_EPOCHS[name]})
        out[label] = {"macs": macs(m, x), "macs_ratio": base / macs(m, x), "params": params(m),
                      "acc_before_ft": acc0, "acc": evaluate(m, splits.test),
                      "channels": [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)]}
        for attr, key in (("slim_prune_report", "latency"), ("slim_block_report", "removed")):
            value = getattr(getattr(m, attr, None), key, None)
            if value:
                out[label][key] = {k: v for k, v in value.items() if k != "tables"} if isinstance(value, dict) else value
        measured = getattr(getattr(m, "slim_block_report", None), "latency", None)
        if measured is not None:
            out[label]["latency_when_pruned"] = measured  # the fraction BlockPrune measured, before recovery
    out["torch-pruning"]["ratio"] = tp_ratio
    lat = latency({"unpruned": teacher, **arms}, x, workdir, rounds=31, inner=20, title=f"{name}: batch 1, 1 thread")
    _speedups(out, lat, list(arms))
    _table(name, out, list(arms))
    return out


def _table(name: str, out: dict[str, Any], labels: list[str]) -> None:
    """One line per arm: MACs ratio, accuracy, speed-ups and speed-up / MACs ratio (goal >= 0.9)."""
    print(f"\n{name} (unpruned acc {out['unpruned']['acc']:.4f})\n{'arm':34s} macs_x  acc     torch_x ort_x  "
          "torch/macs ort/macs", flush=True)
    for k in labels:
        r = out[k]
        print(f"{k:34s} {r['macs_ratio']:.2f}   {r['acc']:.4f}  {r['speedup_torch']:.2f}    {r['speedup_ort']:.2f}   "
              f"{r['torch_over_macs']:.2f}       {r['ort_over_macs']:.2f}", flush=True)


def layers_then_channels(model: nn.Module, x: torch.Tensor, layers: int, *, ignore: tuple[str, ...] = (),
                         runtime: str | None = "torch") -> nn.Module:
    """``layers`` shape-preserving layers removed (:class:`BlockPrune`, ``layers=True``, none of
    ``ignore``; ranked by output change per ``runtime`` time saved), then channels to half the
    original MACs in total."""
    deep = P.prune(model, P.BlockPrune(blocks=layers, layers=True, runtime=runtime, ignore=ignore), example_inputs=x)
    rest = _rest(LARGE_CONFIG["target_macs"], model, deep, x)
    return P.prune(deep, P.StructuredPrune(**{**LARGE_CONFIG, "target_macs": rest}), example_inputs=x)


def bench_large(workdir: Path) -> dict[str, Any]:
    results = {}
    for name, net, size in (("resnet18", ResNet18, 64), ("mobilenet-v1", MobileNetV1, 128)):
        torch.manual_seed(0)
        model = random_bn(net())
        x = torch.randn(1, 3, size, size)
        base = macs(model, x)
        models = {"unpruned": model, "torchslim": P.prune(model, P.StructuredPrune(**LARGE_CONFIG), example_inputs=x)}
        if name == "mobilenet-v1":  # does removing depthwise layers, which torch runs slowly, free torch?
            models[f"torchslim {LARGE_LAYERS} layers + channels"] = layers_then_channels(model, x, LARGE_LAYERS)
            dw = sum(1 for c in model.modules() if isinstance(c, nn.Conv2d) and c.groups > 1 and c.stride == (1, 1))
            models[f"torchslim {dw} depthwise layers + channels"] = layers_then_channels(
                model, x, dw, ignore=(POINTWISE,), runtime=None)  # every stride-1 depthwise layer
        models |= {"torch-pruning": tp_to_target(model, x, 0.5)[0],
                   "torch-pruning round_to=16": tp_to_target(model, x, 0.5, round_to=16)[0]}
        out: dict[str, Any] = {"input": [3, size, size], "unpruned": {"macs": base, "params": params(model)}}
        for k, m in list(models.items())[1:]:
            out[k] = {"macs": macs(m, x), "macs_ratio": base / macs(m, x), "params": params(m)}
        lat = latency(models, x, workdir, rounds=21, inner=3, title=f"{name} 3x{size}x{size}: batch 1, 1 thread")
        _speedups(out, lat, list(models)[1:])
        _show(name, out)
        results[name] = out
    return results


def coverage() -> dict[str, dict[str, str]]:
    """Prune 50% with each tool's default call; 'ok' if the output shape is kept and it shrank."""
    models: dict[str, tuple[nn.Module, Any]] = {n: (zoo.model(n).eval(), zoo.example_inputs(n, 2)) for n in zoo.names()}
    models["resnet18 (3x64x64)"] = (random_bn(ResNet18()), torch.randn(1, 3, 64, 64))
    models["mobilenet-v1 (3x128x128)"] = (random_bn(MobileNetV1()), torch.randn(1, 3, 128, 128))
    models["GroupNorm + grouped + transposed conv"] = (Decoder().eval(), torch.randn(2, 3, 16, 16))
    models["nn.TransformerEncoderLayer"] = (nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval(), torch.randn(2, 5, 32))
    models["nn.MultiheadAttention block"] = (MHABlock().eval(), torch.randn(2, 5, 32))
    models["the same after split_attention"] = (P.split_attention(models["nn.MultiheadAttention block"][0]), torch.randn(2, 5, 32))
    try:
        mini, tok = zoo.minilm()
        b = tok(["a test sentence"], return_tensors="pt")
        models["all-MiniLM-L6-v2 (BERT blocks)"] = (mini, (b["input_ids"], b["attention_mask"]))
    except ImportError:
        pass
    rows: dict[str, dict[str, str]] = {}
    for name, (m, x) in models.items():
        rows[name] = {}
        xs = x if isinstance(x, tuple) else (x,)
        with torch.no_grad():
            want = P.structured.report.leaves_shape(m(*xs))
        for tool in ("torchslim", "torch-pruning"):
            try:
                s = P.prune(m, P.StructuredPrune(sparsity=0.5), example_inputs=x) if tool == "torchslim" else tp_prune(m, list(xs), 0.5)
                with torch.no_grad():
                    got = P.structured.report.leaves_shape(s(*xs))
                status = "ok" if got == want and params(s) < params(m) else ("no change" if got == want else f"output shape {got}")
                if tool == "torchslim":
                    pinned = [k for k, v in s.slim_prune_report.pinned.items()
                              if not v[0].startswith(("model input", "model output")) and "looked up by index" not in v[0]]
                    status += f" ({len(pinned)} groups pinned: {', '.join(pinned)})" if pinned else ""
            except Exception as e:  # noqa: BLE001 - the table reports it
                status = f"error: {type(e).__name__}: {str(e).splitlines()[0][:90] if str(e) else ''}"
            rows[name][tool] = status
        print(f"{name:38s} torchslim: {rows[name]['torchslim'][:150]}\n{'':38s} torch-pruning: {rows[name]['torch-pruning']}", flush=True)
    return rows


def main(out_dir: Path) -> dict[str, Any]:
    parts = os.environ.get("PRUNE_BENCH", "coverage,mnist,space,large,minilm").split(",")  # or one model: resnet-mnist
    previous = torch.get_num_threads()
    previous_json = out_dir / "prune.json"  # sections this run does not redo are kept
    results: dict[str, Any] = json.loads(previous_json.read_text()) if previous_json.exists() else {}
    results.update({"fine_tune": FT, "fine_tune_epochs": FT_EPOCHS, "mnist_config": MNIST_CONFIG, "latency_config": LATENCY_CONFIG,
                    "block_config": BLOCK_CONFIG, "max_blocks_config": MAX_BLOCKS_CONFIG, "depth_config": DEPTH_CONFIG, "time_config": TIME_CONFIG, "large_config": LARGE_CONFIG,
                    "large_layers": LARGE_LAYERS})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "coverage" in parts:
                results["coverage"] = coverage()
            for name in ("resnet-mnist", "mobilenet-mnist"):
                if "mnist" in parts or name in parts:
                    torch.set_num_threads(previous)
                    results[name] = bench_mnist(name, Path(tmp))
            if "space" in parts:
                torch.set_num_threads(previous)
                results["space"] = space(zoo.teacher("mobilenet-mnist", progress=False).eval(),
                                         zoo.example_inputs("mobilenet-mnist", batch_size=1))
            if "large" in parts:
                results["large"] = bench_large(Path(tmp))
            if "minilm" in parts:
                results["minilm"] = bench_minilm(Path(tmp))
    finally:
        torch.set_num_threads(previous)
    if any(speedup_sections(results).values()):
        results["plot"] = str(plot_speedups(results, out_dir / "prune_speedups.png"))
    return results
