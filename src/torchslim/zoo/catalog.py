"""The reference models, registered with their recipes and documented accuracies.

Example:
    >>> from torchslim.zoo.catalog import LENET5
    >>> LENET5.recipe.shift
    2
"""

from __future__ import annotations

from torchslim.zoo.lenet import LeNet5, LeNet300
from torchslim.zoo.mnist1d_models import CNN1D, MLP1D
from torchslim.zoo.mobilenet import MobileNetMNIST
from torchslim.zoo.registry import Recipe, ZooEntry, register
from torchslim.zoo.resnet import ResNetMNIST
from torchslim.zoo.transformer import TransformerMNIST

MNIST = {"dataset": "mnist_5k", "input_shape": (1, 28, 28), "num_classes": 10}
MNIST1D = {"dataset": "mnist1d", "input_shape": (1, 40), "num_classes": 10}

LENET300 = register(ZooEntry(
    name="lenet300-mnist",
    description="LeNet-300-100 MLP (784-300-100-10, ReLU), 267k parameters",
    recipe=Recipe(epochs=30, lr=1e-3, shift=1),
    documented_accuracy=0.955,
    architecture=LeNet300,
    **MNIST,
))

LENET5 = register(ZooEntry(
    name="lenet5-mnist",
    description="LeNet-5 (conv 6, conv 16, fc 120-84-10; ReLU, max-pool), 62k parameters",
    recipe=Recipe(epochs=30, lr=3e-3, shift=2),
    documented_accuracy=0.97,
    architecture=LeNet5,
    **MNIST,
))

RESNET = register(ZooEntry(
    name="resnet-mnist",
    description="ResNet-8, CIFAR style (16/32/64 channels, BatchNorm, residual adds), 78k parameters",
    recipe=Recipe(epochs=15, lr=3e-3, shift=2),
    documented_accuracy=0.975,
    architecture=ResNetMNIST,
    **MNIST,
))

MOBILENET = register(ZooEntry(
    name="mobilenet-mnist",
    description="MobileNet-style (depthwise 3x3 + pointwise 1x1, BN, ReLU6), 37k parameters",
    recipe=Recipe(epochs=15, lr=3e-3, shift=2),
    documented_accuracy=0.965,
    architecture=MobileNetMNIST,
    **MNIST,
))

TRANSFORMER = register(ZooEntry(
    name="transformer-mnist",
    description="ViT-style encoder (16 patches of 7x7, dim 64, 2 pre-LN blocks, 4 heads), 72k parameters",
    recipe=Recipe(epochs=40, lr=3e-3, optimizer="adamw", weight_decay=0.05, warmup_steps=100, shift=1),
    documented_accuracy=0.965,
    architecture=TransformerMNIST,
    **MNIST,
))

CNN1D_ENTRY = register(ZooEntry(
    name="cnn1d-mnist1d",
    description="1-D CNN (conv 32, 64, 64; ReLU; flatten; fc), 25k parameters",
    recipe=Recipe(epochs=40, lr=1e-2, shift=2),
    documented_accuracy=0.965,
    architecture=CNN1D,
    **MNIST1D,
))

MLP1D_ENTRY = register(ZooEntry(
    name="mlp-mnist1d",
    description="MLP 40-100-100-10 (ReLU): the distillation student baseline, 15k parameters",
    recipe=Recipe(epochs=60, lr=1e-2, shift=2),
    documented_accuracy=0.72,
    architecture=MLP1D,
    **MNIST1D,
))
