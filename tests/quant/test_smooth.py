"""SmoothQuant and bias correction: the float function is unchanged by smoothing, siblings share
one scale (one Mul in ONNX), and each helps where it should; exported files match simulation."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.quant import Int8Dynamic, Int8Static, QuantModule, quantize
from torchslim.quant.calibrate import wrap_layers
from torchslim.quant.configs import LINEAR_ONLY
from torchslim.quant.smooth import smooth_layers


class QKV(nn.Module):
    """Three projections of one input (as attention has), then a mixer."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 32)
        self.out = nn.Linear(96, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 32)
        return self.out(torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1))  # (B, T, 8)


def _outlier_inputs(n: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(16, 10, 32, generator=g)
        x[..., :3] *= 40.0  # a few huge channels, as in transformer activations
        out.append(x)
    return out


def test_smoothing_keeps_the_float_function_and_groups_siblings() -> None:
    torch.manual_seed(0)
    net = QKV().eval()
    calib = _outlier_inputs()
    wrapped = QKV().eval()
    wrapped.load_state_dict(net.state_dict())
    wrap_layers(wrapped, LINEAR_ONLY, (nn.Linear,), mode="static")
    note = smooth_layers(wrapped, calib, 10_000, alpha=0.5)
    assert "4 Linear layer(s) in 2 group(s)" in note
    qms = {n: m for n, m in wrapped.named_modules() if isinstance(m, QuantModule)}
    assert qms["q"].smooth_key == qms["k"].smooth_key == qms["v"].smooth_key == "q"
    assert torch.equal(qms["q"].smooth_inv, qms["v"].smooth_inv)
    x = calib[0]
    torch.testing.assert_close(wrapped(x), net(x), atol=1e-4, rtol=1e-4)  # uncalibrated: float arithmetic


@pytest.mark.parametrize("make", [
    lambda s: Int8Static(target=LINEAR_ONLY, calibration_samples=128, smooth=s),
    lambda s: Int8Dynamic(smooth=s),
])
def test_smoothquant_lowers_error_and_exports_one_mul_per_input(make, tmp_path: Path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    net = QKV().eval()
    calib, test = _outlier_inputs(), _outlier_inputs(2, seed=1)
    plain = quantize(net, make(None), calibration=calib)
    smooth = quantize(net, make(0.8), calibration=calib)
    with torch.inference_mode():
        ref = torch.cat([net(x) for x in test])
        err_plain = (torch.cat([plain(x) for x in test]) - ref).pow(2).mean()
        err_smooth = (torch.cat([smooth(x) for x in test]) - ref).pow(2).mean()
    assert err_smooth < 0.7 * err_plain, (float(err_smooth), float(err_plain))
    path = export_onnx(smooth, tmp_path / "smooth.onnx", test[0][:1])
    muls = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Mul"]
    assert len(muls) == 2, [n.input for n in muls]  # q/k/v share one, out has its own
    x = test[1]
    torch.testing.assert_close(OrtModel(path)(x), smooth(x), atol=0.05 * float(ref.abs().max()), rtol=0)


def test_bias_correction_removes_the_mean_shift_of_coarse_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=16),
                        nn.ReLU(), nn.Conv2d(16, 8, 1)).eval()
    with torch.no_grad():  # one channel with big weights makes one per-tensor scale coarse for all
        net[2].weight[0].mul_(30.0)
    calib = [torch.rand(16, 3, 10, 10) + 0.5 for _ in range(8)]
    test = torch.rand(64, 3, 10, 10) + 0.5
    plain = quantize(net, Int8Static(per_channel=False), calibration=calib)
    fixed = quantize(net, Int8Static(per_channel=False, bias_correction=True), calibration=calib)
    with torch.inference_mode():
        ref = net(test)
        shift_plain = (plain(test) - ref).mean(dim=(0, 2, 3)).abs().mean()  # per-channel mean error
        shift_fixed = (fixed(test) - ref).mean(dim=(0, 2, 3)).abs().mean()
    assert shift_fixed < 0.5 * shift_plain, (float(shift_fixed), float(shift_plain))
    path = export_onnx(fixed, tmp_path / "bc.onnx", test[:1])
    torch.testing.assert_close(OrtModel(path)(test), fixed(test), atol=0.02 * float(ref.abs().max()), rtol=0)


def test_smooth_strength_must_be_in_open_unit_interval() -> None:
    with pytest.raises(ValueError, match="smooth"):
        Int8Static(smooth=1.5)
