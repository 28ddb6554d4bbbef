"""LeNet-300-100 on MNIST-5k: 90% global magnitude sparsity + a short fine-tune keeps accuracy."""

from __future__ import annotations

import pytest

from torchslim import data
from torchslim.measure import evaluate
from torchslim.measure.params import count_params
from torchslim.prune.api import prune
from torchslim.prune.unstructured import MagnitudePrune, make_permanent


@pytest.mark.slow
def test_lenet300_at_90_percent_global_sparsity_stays_within_1_5_points(unstructured_lenet300) -> None:
    teacher, splits, teacher_acc = unstructured_lenet300
    train = data.load("mnist_5k", batch_size=64, seed=0, shift=1).train  # the teacher's augmentation
    pruned = prune(teacher, MagnitudePrune(sparsity=0.9, scope="global"), train_data=train, epochs=3,
                   lr=3e-3, progress=False)
    plain = make_permanent(pruned).eval()
    total, nonzero = count_params(plain)
    weights = sum(m.weight.numel() for m in (plain.fc1, plain.fc2, plain.fc3))
    assert total - nonzero == round(0.9 * weights)  # biases are not pruned
    acc = evaluate(plain, splits.test)
    assert acc >= teacher_acc - 0.015, f"pruned {acc:.3f} vs teacher {teacher_acc:.3f}"
