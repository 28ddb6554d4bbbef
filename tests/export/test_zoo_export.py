"""Every reference model exports to ONNX and ONNX Runtime agrees with torch within 1e-4."""

from __future__ import annotations

import pytest
import torch

from torchslim import zoo
from torchslim.export.onnx import OrtModel, export_onnx


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_onnx_matches_torch(name, tmp_path):
    model = zoo.model(name, seed=0).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", zoo.example_inputs(name, batch_size=1))
    x = zoo.example_inputs(name, batch_size=4)  # a different batch size than exported with
    with torch.no_grad():
        expected = model(x)
    got = OrtModel(path)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4), f"{name}: max diff {(got - expected).abs().max():.2e}"
