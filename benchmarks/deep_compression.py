"""Deep Compression into ``.slim`` files: LeNet-300-100 and LeNet-5 teachers on MNIST-5k.

Run: ``python -m benchmarks deep_compression``. For each model:

- the pipeline (:mod:`torchslim.recipe.deep_compression`): iterative magnitude pruning with
  retraining, k-means weight sharing with fine-tuned centroids, ANS entropy coding; hyper-
  parameters were chosen on the validation split, accuracy is reported on the test split
  (1,000 images) *after reloading the model from its .slim file*;
- the per-stage and per-layer size tables (Han et al. 2016, Table 2 layout);
- the file against ``torch.save`` of the compressed model's state dict, gzip -9 of that, and
  zstd -19 of the packed payload (the same symbol streams at fixed width, plus raw values);
- coded bits per shared-weight index against the empirical entropy of the index stream;
- bit-identity: the reloaded model's outputs on the whole test split against the in-memory
  compressed model's, for the pipeline's file and for every other encoding (float32, float16
  storage, masks, sparse bitmask/relative, int8 static/dynamic, int4/int8 weight-only, shared
  dense, low-rank).
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import time
from pathlib import Path
from typing import Any

import torch
import zstandard
from torch import nn

import torchslim as slim
from torchslim import data, zoo
from torchslim.export.slim.ans import pack_fixed
from torchslim.export.slim.container import tensor_bytes
from torchslim.measure import evaluate
from torchslim.quant.sharing import WeightSharing
from torchslim.recipe.artifact import load, save
from torchslim.recipe.deep_compression import (
    DeepCompression,
    DeepCompressionResult,
    deep_compression,
)

# Chosen on the validation split (500 images) among a handful of settings; see the report.
CONFIGS = {
    "lenet300-mnist": DeepCompression(sparsity=0.94, steps=5, retrain_epochs=6, weight_decay=1e-4, bits=4,
                                      layer_bits={"fc2": 5, "fc3": 5}, share_epochs=3, float16=True),
    "lenet5-mnist": DeepCompression(sparsity=0.9, steps=5, retrain_epochs=6, lr=2e-3, weight_decay=1e-4, bits=4,
                                    conv_bits=5, share_epochs=3, float16=True),
}
SHIFT = {"lenet300-mnist": 1, "lenet5-mnist": 2}  # the teachers' augmentation


def _test_inputs(splits: data.DataSplits) -> torch.Tensor:
    return torch.cat([x for x, _ in splits.test])


def _sizes(result: DeepCompressionResult, float_bytes: int) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(result.model.state_dict(), buf)
    pickled = buf.getvalue()
    report = result.report
    raw = b"".join(tensor_bytes(t) for t in report.raw.values())
    packed = pack_fixed(report.segments) + raw
    sizes = {
        "float32 weights": float_bytes,
        "torch.save(state_dict)": len(pickled),
        "gzip -9 of torch.save": len(gzip.compress(pickled, 9)),
        "packed payload (fixed width)": len(packed),
        "zstd -19 of packed payload": len(zstandard.ZstdCompressor(level=19).compress(packed)),
        "ANS payload (ours)": report.ans_bytes + len(raw),
        ".slim file (ours, with manifest)": report.file_bytes,
    }
    return {k: {"bytes": v, "x smaller than float32": round(float_bytes / v, 2)} for k, v in sizes.items()}


def _entropy(result: DeepCompressionResult) -> list[dict[str, Any]]:
    rows = []
    for layer in result.layers:
        r = result.report.row(f"{layer['layer']}.indices")
        rows.append({"layer": layer["layer"], "indices": r.val_symbols, "coded bits/index": r.val_bits / max(1, r.val_symbols),
                     "entropy bits/index": r.val_entropy_bits / max(1, r.val_symbols),
                     "overhead %": 100 * (r.val_bits / max(1e-9, r.val_entropy_bits) - 1)})
    n = sum(r["indices"] for r in rows)
    coded = sum(result.report.row(f"{r['layer']}.indices").val_bits for r in rows)
    ent = sum(result.report.row(f"{r['layer']}.indices").val_entropy_bits for r in rows)
    rows.append({"layer": "all", "indices": n, "coded bits/index": coded / n, "entropy bits/index": ent / n,
                 "overhead %": 100 * (coded / ent - 1)})
    return rows


def _encodings(name: str, teacher: nn.Module, splits: data.DataSplits, out: Path) -> dict[str, dict[str, Any]]:
    """Every encoding on the trained teacher: reloaded outputs bit-identical on the test split?"""
    x = _test_inputs(splits)
    calib = [b for _, b in zip(range(4), splits.train, strict=False)]
    sparse = slim.make_permanent(slim.prune(teacher, slim.MagnitudePrune(sparsity=0.9)))
    cases: dict[str, tuple[nn.Module, bool]] = {
        "float32": (teacher, False), "float16 storage": (sparse, True),
        "masks (parametrized)": (slim.prune(teacher, slim.MagnitudePrune(sparsity=0.9)), False),
        "sparse (bitmask)": (slim.make_permanent(slim.prune(teacher, slim.RandomPrune(sparsity=0.5))), False),
        "sparse (relative)": (slim.make_permanent(slim.prune(teacher, slim.MagnitudePrune(sparsity=0.98))), False),
        "int8 static": (slim.quantize(teacher, slim.Int8Static(), calibration=calib), False),
        "shared dense (k-means)": (slim.quantize(teacher, WeightSharing(bits=4, conv_bits=6)), False),
        "low-rank": (slim.factorize(teacher, slim.LowRank(param_ratio=0.5)), False),
    }
    if name == "lenet300-mnist":
        cases["int8 dynamic"] = (slim.quantize(teacher, slim.Int8Dynamic()), False)
        cases["int4 weight-only"] = (slim.quantize(teacher, slim.WeightOnly(bits=4, group_size=64)), False)
        cases["int8 weight-only"] = (slim.quantize(teacher, slim.WeightOnly(bits=8)), False)
    rows = {}
    for case, (model, f16) in cases.items():
        model = model.eval()
        report = save(model, out / f"{name}-{case.split()[0]}.slim", float16=f16)
        ref = copy.deepcopy(model)
        if f16:
            with torch.no_grad():
                for p in ref.parameters():
                    p.copy_(p.half().float())
        back = load(report.path)
        with torch.no_grad():
            same = torch.equal(back(x), ref(x))
        rows[case] = {"bit_identical": same, "file_bytes": report.file_bytes,
                      "encodings": sorted({r.encoding.split(" of ")[0] for r in report.tensors})}
    return rows


def _md(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    fmt = [lambda v: f"{v:.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)] * len(keys)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f(r[k]) for f, k in zip(fmt, keys, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def run_model(name: str, out: Path) -> dict[str, Any]:
    teacher = zoo.teacher(name, progress=False).eval()
    splits = data.load("mnist_5k", batch_size=64, seed=0, shift=SHIFT[name])
    float_bytes = sum(4 * p.numel() for p in teacher.parameters())
    t0 = time.perf_counter()
    result = deep_compression(teacher, CONFIGS[name], train_data=splits.train, val_data=splits.val, path=out / f"{name}.slim")
    seconds = time.perf_counter() - t0
    back = load(result.path)  # the zoo name travels in the file
    x = _test_inputs(splits)
    with torch.no_grad():
        identical = torch.equal(back(x), result.model(x))
    acc_teacher, acc_back = evaluate(teacher, splits.test), evaluate(back, splits.test)
    ratio = float_bytes / result.report.file_bytes
    summary = {
        "model": name, "teacher test accuracy": acc_teacher, "reloaded test accuracy": acc_back,
        "accuracy change (pt)": round(100 * (acc_back - acc_teacher), 2), "file bytes": result.report.file_bytes,
        "float32 bytes": float_bytes, "compression x": round(ratio, 2), "reloaded bit-identical": identical,
        "pipeline seconds": round(seconds, 1), "config": CONFIGS[name].to_dict(),
    }
    print(f"\n## {name}: {float_bytes:,} B float32 -> {result.report.file_bytes:,} B .slim = {ratio:.1f}x; "
          f"test accuracy {100 * acc_teacher:.1f}% -> {100 * acc_back:.1f}% after reloading; bit-identical: {identical}")
    print(result.stage_table())
    print(result.layer_table())
    sizes = _sizes(result, float_bytes)
    print(_md([{"format": k, **v} for k, v in sizes.items()]))
    entropy = _entropy(result)
    print(_md(entropy))
    encodings = _encodings(name, teacher, splits, out)
    print(_md([{"encoding": k, **v} for k, v in encodings.items()]))
    return {"summary": summary, "stages": result.stages, "layers": result.layers, "sizes": sizes,
            "index_entropy": entropy, "encodings": encodings, "retraining": result.history}


def main(out_dir: Path) -> dict[str, Any]:
    out = Path(out_dir) / "deep_compression"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    results = {name: run_model(name, out) for name in CONFIGS}
    (out / "summary.json").write_text(json.dumps({k: v["summary"] for k, v in results.items()}, indent=2))
    return results


if __name__ == "__main__":
    main(Path(__file__).parent / "results")
