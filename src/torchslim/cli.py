"""The ``torchslim`` command: parses arguments and calls the library. Nothing else lives here.

Examples::

    torchslim demo
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

import torch
from rich.console import Console

import torchslim
from torchslim import data, zoo
from torchslim.core.errors import InputError, TorchslimError
from torchslim.core.io import atomic_write
from torchslim.measure import compare, evaluate, measure
from torchslim.measure.plots import plot_layers
from torchslim.recipe import run_demo
from torchslim.zoo.user import load_user_model

RUNTIMES = ("torch", "onnxruntime")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchslim", description="Make trained PyTorch models smaller and faster, measured on the real runtime.")
    p.add_argument("--version", action="version", version=f"torchslim {torchslim.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="the default job: train/load the LeNet-5 teacher, measure on torch and ONNX Runtime")
    d.add_argument("--threads", type=int, default=1, help="threads for latency (default 1)")
    d.add_argument("--out", default="out/demo", help="folder for metrics.json and plots (default out/demo)")
    d.add_argument("--retrain", action="store_true", help="retrain the teacher even if cached")

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchslim`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            run_demo(threads=args.threads, out_dir=args.out, retrain=args.retrain, console=console)
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
