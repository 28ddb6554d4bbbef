"""The ``torchslim`` command: parses arguments and calls the library. Nothing else lives here.

Examples::

    torchslim demo
    torchslim run recipes/resnet_prune_kd_int8.yaml --out out/resnet --set stages.1.epochs=1
    torchslim validate recipes/lenet300_deep_compression.yaml
    torchslim auto --model zoo:resnet-mnist --max-accuracy-drop 1.0 --objective latency
    torchslim report out/resnet/result.json
    torchslim measure --model zoo:lenet5-mnist --runtime onnxruntime
    torchslim measure --model mypkg.models:build --weights w.safetensors --input-shape 1,3,32,32
    torchslim zoo list
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console

import torchslim
from torchslim import data, zoo
from torchslim.core.errors import InputError, TorchslimError
from torchslim.core.io import atomic_write
from torchslim.measure import compare, evaluate, measure
from torchslim.measure.plots import plot_layers
from torchslim.recipe import Recipe, run, run_demo
from torchslim.recipe.auto_result import AutoResult
from torchslim.recipe.result import RunResult
from torchslim.recipe.search import TECHNIQUES, auto
from torchslim.report import write_report
from torchslim.zoo.user import load_user_model

RUNTIMES = ("torch", "onnxruntime")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchslim", description="Make trained PyTorch models smaller and faster, measured on the real runtime.")
    p.add_argument("--version", action="version", version=f"torchslim {torchslim.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="the default recipe on LeNet-5 / MNIST-5k: prune, distil, int8, export, report")
    d.add_argument("--threads", type=int, default=1, help="threads for latency (default 1)")
    d.add_argument("--out", default="out/demo", help="folder for model.onnx, the reports and the state (default out/demo)")
    d.add_argument("--retrain", action="store_true", help="retrain the teacher even if cached")
    d.add_argument("--resume", action="store_true", help="reuse the stages a previous demo run finished")

    r = sub.add_parser("run", help="run a YAML recipe: stages in order, measured and guarded by the budget")
    r.add_argument("recipe", help="the recipe file (see recipes/)")
    r.add_argument("--out", help="output folder (default: the recipe's output.dir, else out/<name>)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set stages.1.epochs=1 (repeatable; VALUE is YAML)")
    r.add_argument("--fresh", action="store_true", help="ignore finished stages saved by an earlier run")

    v = sub.add_parser("validate", help="check a recipe (keys, types, files) without running it")
    v.add_argument("recipe", help="the recipe file")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="as for run")

    a = sub.add_parser("auto", help="accuracy-aware auto-compression: search prune / low-rank / int8 on ONNX Runtime")
    a.add_argument("--model", required=True, help="zoo:<name>, hf:<folder>, or package.module:factory (with --weights)")
    a.add_argument("--weights", help="weights for a factory model")
    a.add_argument("--data", help="bundled data set (default: the zoo model's own)")
    a.add_argument("--max-accuracy-drop", type=float, default=0.5, help="budget in points of validation accuracy (default 0.5)")
    a.add_argument("--objective", choices=("latency", "size"), default="latency", help="what to minimise (default latency)")
    a.add_argument("--techniques", default=",".join(TECHNIQUES), help=f"comma-separated subset of {','.join(TECHNIQUES)}")
    a.add_argument("--prune-levels", default="0.3,0.5,0.7", help="structured pruning levels to try (default 0.3,0.5,0.7)")
    a.add_argument("--epochs", type=int, default=3, help="distillation epochs to recover each candidate (default 3)")
    a.add_argument("--lr", type=float, default=1e-3, help="learning rate of that recovery (default 0.001)")
    a.add_argument("--threads", type=int, default=1, help="threads for latency (default 1)")
    a.add_argument("--out", default="out/auto", help="output folder (default out/auto)")

    rp = sub.add_parser("report", help="write the HTML/markdown/JSON report of a result.json again")
    rp.add_argument("result", help="a result.json written by run or auto")
    rp.add_argument("--out", help="folder for the reports (default: beside result.json)")

    m = sub.add_parser("measure", help="measure a model: parameters, bytes, MACs, latency, memory, accuracy, energy")
    m.add_argument("--model", required=True, help="zoo:<name> (trained teacher) or package.module:factory")
    m.add_argument("--weights", help="weights for a factory model (.safetensors, or .pt loaded weights-only)")
    m.add_argument("--input-shape", help="example input shape for a factory model, e.g. 1,3,32,32")
    m.add_argument("--data", help="bundled data set for accuracy (default: the zoo model's own)")
    m.add_argument("--runtime", choices=(*RUNTIMES, "both"), default="torch", help="where to run (default torch)")
    m.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    m.add_argument("--batch-size", type=int, default=1, help="example batch size for latency and MACs (default 1)")
    m.add_argument("--layers", action="store_true", help="also print the per-layer MACs table")
    m.add_argument("--json", dest="json_path", help="write the metrics as JSON here")
    m.add_argument("--plot", help="write a per-layer MACs/params plot (PNG) here")

    z = sub.add_parser("zoo", help="reference models and their trained teachers")
    zs = z.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    zs.add_parser("list", help="list the reference models")
    zt = zs.add_parser("train", help="train (or load from cache) a teacher and print its test accuracy")
    zt.add_argument("name", help="zoo model name (see `torchslim zoo list`)")
    zt.add_argument("--retrain", action="store_true", help="ignore the cache")

    ds = sub.add_parser("data", help="bundled real data sets")
    ds.add_argument("action", choices=("list",), help="list the data sets")
    return p


def _load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor, str | None]:
    """(model, example inputs, data set name) from --model/--weights/--input-shape."""
    if args.model.startswith("zoo:"):
        name = args.model[4:]
        entry = zoo.info(name)
        return zoo.teacher(name), zoo.example_inputs(name, batch_size=args.batch_size), entry.dataset
    if not args.input_shape:
        raise InputError("--input-shape is required for a factory model (e.g. --input-shape 1,3,32,32)")
    try:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    except ValueError:
        raise InputError(f"--input-shape {args.input_shape!r}: expected integers separated by commas") from None
    return load_user_model(args.model, args.weights).eval(), torch.randn(*shape), None


def _measure(args: argparse.Namespace, console: Console) -> None:
    model, x, dataset = _load_model(args)
    dataset = args.data or dataset
    test = data.load(dataset).test if dataset else None
    runtimes = RUNTIMES if args.runtime == "both" else (args.runtime,)
    results = {rt: measure(model, x, data=test, runtime=rt, threads=args.threads, name=args.model) for rt in runtimes}
    for m in results.values():
        console.print(m.table())
        if args.layers:
            console.print(m.layers_table())
    if len(results) > 1:
        compare(results, console=console)
    if args.json_path:
        with atomic_write(args.json_path) as tmp:
            tmp.write_text(json.dumps({k: v.to_dict() for k, v in results.items()}, indent=2))
    if args.plot:
        plot_layers(next(iter(results.values())), Path(args.plot))


def _overrides(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. stages.1.epochs=1")
        out[key] = yaml.safe_load(value)
    return out


def _auto(args: argparse.Namespace, console: Console) -> None:
    try:
        levels = tuple(float(v) for v in args.prune_levels.split(",") if v)
    except ValueError:
        raise InputError(f"--prune-levels {args.prune_levels!r}: expected numbers separated by commas") from None
    auto(args.model, weights=args.weights, data=args.data, max_accuracy_drop=args.max_accuracy_drop, objective=args.objective,
         techniques=tuple(t for t in args.techniques.split(",") if t), prune_levels=levels,
         recovery_epochs=args.epochs, lr=args.lr, threads=args.threads, out_dir=args.out, console=console)


def _report(args: argparse.Namespace, console: Console) -> None:
    path = Path(args.result)
    try:
        data_ = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable result.json ({e})") from None
    result = AutoResult.from_dict(data_) if data_.get("kind") == "auto" else RunResult.from_dict(data_)
    for fmt, written in write_report(result, args.out or str(path.parent)).items():
        console.print(f"wrote {fmt}: {written}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchslim`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            run_demo(threads=args.threads, out_dir=args.out, retrain=args.retrain, resume=args.resume, console=console)
        elif args.command == "run":
            run(args.recipe, out_dir=args.out, overrides=_overrides(args.overrides), resume=not args.fresh, console=console)
        elif args.command == "validate":
            rec = Recipe.load(args.recipe, overrides=_overrides(args.overrides))
            console.print(f"{args.recipe}: valid - {len(rec.stages)} stage(s): " + ", ".join(s.label for s in rec.stages))
        elif args.command == "auto":
            _auto(args, console)
        elif args.command == "report":
            _report(args, console)
        elif args.command == "measure":
            _measure(args, console)
        elif args.command == "zoo" and args.zoo_command == "list":
            for name in zoo.names():
                e = zoo.info(name)
                console.print(f"{name:20s} {e.dataset:9s} documented test accuracy >= {e.documented_accuracy:.1%}  {e.description}")
        elif args.command == "zoo":
            model = zoo.teacher(args.name, retrain=args.retrain)
            acc = evaluate(model, data.load(zoo.info(args.name).dataset).test)
            console.print(f"{args.name}: test accuracy {acc:.2%}")
        elif args.command == "data":
            for name in data.names():
                console.print(name)
    except TorchslimError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
