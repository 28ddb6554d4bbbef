"""What a recipe runs on: the model, example inputs, train/val/test data and the metric.

Example:
    >>> from torchslim.recipe.schema import Recipe
    >>> from torchslim.recipe.sources import build_workload
    >>> r = Recipe.from_yaml("model: {zoo: lenet5-mnist, trained: false}\\n"
    ...                      "data: {val_samples: 100}\\nstages: [{type: int8_static}]")
    >>> w = build_workload(r)
    >>> w.example_inputs[0].shape, len(w.val.dataset), w.metric_name
    (torch.Size([1, 1, 28, 28]), 100, 'top1')
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from torchslim import data, zoo
from torchslim.core.errors import ConfigError
from torchslim.core.inputs import as_tuple, batch_of
from torchslim.measure.accuracy import BatchMetric
from torchslim.recipe.schema import BUNDLED_HF, DataSpec, ModelSpec, Recipe, dataset_of, resolve
from torchslim.recipe.text import cosine, load_hf, sentences, text_loader
from torchslim.zoo.minilm import minilm_folder
from torchslim.zoo.user import load_user_model


@dataclass
class Workload:
    """The model to compress (eval mode) and everything measured against it."""

    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    train: DataLoader
    val: DataLoader
    test: DataLoader
    metric_name: str
    description: str

    @property
    def metric(self) -> BatchMetric | None:
        """The batch metric (None: top-1 accuracy, the default everywhere)."""
        return cosine if self.metric_name == "cosine" else None


def _subset(loader: DataLoader, n: int | None, seed: int, shuffle: bool) -> DataLoader:
    if n is None or n >= len(loader.dataset):  # type: ignore[arg-type]
        return loader
    idx = torch.randperm(len(loader.dataset), generator=torch.Generator().manual_seed(seed))[:n]  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(Subset(loader.dataset, idx.tolist()), batch_size=loader.batch_size, shuffle=shuffle,
                      generator=gen if shuffle else None, collate_fn=loader.collate_fn)


def _splits_from_factory(spec: str) -> tuple[Any, Any, Any]:
    module_name, _, attr = spec.partition(":")
    out = getattr(importlib.import_module(module_name), attr)()  # the user's factory, named by them
    if isinstance(out, dict):
        return out["train"], out["val"], out["test"]
    if isinstance(out, (tuple, list)) and len(out) == 3:
        return tuple(out)  # type: ignore[return-value]
    if all(hasattr(out, k) for k in ("train", "val", "test")):
        return out.train, out.val, out.test
    raise ConfigError(f"data.factory {spec!r} must return train/val/test loaders (an object with those "
                      f"attributes, a dict or a 3-tuple); got {type(out).__name__}")


def _example(loader: Iterable[Any], batch_size: int) -> tuple[torch.Tensor, ...]:
    inputs, _ = batch_of(next(iter(loader)))
    return tuple(t[:batch_size].clone() for t in inputs)


def _text_workload(m: ModelSpec, d: DataSpec, batch_size: int, base_dir: str) -> Workload:
    folder = resolve(m.hf, base_dir) if m.hf else minilm_folder()
    model, tok = load_hf(folder)
    n_train, n_val, n_test = d.train_samples or 256, d.val_samples or 128, d.test_samples or 256
    make = {"max_length": d.max_length, "batch_size": d.batch_size}
    train = text_loader(model, tok, sentences(n_train, 0), shuffle=True, seed=d.seed, **make)
    val = text_loader(model, tok, sentences(n_val, n_train), **make)
    test = text_loader(model, tok, sentences(n_test, n_train + n_val), **make)
    x = _example(test, batch_size)
    name = "all-MiniLM-L6-v2" if m.zoo == BUNDLED_HF else str(folder)
    return Workload(model, x, train, val, test, "cosine", f"{name} on {n_test} sentences (cosine to the original)")


def build_workload(r: Recipe) -> Workload:
    """Load the recipe's model (trained teacher, HF folder or factory + weights) and data."""
    return workload(r.model, r.data, batch_size=r.measure.batch_size, base_dir=r.base_dir, metric=r.metric)


def workload(m: ModelSpec, d: DataSpec, *, batch_size: int = 1, base_dir: str = ".", metric: str | None = None) -> Workload:
    """Load a model spec and data spec (see :class:`~torchslim.recipe.schema.ModelSpec`);
    ``batch_size`` is the example inputs' batch (the one measured)."""
    if m.is_text:
        return _text_workload(m, d, batch_size, base_dir)
    if m.zoo:
        model = zoo.teacher(m.zoo) if m.trained else zoo.model(m.zoo)
    else:
        model = load_user_model(str(m.factory), resolve(m.weights, base_dir) if m.weights else None)
    dataset = dataset_of(m, d)
    if dataset:
        splits = data.load(dataset, batch_size=d.batch_size, seed=d.seed, shift=d.shift)
        train, val, test = splits.train, splits.val, splits.test
        what = dataset
    else:
        train, val, test = _splits_from_factory(str(d.factory))
        what = f"data from {d.factory}"
    train = _subset(train, d.train_samples, d.seed, shuffle=True)
    val = _subset(val, d.val_samples, d.seed + 1, shuffle=False)
    test = _subset(test, d.test_samples, d.seed + 2, shuffle=False)
    x = (data.example_batch(dataset, batch_size),) if dataset else _example(test, batch_size)
    return Workload(model.eval(), as_tuple(x), train, val, test, metric or "top1", f"{m.zoo or m.factory} on {what}")
