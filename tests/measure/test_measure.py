"""measure(): accuracy on both runtimes, the record's serialisation, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchslim.core.errors import ConfigError, InputError, UnknownNameError
from torchslim.export.onnx import OrtModel
from torchslim.measure import Metrics, measure


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 8, 4, 4)
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    ).eval()


@pytest.fixture(scope="module")
def digits_like() -> tuple[nn.Module, DataLoader]:
    """70 8x8 single-channel images, labels = the model's own prediction with 30% replaced,
    so accuracy is far from 0 and 1; batch 32 leaves a partial last batch of 6."""
    model = small_cnn()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(70, 1, 8, 8, generator=g)  # (N, 1, 8, 8) pixel intensities in [0, 1)
    with torch.no_grad():
        y = model(x).argmax(1)
    flip = torch.rand(70, generator=g) < 0.3
    y[flip] = (y[flip] + 1) % 10
    return model, DataLoader(TensorDataset(x, y), batch_size=32)


def test_ort_accuracy_equals_torch_accuracy(digits_like, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, loader = digits_like
    x0 = next(iter(loader))[0][:1]
    torch_m = measure(model, x0, data=loader, latency=False, memory=False)
    calls: list[int] = []
    original = OrtModel.__call__

    def counting_call(self: OrtModel, *inputs: torch.Tensor):  # type: ignore[no-untyped-def]
        calls.append(int(inputs[0].shape[0]))
        return original(self, *inputs)

    monkeypatch.setattr(OrtModel, "__call__", counting_call)
    ort_m = measure(model, x0, data=loader, runtime="onnxruntime", latency=False, memory=False)
    assert calls == [32, 32, 6]  # accuracy ran through the ONNX Runtime session, partial batch included
    assert torch_m.accuracy is not None and 0.5 < torch_m.accuracy < 0.9
    assert ort_m.accuracy == torch_m.accuracy


def test_ort_predictions_agree_with_torch(digits_like, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, loader = digits_like
    path = tmp_path / "cnn.onnx"
    measure(model, torch.zeros(1, 1, 8, 8), runtime="onnxruntime", onnx_path=path, latency=False, memory=False)
    session = OrtModel(path)
    for x, _ in loader:
        with torch.no_grad():
            expected = model(x)
        got = session(x)
        assert torch.equal(got.argmax(1), expected.argmax(1))
        assert torch.allclose(got, expected, atol=1e-4)


def test_custom_metric_is_used(digits_like) -> None:  # type: ignore[no-untyped-def]
    model, loader = digits_like

    def always_half(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        return 0.5 * len(targets), len(targets)

    m = measure(model, torch.zeros(1, 1, 8, 8), data=loader, metric=always_half, latency=False, memory=False)
    assert m.accuracy == 0.5


def test_metrics_record_round_trips_through_json() -> None:
    m = measure(small_cnn(), torch.zeros(2, 1, 8, 8), memory=False, warmup=1, min_runs=5, min_seconds=0.0, name="cnn")
    d = json.loads(m.to_json())
    assert d["name"] == "cnn" and d["batch_size"] == 2 and d["threads"] == 1
    assert d["latency"]["runs"] >= 5 and d["energy"]["note"].startswith("estimate")
    assert Metrics.from_dict(d) == m
    text = str(m)
    assert "cnn" in text and "MACs" in text and f"{m.params_total / 1e3:.2f}K" in text
    layers = m.layers_table()
    assert "Conv2d" in layers and "8x8x8x8" not in layers and "2x8x8x8" in layers


def test_training_mode_is_restored() -> None:
    model = small_cnn().train()
    measure(model, torch.zeros(1, 1, 8, 8), latency=False, memory=False)
    assert model.training


def test_unknown_runtime_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="tensorrt") as info:
        measure(nn.Linear(4, 2), torch.zeros(1, 4), runtime="tensorrt")
    assert "onnxruntime" in str(info.value) and "torch" in str(info.value)


def test_wrong_input_shape_names_model_and_shape() -> None:
    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    with pytest.raises(InputError, match=r"TinyNet.*\(3, 7\)"):
        measure(TinyNet(), torch.zeros(3, 7), latency=False, memory=False)
    with pytest.raises(InputError, match="example_inputs"):
        measure(TinyNet(), [1, 2, 3], latency=False, memory=False)


@pytest.mark.parametrize("threads", [0, -2])
def test_bad_threads_refused(threads: int) -> None:
    with pytest.raises(ConfigError, match="threads"):
        measure(nn.Linear(4, 2), torch.zeros(1, 4), threads=threads)


def test_empty_data_refused() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=8)
    with pytest.raises(InputError, match="empty"):
        measure(nn.Linear(4, 2), torch.zeros(1, 4), data=empty, latency=False, memory=False)


def test_not_a_module_refused() -> None:
    with pytest.raises(InputError, match="nn.Module"):
        measure(lambda x: x, torch.zeros(1, 4))  # type: ignore[arg-type]
