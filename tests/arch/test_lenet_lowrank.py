"""LeNet-300-100 on MNIST-5k factorized to at most 1/3 of its parameters, then fine-tuned."""

from __future__ import annotations

import pytest
import torch

from torchslim import data, zoo
from torchslim.arch import LowRank, factorize
from torchslim.measure import evaluate, measure
from torchslim.train import fit


@pytest.mark.slow
def test_lenet300_at_a_third_of_its_parameters_recovers_with_a_short_fine_tune() -> None:
    teacher = zoo.teacher("lenet300-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=64, seed=0)
    x = zoo.example_inputs("lenet300-mnist", batch_size=1)
    small = factorize(teacher, LowRank(param_ratio=0.3, target={"exclude": ["fc3"]})).eval()
    before, after = measure(teacher, x, latency=False, memory=False), measure(small, x, latency=False, memory=False)
    assert after.params_total <= before.params_total / 3
    assert after.macs <= before.macs / 3
    assert [r.name for r in small.arch_report] == ["fc1", "fc2"]

    teacher_acc = evaluate(teacher, splits.test)
    batch = next(iter(splits.test))[0]
    with torch.no_grad():
        agree = (small(batch).argmax(1) == teacher(batch).argmax(1)).float().mean().item()
    assert agree > 0.9, f"only {agree:.2f} of predictions agree before fine-tuning"

    train = data.load("mnist_5k", batch_size=64, seed=0, shift=1).train  # the teacher's augmentation
    fit(small, train, epochs=2, lr=1e-3, progress=False)
    acc = evaluate(small.eval(), splits.test)
    assert acc >= teacher_acc - 0.02, f"factorized {acc:.3f} vs teacher {teacher_acc:.3f}"
