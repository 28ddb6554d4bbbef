"""The split and augmentation helpers behind data.load."""

from __future__ import annotations

import numpy as np
import torch

from torchslim.data.augment import RandomShift, shift_batch
from torchslim.data.splits import stratified_split


def test_stratified_split_is_exact_disjoint_and_fixed() -> None:
    y = np.repeat(np.arange(3), [7, 11, 13])  # 31 samples, unequal classes
    tr, va, te = stratified_split(y, val=0.2, test=0.3, seed=0)
    assert (len(va), len(te)) == (round(31 * 0.2), round(31 * 0.3))
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(31))
    for c in range(3):  # every class in every split
        assert all((y[idx] == c).any() for idx in (tr, va, te))
    again = stratified_split(y, val=0.2, test=0.3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))


def test_shift_batch_moves_within_range() -> None:
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    out = shift_batch(x, 2, torch.Generator().manual_seed(0))
    pos = out.reshape(64, -1).argmax(dim=1)
    rows, cols = pos // 9, pos % 9
    assert float(out.sum()) == 64.0
    assert rows.min() == 2 and rows.max() == 6 and cols.min() == 2 and cols.max() == 6
    one_d = shift_batch(torch.ones(4, 2, 10), 3, torch.Generator().manual_seed(0))
    assert one_d.shape == (4, 2, 10)
    assert torch.equal(shift_batch(x, 0, torch.Generator()), x)


def test_random_shift_collate_restores_flat_layout() -> None:
    collate = RandomShift(1, (1, 4, 4), torch.Generator().manual_seed(0))
    items = [(torch.arange(16.0), torch.tensor(i)) for i in range(3)]
    x, y = collate(items)
    assert x.shape == (3, 16) and y.tolist() == [0, 1, 2]
