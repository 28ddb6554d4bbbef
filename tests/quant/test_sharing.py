"""Weight sharing: k-means codebooks per layer, pruned weights kept at zero, gradients summed
per centroid, centroid fine-tuning through train.fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torchslim as slim
from torchslim import data, zoo
from torchslim.core.config import config_from_yaml
from torchslim.core.errors import ConfigError
from torchslim.quant.report import report_of
from torchslim.quant.sharing import SharedWeight, WeightSharing, kmeans_1d


@pytest.fixture(scope="module")
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = data.load("mnist_5k", batch_size=128, seed=0).train
    return [b for _, b in zip(range(6), loader, strict=False)]


def test_codebooks_replace_weights_and_keep_pruned_zeros() -> None:
    sparse = slim.prune(zoo.model("lenet5-mnist"), slim.MagnitudePrune(sparsity=0.8))  # masks still attached
    shared = slim.quantize(sparse, WeightSharing(bits=3, conv_bits=5, layer_bits={"fc3": 2}))
    for name, bits in {"conv1": 5, "conv2": 5, "fc1": 3, "fc2": 3, "fc3": 2}.items():
        layer = getattr(shared, name)
        assert isinstance(layer, SharedWeight) and len(layer.codebook) <= 2**bits
        w, ref = layer.weight, getattr(sparse, name).weight
        assert torch.equal(w == 0, ref == 0)  # exactly the pruned weights are zero
        assert set(w[w != 0].tolist()) <= set(layer.codebook.tolist())
        assert (w - ref).abs().max() < (ref.max() - ref.min()) / 2**bits  # each weight near its centroid
    report = report_of(shared)
    assert [r["layer"] for r in report.table] == ["conv1", "conv2", "fc1", "fc2", "fc3"]


def test_linear_init_keeps_large_weights_better_than_density() -> None:
    w = torch.cat([torch.randn(5000) * 0.02, torch.tensor([0.5, -0.6])])
    lin, dens = kmeans_1d(w, 16, init="linear"), kmeans_1d(w, 16, init="density")
    assert lin.max() > 0.3 and lin.min() < -0.3  # Han et al.: linear init gives the rare large weights a centroid
    assert torch.all(lin[1:] >= lin[:-1]) and len(lin) <= 16
    assert dens.abs().max() <= lin.abs().max()


def test_gradients_are_summed_per_centroid() -> None:
    torch.manual_seed(0)
    layer = slim.quantize(torch.nn.Sequential(torch.nn.Linear(16, 8)), WeightSharing(bits=2))[0]
    x = torch.randn(4, 16)
    layer(x).pow(2).sum().backward()
    dense = layer.weight.detach().clone().requires_grad_(True)
    F.linear(x, dense, layer.module.bias).pow(2).sum().backward()
    idx = layer.indices.long()
    expected = torch.stack([dense.grad[idx == k + 1].sum() for k in range(len(layer.codebook))])
    assert torch.allclose(layer.codebook.grad, expected, atol=1e-5)


def test_centroid_fine_tuning_lowers_the_loss(batches: list) -> None:
    base = slim.prune(zoo.model("lenet300-mnist"), slim.MagnitudePrune(sparsity=0.5))
    slim.fit(base, batches, epochs=2, lr=3e-3, progress=False)
    coarse = slim.quantize(base, WeightSharing(bits=2))
    tuned = slim.quantize(base, WeightSharing(bits=2), train_data=batches, epochs=2, lr=3e-3, progress=False)

    def loss(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return sum(float(F.cross_entropy(m(x), y)) for x, y in batches)

    assert loss(tuned) < loss(coarse)
    assert torch.equal(tuned.fc1.indices, coarse.fc1.indices)  # assignments fixed, centroids moved
    assert not torch.equal(tuned.fc1.codebook, coarse.fc1.codebook)
    assert torch.equal(tuned.fc1.weight == 0, base.fc1.weight == 0)


def test_config_validation_and_yaml() -> None:
    cfg = WeightSharing(bits=4, conv_bits=8, layer_bits={"fc3": 6})
    assert config_from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ValueError, match="1 to 8"):
        WeightSharing(bits=9)
    with pytest.raises(ConfigError, match="unknown option"):
        slim.quantize(zoo.model("lenet300-mnist"), cfg, lr_typo=1.0)
    with pytest.raises(ConfigError, match="need train_data"):
        slim.quantize(zoo.model("lenet300-mnist"), cfg, epochs=2)
