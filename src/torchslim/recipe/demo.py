"""The default job (`make demo`, `torchslim demo`): the default recipe on the LeNet-5 / MNIST-5k
teacher - structured pruning, distillation fine-tuning, static int8 (kept only where ONNX Runtime
runs it faster), export - measured on ONNX Runtime after every stage, with the before/after
table. ``recipes/lenet5_demo.yaml`` is the
same recipe as a file.

Example:
    >>> from torchslim.recipe.demo import run_demo
    >>> result = run_demo(out_dir="/tmp/torchslim-demo")  # doctest: +SKIP
    >>> result.budget_met  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from torchslim import zoo
from torchslim.recipe.result import RunResult
from torchslim.recipe.runner import run
from torchslim.recipe.schema import Recipe

DEMO_MODEL = "lenet5-mnist"
DEFAULT_RECIPE = """\
name: lenet5-demo
description: LeNet-5 / MNIST-5k - structured pruning, distillation fine-tuning, int8 static, export
model: {zoo: lenet5-mnist}
data: {name: mnist_5k, batch_size: 64, shift: 2}
budget: {max_accuracy_drop: 1.0}
measure: {runtime: onnxruntime, threads: 1, batch_size: 1}
stages:
  - {type: structured_prune, sparsity: 0.4, importance: l2, guard: false}
  - {type: finetune, epochs: 8, lr: 0.003, teacher: original}
  - {type: int8_static, observer: percentile, calibration_samples: 512, gate: latency}
output: {onnx: true, slim: true, report: [html, markdown, json]}
"""


def default_recipe(threads: int = 1) -> Recipe:
    """The demo's recipe (``threads`` for the measurements).

    Example:
        >>> [s.type for s in default_recipe().stages]
        ['structured_prune', 'finetune', 'int8_static']
    """
    r = Recipe.from_yaml(DEFAULT_RECIPE, source="default recipe")
    if threads != 1:
        r = Recipe.from_dict({**r.to_dict(), "measure": {**r.to_dict()["measure"], "threads": threads}})
    return r


def run_demo(*, threads: int = 1, out_dir: str | Path = "out/demo", retrain: bool = False, resume: bool = False,
             console: Console | None = None) -> RunResult:
    """Run the default recipe into ``out_dir`` (model.onnx, report.html/md/json, result.json)
    and print the stage table and the before/after table; ``retrain`` retrains the teacher."""
    if retrain:
        zoo.teacher(DEMO_MODEL, retrain=True)
    return run(default_recipe(threads), out_dir=out_dir, resume=resume, console=console or Console())
