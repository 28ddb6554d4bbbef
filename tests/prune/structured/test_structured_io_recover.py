"""Save/reload of pruned models without pickle, and recovery by fine-tuning."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from torchslim import data, zoo
from torchslim.core.errors import InputError
from torchslim.measure import evaluate
from torchslim.train import fit

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


@pytest.mark.parametrize("name", ["resnet-mnist", "transformer-mnist", "mobilenet-mnist"])
def test_save_reload_round_trip(name: str, tmp_path: Path) -> None:
    model = zoo.model(name).eval()
    x = zoo.example_inputs(name, batch_size=2)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x).eval()
    path = tmp_path / "small.safetensors"
    P.save_pruned(small, path)
    back = P.load_pruned(path, zoo.model(name))
    assert torch.equal(back(x), small(x))
    if name == "transformer-mnist":
        assert back.blocks[0].attn.num_heads == small.blocks[0].attn.num_heads == 2


def test_load_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    x = zoo.example_inputs("lenet5-mnist", batch_size=1)
    small = P.prune(zoo.model("lenet5-mnist"), P.StructuredPrune(sparsity=0.5), example_inputs=x)
    path = tmp_path / "lenet.safetensors"
    P.save_pruned(small, path)
    with pytest.raises(InputError, match="another architecture"):
        P.load_pruned(path, zoo.model("lenet300-mnist"))
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(InputError, match="no torchslim shape record"):
        P.load_pruned(plain, zoo.model("lenet5-mnist"))


def test_fine_tuning_recovers_accuracy() -> None:
    splits = data.load("mnist_5k", batch_size=64, seed=0)
    model = zoo.model("lenet300-mnist")
    fit(model, splits.train, epochs=4, lr=1e-3, progress=False)
    base = evaluate(model, splits.test)
    x = zoo.example_inputs("lenet300-mnist", batch_size=1)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert small.fc1.out_features == 150
    P.recover(small, splits.train, epochs=2, teacher=model, progress=False)
    assert base > 0.88
    assert evaluate(small, splits.test) >= base - 0.02
