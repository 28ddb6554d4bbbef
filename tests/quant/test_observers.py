"""Observers give known scales on known tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchslim.core.errors import ConfigError, InputError
from torchslim.quant.observers import kl_threshold, make_observer, qparams


def test_minmax_uint8_and_symmetric() -> None:
    obs = make_observer("minmax")
    obs.update(torch.tensor([-1.0, 0.0, 2.0]))
    obs.update(torch.tensor([3.0]))
    scale, zp = obs.qparams()
    assert scale == pytest.approx(4 / 255) and zp == 64
    assert obs.qparams(-127, 127, symmetric=True) == (pytest.approx(3 / 127), 0)


def test_range_always_holds_zero() -> None:
    assert qparams(2.0, 4.0) == (pytest.approx(4 / 255), 0)  # all-positive: lo widened to 0
    assert qparams(-4.0, -2.0) == (pytest.approx(4 / 255), 255)


def test_percentile_clips_outlier() -> None:
    obs = make_observer("percentile")
    x = torch.cat([torch.linspace(0, 1, 100_001), torch.tensor([1000.0])])
    obs.update(x)
    lo, hi = obs.range()
    assert hi == pytest.approx(1.0, abs=1e-3) and lo == pytest.approx(0.0, abs=1e-3)


def test_mse_clips_heavy_tail_but_not_uniform() -> None:
    uniform = make_observer("mse")
    uniform.update(torch.linspace(-1, 1, 10_001))
    assert uniform.range()[1] == pytest.approx(1.0, abs=0.02)
    tail = make_observer("mse")
    g = torch.Generator().manual_seed(0)
    tail.update(torch.cat([torch.randn(100_000, generator=g), torch.tensor([60.0])]))
    assert tail.range()[1] < 20.0


def test_entropy_threshold_on_gaussian() -> None:
    rng = np.random.default_rng(0)
    h, e = np.histogram(np.abs(rng.normal(size=200_000)), bins=2048)
    t = kl_threshold(h, e)
    assert 2.0 < t < float(e[-1])
    obs = make_observer("entropy")
    obs.update(torch.from_numpy(rng.normal(size=200_000).astype(np.float32)))
    lo, hi = obs.range()
    assert math.isclose(-lo, hi) and hi < 5.0


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="unknown observer 'median'"):
        make_observer("median")
    with pytest.raises(InputError, match="NaN"):
        make_observer("minmax").update(torch.tensor([1.0, float("nan")]))
    with pytest.raises(InputError, match="saw no data"):
        make_observer("minmax").qparams()
