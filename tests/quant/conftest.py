"""Shared fixtures: the LeNet-5 teacher, MNIST-5k loaders, its static int8 model and export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from torchslim import data, zoo
from torchslim.export.onnx import export_onnx
from torchslim.quant import Int8Static, quantize


@pytest.fixture(scope="session")
def mnist() -> data.DataSplits:
    return data.load("mnist_5k", batch_size=250, seed=0)


@pytest.fixture(scope="session")
def lenet5() -> nn.Module:
    return zoo.teacher("lenet5-mnist", progress=False).eval()


@pytest.fixture(scope="session")
def lenet5_int8(lenet5: nn.Module, mnist: data.DataSplits) -> nn.Module:
    return quantize(lenet5, Int8Static(calibration_samples=500), calibration=mnist.train)


@pytest.fixture(scope="session")
def lenet5_int8_onnx(lenet5_int8: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(lenet5_int8, tmp_path_factory.mktemp("q") / "lenet5_int8.onnx", torch.zeros(1, 1, 28, 28))


@pytest.fixture(scope="session")
def resnet() -> nn.Module:
    return zoo.teacher("resnet-mnist", progress=False).eval()


@pytest.fixture(scope="session")
def resnet_int8_onnx(resnet: nn.Module, mnist: data.DataSplits, tmp_path_factory: pytest.TempPathFactory
                     ) -> tuple[nn.Module, Path]:
    q = quantize(resnet, Int8Static(calibration_samples=500), calibration=mnist.train)
    return q, export_onnx(q, tmp_path_factory.mktemp("q") / "resnet_int8.onnx", torch.zeros(1, 1, 28, 28))
