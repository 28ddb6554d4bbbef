"""MACs per layer equal the hand formulas; attribution of functional ops to their module."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchslim.measure.macs import count_macs, layer_precisions


def macs_of(model: nn.Module, *inputs: torch.Tensor) -> tuple[int, dict[str, int]]:
    total, layers = count_macs(model.eval(), inputs)
    assert sum(layer.macs for layer in layers) == total  # own shares add up to the total
    return total, {layer.name: layer.macs for layer in layers}


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "pad", "groups"),
    [(3, 8, 3, 1, 1, 1), (8, 16, 3, 2, 0, 4), (8, 8, 3, 1, 1, 8), (6, 12, (3, 5), 1, 2, 3)],
    ids=["plain", "grouped", "depthwise", "rect-kernel-grouped"],
)
def test_conv2d_macs_match_formula(cin: int, cout: int, k: int | tuple[int, int], stride: int, pad: int, groups: int) -> None:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
    x = torch.randn(2, cin, 11, 13)  # (N, Cin, H, W)
    out = conv(x)  # (N, Cout, Hout, Wout)
    kh, kw = conv.kernel_size
    expected = 2 * cout * out.shape[2] * out.shape[3] * (cin // groups) * kh * kw
    total, per_layer = macs_of(conv, x)
    assert total == expected
    assert per_layer[""] == expected


def test_conv1d_macs_match_formula() -> None:
    conv = nn.Conv1d(4, 6, 5, stride=1)
    x = torch.randn(3, 4, 20)  # (N, Cin, L) -> (N, Cout, 16)
    assert macs_of(conv, x)[0] == 3 * 6 * 16 * 4 * 5


@pytest.mark.parametrize("shape", [(5, 12), (2, 5, 12)])
def test_linear_macs_match_formula(shape: tuple[int, ...]) -> None:
    lin = nn.Linear(12, 7)
    n = 1
    for s in shape[:-1]:
        n *= s
    assert macs_of(lin, torch.randn(*shape))[0] == n * 12 * 7


class BatchMatmul(nn.Module):
    """No parameters: a bmm and a matmul done with functional calls."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = torch.bmm(a, b)  # (B, n, k) @ (B, k, m) -> (B, n, m)
        return y @ y.transpose(1, 2)  # (B, n, m) @ (B, m, n) -> (B, n, n)


class Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(4, 4)
        self.mix = BatchMatmul()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.mix(self.pre(a), b)


def test_functional_bmm_attributed_to_its_module() -> None:
    a, b = torch.randn(3, 5, 4), torch.randn(3, 4, 6)  # B=3, n=5, k=4, m=6
    total, per_layer = macs_of(Wrapper(), a, b)
    pre = 3 * 5 * 4 * 4
    mix = 3 * 5 * 4 * 6 + 3 * 5 * 6 * 5
    assert per_layer["pre"] == pre
    assert per_layer["mix"] == mix
    assert per_layer.get("", 0) == 0  # the wrapper itself does no arithmetic
    assert total == pre + mix


class TinyAttention(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2, sdpa: bool = False) -> None:
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, D) each
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            att = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5  # (B, H, T, T)
            y = att.softmax(-1) @ v  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, sdpa: bool) -> None:
        super().__init__()
        self.attn = TinyAttention(sdpa=sdpa)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x).mean(1))


@pytest.mark.parametrize("sdpa", [False, True], ids=["matmul", "sdpa"])
def test_attention_macs_match_formula(sdpa: bool) -> None:
    b, t, c, h = 2, 7, 16, 2
    total, per_layer = macs_of(Block(sdpa), torch.randn(b, t, c))
    scores_and_mix = 2 * b * h * t * t * (c // h)  # q @ k^T and att @ v
    assert per_layer["attn.qkv"] == b * t * c * 3 * c
    assert per_layer["attn.proj"] == b * t * c * c
    assert per_layer["attn"] == scores_and_mix  # functional matmuls charged to the attention module
    assert per_layer["head"] == b * c * 3
    assert total == b * t * c * 3 * c + b * t * c * c + scores_and_mix + b * c * 3


def test_layers_record_output_shape_and_own_params() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    _, layers = count_macs(model.eval(), (torch.randn(2, 3, 8, 8),))
    by_name = {layer.name: layer for layer in layers}
    assert by_name["0"].output_shape == [2, 4, 6, 6]
    assert by_name["3"].output_shape == [2, 5]
    assert by_name["0"].params == 4 * 3 * 9 + 4
    assert by_name["1"].macs == 0 and by_name["1"].params == 0
    assert sum(layer.params for layer in layers) == sum(p.numel() for p in model.parameters())


def test_shared_module_counted_per_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x))

    assert macs_of(Twice(), torch.randn(3, 8))[0] == 2 * 3 * 8 * 8


def test_opaque_quantized_linear_falls_back_to_formula() -> None:
    float_model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
    total, layers = count_macs(q, (torch.randn(3, 16),))
    by_name = {layer.name: layer for layer in layers}
    assert by_name["0"].macs == 3 * 16 * 32 and by_name["2"].macs == 3 * 32 * 4
    assert by_name["0"].precision == "int8"
    assert total == 3 * 16 * 32 + 3 * 32 * 4


def test_precision_from_attribute_then_dtype() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).half(), nn.Linear(4, 4))
    model[2].torchslim_precision = "int8"
    prec = layer_precisions(model)
    assert (prec["0"], prec["1"], prec["2"]) == ("fp32", "fp16", "int8")


def test_lookups_and_parameter_tables_have_no_macs() -> None:
    class WithTables(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.pos = nn.Parameter(torch.zeros(1, 6, 8))  # (1, T, C)
            self.fc = nn.Linear(8, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.fc(self.emb(ids) + self.pos)  # (B, T, C) -> (B, T, 2)

    total, per_layer = macs_of(WithTables(), torch.randint(0, 50, (3, 6)))
    assert per_layer["emb"] == 0 and per_layer.get("", 0) == 0
    assert total == 3 * 6 * 8 * 2
