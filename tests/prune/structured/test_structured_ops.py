"""Ops added to the dependency graph: grouped and transposed convolutions, GroupNorm,
depthwise after concat, F.normalize; nn.MultiheadAttention heads stay pinned with a reason;
Taylor importance on unlabelled data; global scope ranks heads among heads."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchslim import zoo
from torchslim.core.errors import ConfigError

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


class Decoder(nn.Module):
    """conv -> GroupNorm(4) -> grouped conv (2 groups) -> transposed conv -> grouped transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(16, 12, 2, stride=2)
        self.up_grouped = nn.ConvTranspose2d(12, 12, 3, padding=1, groups=3)
        self.out = nn.Conv2d(12, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 2, 2H, 2W)
        h = self.grouped(F.silu(self.gn(self.conv(x))))
        return self.out(F.relu(self.up_grouped(F.relu(self.up(h)))))


def _randomize(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model.eval()


def test_grouped_transposed_and_group_norm_prune_whole_groups() -> None:
    model = _randomize(Decoder())
    x = torch.randn(2, 3, 6, 6)
    report = P.preflight(model, x)
    assert not report.unsupported and not report.pinned.get("conv:channels")
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert small(x).shape == model(x).shape == (2, 2, 12, 12)
    assert (small.conv.out_channels, small.gn.num_channels, small.gn.num_groups) == (8, 8, 2)  # 4 channels a group
    g = small.grouped  # whole groups go: each keeps 8 inputs and 8 outputs
    assert g.in_channels // g.groups == 8 and g.out_channels // g.groups == 8 and g.weight.shape[1] == 8
    assert small.up.in_channels == g.out_channels and small.up.out_channels < 12
    ug = small.up_grouped
    assert ug.in_channels == small.up.out_channels and ug.weight.shape[1] == 4 and ug.out_channels == 4 * ug.groups
    same = P.prune(model, P.StructuredPrune(sparsity=0.0), example_inputs=x)
    assert torch.equal(same(x), model(x))


@pytest.mark.parametrize("norm, reason", [(nn.GroupNorm(1, 8), "one group"),
                                          (nn.GroupNorm(4, 8, affine=False), "without affine")])
def test_group_norm_that_cannot_shrink_is_pinned_and_reported(norm: nn.Module, reason: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), norm, nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(1, 3, 5, 5)
    model(x)
    model.eval()
    report = P.preflight(model, x)
    assert any(reason in r for reasons in report.pinned.values() for r in reasons)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert small[0].out_channels == 8 and small[3].out_channels == 2 and small(x).shape == (1, 2)


class ConcatDepthwise(nn.Module):
    """Two branches concatenated, then a depthwise 3x3 and a pointwise 1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 6, 1)
        self.dw = nn.Conv2d(14, 28, 3, padding=1, groups=14)  # multiplier 2
        self.pw = nn.Conv2d(28, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(torch.cat([self.a(x), self.b(x)], 1))).mean((2, 3))  # (B, 4)


def test_depthwise_after_concat_follows_both_branches() -> None:
    model = _randomize(ConcatDepthwise())
    x = torch.randn(2, 3, 5, 5)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert (small.a.out_channels, small.b.out_channels) == (4, 3)
    assert small.dw.groups == small.dw.in_channels == 7 and small.dw.out_channels == 14 == small.pw.in_channels
    assert small(x).shape == (2, 4)


class MHABlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 6)
        h = self.inp(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.fc(F.normalize(h + self.ffn(h), dim=-1).mean(1))  # (B, 3)


def test_multihead_attention_heads_stay_pinned_with_a_reason() -> None:
    model = _randomize(MHABlock())
    x = torch.randn(2, 5, 6)
    report = P.preflight(model, x)
    assert any("nn.MultiheadAttention" in r[0] for r in report.pinned.values())
    assert not report.unsupported  # F.normalize (linalg_vector_norm) has a rule
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert small.attn.num_heads == 4 and small.attn.in_proj_weight.shape == (96, 32)
    assert small.ffn[0].out_features == 32
    assert small(x).shape == (2, 3)


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_computes_the_same_function(batch_first: bool) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    split = P.split_attention(mha)
    x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, -2:] = True
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    for kw in ({}, {"key_padding_mask": pad, "attn_mask": causal}, {"need_weights": False, "key_padding_mask": pad},
               {"attn_mask": torch.randn(8, 5, 5), "average_attn_weights": False}):
        want, got = mha(x, x, x, **kw), split(x, x, x, **kw)
        torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
        if want[1] is not None:
            torch.testing.assert_close(got[1], want[1], atol=1e-5, rtol=1e-5)


def test_split_attention_makes_transformer_heads_prunable(tmp_path) -> None:
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2, enable_nested_tensor=False).eval()
    x = torch.randn(2, 5, 32)
    split = P.split_attention(enc)
    torch.testing.assert_close(split(x), enc(x), atol=1e-5, rtol=1e-5)
    small = P.prune(split, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    attn = small.layers[0].self_attn
    assert attn.num_heads == 2 and attn.q.out_features == attn.k.out_features == attn.out.in_features == 16
    assert small(x).shape == (2, 5, 32) and small.layers[0].linear1.out_features == 32
    P.save_pruned(small, tmp_path / "small.safetensors")
    fresh = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2, enable_nested_tensor=False)
    back = P.load_pruned(tmp_path / "small.safetensors", P.split_attention(fresh))
    assert torch.equal(back(x), small(x))


def test_taylor_on_unlabelled_data_drops_the_unit_without_effect() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.ones(4, 3))
        net[0].bias.fill_(1.0)
        net[2].weight.copy_(torch.tensor([[1.0, 2.0, 0.0, 3.0], [1.0, 2.0, 0.0, 3.0]]))  # unit 2 feeds nothing
    data = [torch.rand(16, 3) for _ in range(2)]  # unlabelled: a random projection of the output
    small = P.prune(net, P.StructuredPrune(sparsity=0.25, importance="taylor"), example_inputs=data[0], data=data)
    assert sorted(small[2].weight[0].tolist()) == [1.0, 2.0, 3.0]


def test_global_scope_ranks_heads_among_heads() -> None:
    model = zoo.model("transformer-mnist").eval()
    x = zoo.example_inputs("transformer-mnist", batch_size=1)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5, scope="global"), example_inputs=x)
    heads = [b.attn.num_heads for b in small.blocks]
    assert sum(heads) == 4 and min(heads) >= 1  # half of the 2 x 4 heads, wherever they matter least
    assert sum(b.ffn.fc1.out_features for b in small.blocks) <= 0.5 * sum(b.ffn.fc1.out_features for b in model.blocks) + 1
    assert small(x).shape == (1, 10)


def test_recover_by_matching_outputs_on_unlabelled_data() -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 8)).eval()
    x = torch.randn(4, 8)
    data = [(torch.randn(32, 8),) for _ in range(8)]
    student = P.prune(teacher, P.StructuredPrune(sparsity=0.5), example_inputs=x)

    def gap(m: nn.Module) -> float:
        with torch.no_grad():
            return float(sum(F.mse_loss(m(b[0]), teacher(b[0])) for b in data))

    before = gap(student)
    P.recover(student, data, epochs=5, teacher=teacher, match="outputs", lr=3e-3, progress=False)
    assert gap(student) < 0.5 * before
    with pytest.raises(ConfigError, match="match must be"):
        P.recover(student, data, epochs=1, teacher=teacher, match="features", progress=False)
