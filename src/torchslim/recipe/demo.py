"""The default job (`make demo`): the LeNet-5 teacher on the bundled MNIST-5k, measured on
torch and on ONNX Runtime, with a before/after table. Later stages (pruning, distillation,
int8) join this pipeline as they land.

Example:
    >>> from torchslim.recipe.demo import run_demo
    >>> results = run_demo(out_dir="/tmp/torchslim-demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from torchslim import data, zoo
from torchslim.core.io import atomic_write
from torchslim.measure import Metrics, compare, measure
from torchslim.measure.plots import plot_compare, plot_layers

DEMO_MODEL = "lenet5-mnist"


def run_demo(
    *,
    threads: int = 1,
    out_dir: str | Path = "out/demo",
    retrain: bool = False,
    console: Console | None = None,
) -> dict[str, Metrics]:
    """Train (or load the cached) LeNet-5 teacher, measure it on both runtimes, print the
    table, and write ``metrics.json`` and two plots under ``out_dir``."""
    console = console or Console()
    start = time.perf_counter()
    entry = zoo.info(DEMO_MODEL)
    console.rule(f"torchslim demo: {DEMO_MODEL} on {entry.dataset}")
    model = zoo.teacher(DEMO_MODEL, retrain=retrain)
    splits = data.load(entry.dataset)
    x = zoo.example_inputs(DEMO_MODEL, batch_size=1)  # (1, 1, 28, 28)
    results = {}
    for label, runtime in (("torch fp32", "torch"), ("onnxruntime fp32", "onnxruntime")):
        console.print(f"measuring on {runtime} ({threads} thread(s)) ...")
        results[label] = measure(model, x, data=splits.test, runtime=runtime, threads=threads, name=label)
    console.print(f"teacher test accuracy: {results['torch fp32'].accuracy:.2%} on {len(splits.test.dataset)} test images")
    compare(results, console=console)
    out = Path(out_dir)
    with atomic_write(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps({k: m.to_dict() for k, m in results.items()}, indent=2))
    plot_compare(results, out / "compare.png")
    plot_layers(results["torch fp32"], out / "layers.png")
    console.print(f"wrote {out / 'metrics.json'}, {out / 'compare.png'}, {out / 'layers.png'} "
                  f"in {time.perf_counter() - start:.0f} s")
    return results
