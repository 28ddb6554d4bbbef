"""Every zoo model builds deterministically and maps its example inputs to (B, classes)."""

from __future__ import annotations

import pytest
import torch

from torchslim import data, zoo
from torchslim.core.errors import UnknownNameError
from torchslim.zoo.transformer import Attention, TransformerMNIST

NAMES = zoo.names()


def test_names() -> None:
    assert NAMES == [
        "cnn1d-mnist1d", "lenet300-mnist", "lenet5-mnist", "mlp-mnist1d", "mobilenet-mnist",
        "resnet-mnist", "transformer-mnist",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes(name: str) -> None:
    entry = zoo.info(name)
    model = zoo.model(name).eval()
    for batch in (1, 3):
        x = zoo.example_inputs(name, batch_size=batch)
        assert x.shape == (batch, *entry.input_shape)
        assert model(x).shape == (batch, entry.num_classes)


@pytest.mark.parametrize("name", NAMES)
def test_entry_fits_its_data_set(name: str) -> None:
    entry = zoo.info(name)
    spec = data.info(entry.dataset)
    assert (entry.input_shape, entry.num_classes) == (spec.input_shape, spec.num_classes)
    assert 0.0 < entry.documented_accuracy < 1.0 and entry.recipe.epochs > 0
    assert entry.description


def test_model_init_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, b = zoo.model("resnet-mnist"), zoo.model("resnet-mnist")
    assert torch.equal(torch.rand(1), expected)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    c = zoo.model("resnet-mnist", seed=1)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_transformer_has_explicit_heads() -> None:
    model = TransformerMNIST()
    attn = [m for m in model.modules() if isinstance(m, Attention)]
    assert len(attn) == 2
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    for a in attn:
        assert (a.num_heads, a.head_dim) == (4, 16)
        assert a.q.out_features == a.k.out_features == a.v.out_features == a.out.in_features == 64
    # forward reads num_heads: a model with 3 heads (as after head pruning) still runs
    small = TransformerMNIST(num_heads=3)
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_name() -> None:
    with pytest.raises(UnknownNameError, match="known: cnn1d-mnist1d, lenet300-mnist"):
        zoo.info("vgg16")
    with pytest.raises(UnknownNameError):
        zoo.teacher("vgg16")
    with pytest.raises(UnknownNameError):
        zoo.model("vgg16")
