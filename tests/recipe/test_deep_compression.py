"""The Deep Compression pipeline on the LeNet-300-100 teacher: sizes shrink stage by stage,
the .slim file reloads bit-identically, accuracy holds, coded index bits sit at the entropy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchslim import data, zoo
from torchslim.core.config import config_from_dict
from torchslim.measure import evaluate
from torchslim.recipe.artifact import load
from torchslim.recipe.deep_compression import DeepCompression, deep_compression


def test_lenet300_pipeline(tmp_path: Path) -> None:
    teacher = zoo.teacher("lenet300-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=64, seed=0, shift=1)
    config = DeepCompression(sparsity=0.9, steps=2, retrain_epochs=1, share_epochs=1, bits=4)
    assert config_from_dict(config.to_dict()) == config
    result = deep_compression(teacher, config, train_data=splits.train, val_data=splits.val, path=tmp_path / "l300.slim")

    sizes = [s["bytes"] for s in result.stages]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 4
    assert result.stages[-1]["bytes"] == (tmp_path / "l300.slim").stat().st_size
    assert result.stages[-1]["ratio"] > 20
    kept = sum(r["kept"] * r["weights"] for r in result.layers) / sum(r["weights"] for r in result.layers)
    assert abs(kept - 0.1) < 0.01
    for row in result.layers:
        assert row["weight_bits_pq"] <= 4
        assert row["weight_bits_pqh"] <= row["entropy_bits_per_index"] * 1.03 + 0.05  # ANS: at the entropy
    back = load(tmp_path / "l300.slim")
    x = torch.cat([x for x, _ in splits.test])
    with torch.no_grad():
        assert torch.equal(back(x), result.model(x))
    assert evaluate(back, splits.test) > evaluate(teacher, splits.test) - 0.02
    assert "| fc1 |" in result.layer_table() and "entropy coded" in result.stage_table()


def test_bad_sharing_bits_fail_before_any_work() -> None:
    with pytest.raises(ValueError, match="1 to 8 index bits, got 12"):
        DeepCompression(bits=12)
    with pytest.raises(ValueError, match=r"layer_bits\['fc1'\] must be 1 to 8, got 0"):
        DeepCompression(layer_bits={"fc1": 0})
