"""Slim student builders: width and depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim import zoo
from torchslim.arch import depth_student, width_student
from torchslim.core.errors import ConfigError


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_width_student_lenet300_param_count_matches_multiplier() -> None:
    teacher = zoo.model("lenet300-mnist")
    x = zoo.example_inputs("lenet300-mnist", batch_size=2)
    for mult in (0.5, 0.25):
        student = width_student(teacher, mult, example_inputs=x)
        h1, h2 = round(300 * mult), round(100 * mult)
        assert student.fc1.weight.shape == (h1, 784) and student.fc3.weight.shape == (10, h2)
        assert student.fc2.weight.numel() == pytest.approx(mult**2 * teacher.fc2.weight.numel())
        assert _params(student) == 784 * h1 + h1 + h1 * h2 + h2 + h2 * 10 + 10
        assert student(x).shape == teacher(x).shape
    torch.testing.assert_close(student.fc2.weight, teacher.fc2.weight[:h2, :h1])  # sliced init


def test_width_student_resnet_is_about_multiplier_squared() -> None:
    teacher = zoo.model("resnet-mnist")
    x = zoo.example_inputs("resnet-mnist", batch_size=2)
    student = width_student(teacher, 0.5, example_inputs=x)
    assert student(x).shape == teacher(x).shape
    assert student.stem[0].in_channels == 1 and student.fc.out_features == 10
    assert student.layer3[0].conv2.weight.numel() == teacher.layer3[0].conv2.weight.numel() // 4
    assert 0.22 < _params(student) / _params(teacher) < 0.28


def test_width_student_transformer_scales_own_parameters_and_heads() -> None:
    teacher = zoo.model("transformer-mnist").eval()
    x = zoo.example_inputs("transformer-mnist", batch_size=2)
    student = width_student(teacher, 0.5, example_inputs=x)
    assert student.width_path == "graph"
    assert student.cls_token.shape == (1, 1, 32) and student.pos_embed.shape == (1, 17, 32)
    attn = student.blocks[0].attn
    assert (attn.num_heads, attn.head_dim) == (2, 16) and attn.q.weight.shape == (32, 32)
    assert student(x).shape == teacher(x).shape
    d, inner, hidden, tokens, depth = 32, 32, 64, 17, 2  # dim, heads * head_dim, FFN, CLS + 16 patches
    block = 2 * 2 * d + 3 * (d * inner + inner) + inner * d + d + d * hidden + hidden + hidden * d + d
    expected = 49 * d + d + d + tokens * d + depth * block + 2 * d + d * 10 + 10
    assert _params(student) == expected
    torch.testing.assert_close(student.cls_token, teacher.cls_token[..., :32])  # sliced init
    torch.testing.assert_close(student.blocks[0].attn.q.weight, teacher.blocks[0].attn.q.weight[:32, :32])
    assert teacher.cls_token.shape == (1, 1, 64)  # the teacher is untouched


def test_width_student_scales_every_zoo_model() -> None:
    for name in zoo.names():
        teacher = zoo.model(name).eval()
        x = zoo.example_inputs(name, batch_size=2)
        student = width_student(teacher, 0.5, example_inputs=x)
        assert student(x).shape == teacher(x).shape, name
        assert 0.2 < _params(student) / _params(teacher) < 0.5, name


def test_width_student_falls_back_to_layers_when_graph_fails() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.b(h) if h.sum() > 0 else -self.b(h)  # data-dependent: no graph capture

    student = width_student(Branchy(), 0.5, example_inputs=torch.randn(2, 8))
    assert student.width_path == "layers" and student.a.out_features == 8 and student.b.in_features == 8


def test_width_student_errors() -> None:
    with pytest.raises(ConfigError, match="holds parameters.*example_inputs"):
        width_student(zoo.model("transformer-mnist"), 0.5)  # own parameters need the graph
    with pytest.raises(ConfigError, match="multiplier"):
        width_student(nn.Sequential(nn.Linear(4, 4)), 0.0)
    with pytest.raises(ConfigError, match="multiplier"):
        width_student(nn.Sequential(nn.Linear(4, 4)), 1.5)


def test_depth_student_halves_transformer_blocks() -> None:
    teacher = zoo.model("transformer-mnist")
    x = zoo.example_inputs("transformer-mnist", batch_size=2)
    student = depth_student(teacher, 0.5, example_inputs=x)
    assert len(student.blocks) == len(teacher.blocks) // 2
    assert student.depth_report == {"blocks": {"kept": [0], "removed": [1]}}
    assert student(x).shape == teacher(x).shape
    assert len(teacher.blocks) == 2  # the teacher is untouched


def test_depth_student_deep_resnet_and_nothing_to_remove() -> None:
    from torchslim.zoo.resnet import ResNetMNIST

    x = torch.zeros(2, 1, 28, 28)
    student = depth_student(ResNetMNIST(blocks=3), 2, example_inputs=x)  # keep 2 removable blocks
    assert [len(s) for s in (student.layer1, student.layer2, student.layer3)] == [2, 3, 3]
    student = depth_student(ResNetMNIST(blocks=3), 0.5, example_inputs=x)  # stride blocks stay
    assert [len(s) for s in (student.layer1, student.layer2, student.layer3)] == [2, 2, 2]
    assert student.depth_report["layer2"] == {"kept": [1], "removed": [2]}
    assert student(x).shape == (2, 10)
    with pytest.raises(ConfigError, match="no nn.Sequential"):
        depth_student(zoo.model("resnet-mnist"), 0.5, example_inputs=x)
