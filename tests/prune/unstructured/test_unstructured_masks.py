"""Masks: which weights are removed, exact counts, N:M, scopes, persistence, export, bad input."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from torchslim.core.config import config_from_yaml
from torchslim.core.errors import ConfigError
from torchslim.core.targets import Target
from torchslim.export import OrtModel, export_onnx
from torchslim.measure.params import count_params
from torchslim.prune.api import prune
from torchslim.prune.unstructured import (
    LotteryTicket,
    MagnitudePrune,
    NMPrune,
    RandomPrune,
    get_masks,
    has_masks,
    layer_sparsity,
    load_masked_state_dict,
    make_permanent,
    masked_layers,
    sparse_bytes,
)
from torchslim.train import fit


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 4))


def _data(n: int = 128, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4].argmax(1)).long()
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, n, 32)]


def _pruned_positions_zero(model: nn.Module) -> bool:
    for module in masked_layers(model).values():
        mask = module.parametrizations.weight[0].mask
        if module.weight[~mask].abs().sum() != 0 or module.parametrizations.weight.original[~mask].abs().sum() != 0:
            return False
    return True


def test_magnitude_picks_the_known_smallest_weights() -> None:
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -0.1, 3.0], [-0.05, 2.0, -0.7]]))
    net = prune(nn.Sequential(lin), MagnitudePrune(sparsity=0.5, scope="layer"))
    assert get_masks(net)["0"].tolist() == [[False, False, True], [False, True, True]]
    assert lin.weight.count_nonzero() == 6  # the input is untouched (prune copies)


def test_ties_give_the_exact_count() -> None:
    net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 7))
    with torch.no_grad():
        for m in net:
            m.weight.fill_(0.25)  # every weight ties
    for scope in ("layer", "global"):
        small = prune(net, MagnitudePrune(sparsity=0.37, scope=scope))
        zeros = {n: int((m.weight == 0).sum()) for n, m in masked_layers(small).items()}
        if scope == "layer":
            assert zeros == {"0": 37, "1": 26}  # round(0.37 * 100), round(0.37 * 70)
        else:
            assert sum(zeros.values()) == 63  # round(0.37 * 170)


def test_global_prunes_more_from_the_layer_with_small_weights() -> None:
    net = _mlp()
    with torch.no_grad():
        for m in (net[2], net[4]):
            m.weight.copy_(m.weight.sign() * (m.weight.abs() + 0.01))  # every |w| >= 0.01
        net[0].weight.mul_(0.01 / net[0].weight.abs().max())  # layer 0 holds the smallest weights
    glob = layer_sparsity(prune(net, MagnitudePrune(sparsity=0.5, scope="global")))
    per_layer = layer_sparsity(prune(net, MagnitudePrune(sparsity=0.5, scope="layer")))
    assert all(abs(s - 0.5) <= 1 / 32 for s in per_layer.values())
    # 400 of the 800 weights go, all from layer 0 (512 weights, each 100x smaller)
    assert glob == {"0": 400 / 512, "2": 0.0, "4": 0.0}
    total = sum(m.weight.numel() for m in net if isinstance(m, nn.Linear))
    assert abs(sum(glob[n] * net[int(n)].weight.numel() for n in glob) - 0.5 * total) < 1


def test_random_prune_is_reproducible_and_exact() -> None:
    a = prune(_mlp(), RandomPrune(sparsity=0.6, seed=3))
    b = prune(_mlp(), RandomPrune(sparsity=0.6, seed=3))
    c = prune(_mlp(), RandomPrune(sparsity=0.6, seed=4))
    assert all(torch.equal(get_masks(a)[k], get_masks(b)[k]) for k in get_masks(a))
    assert not torch.equal(get_masks(a)["0"], get_masks(c)["0"])
    assert int((~get_masks(a)["0"]).sum()) == round(0.6 * 16 * 32)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (4, 8)])
def test_nm_masks_have_exactly_n_nonzeros_per_m(n: int, m: int) -> None:
    net = nn.Sequential(nn.Linear(16, 24), nn.Conv2d(8, 16, 3))
    small = prune(net, NMPrune(n=n, m=m))
    w = small[0].weight.reshape(24, 16 // m, m)
    assert (w != 0).sum(-1).eq(n).all()
    conv = small[1].weight.permute(0, 2, 3, 1).reshape(-1, m)  # groups of input channels
    assert (conv != 0).sum(-1).eq(n).all()
    # the kept ones are the largest in their group
    orig = net[0].weight.detach().abs().reshape(24, 16 // m, m)
    kept_min = torch.where(w != 0, orig, torch.inf).amin(-1)
    dropped_max = torch.where(w == 0, orig, -torch.inf).amax(-1)
    assert (kept_min >= dropped_max).all()


def test_make_permanent_leaves_plain_modules_with_zeros() -> None:
    small = prune(_mlp(), MagnitudePrune(sparsity=0.8))
    out = small(torch.ones(2, 16))
    total, nonzero = count_params(small)  # counted right while the masks are attached
    plain = make_permanent(small)
    assert not has_masks(plain)
    assert all(type(m) in (nn.Linear, nn.ReLU, nn.Sequential) for m in plain.modules())
    assert set(plain.state_dict()) == set(_mlp().state_dict())
    assert torch.equal(plain(torch.ones(2, 16)), out)
    assert count_params(plain) == (total, nonzero)
    weights = sum(m.weight.numel() for m in plain if isinstance(m, nn.Linear))
    assert sum(int((m.weight == 0).sum()) for m in plain if isinstance(m, nn.Linear)) == round(0.8 * weights)
    torch.save(plain, io.BytesIO())  # a plain module pickles again


def test_finetuning_keeps_pruned_weights_zero() -> None:
    data = _data()
    small = prune(_mlp(), MagnitudePrune(sparsity=0.7), train_data=data, epochs=3, lr=1e-2,
                  weight_decay=1e-3, progress=False)
    assert _pruned_positions_zero(small)
    assert abs(sum(layer_sparsity(small).values()) / 3 - 0.7) < 0.2
    before = {k: v.clone() for k, v in small.state_dict().items()}
    for opt in ("sgd", "adamw"):  # a second fine-tune with other optimizers, straight through fit
        fit(small, data, epochs=2, optimizer=opt, lr=0.05, weight_decay=0.01, progress=False)
        assert _pruned_positions_zero(small)
    assert not torch.equal(before["0.parametrizations.weight.original"], small[0].parametrizations.weight.original)


def test_masks_survive_state_dict_deepcopy_and_onnx(tmp_path) -> None:
    small = prune(_mlp(), MagnitudePrune(sparsity=0.9))
    x = torch.randn(5, 16)
    # deepcopy
    twin = copy.deepcopy(small)
    assert torch.equal(twin(x), small(x)) and has_masks(twin)
    fit(twin, _data(), epochs=1, progress=False)
    assert _pruned_positions_zero(twin)
    # state_dict -> file -> a fresh, unmasked model
    buf = io.BytesIO()
    torch.save(small.state_dict(), buf)
    buf.seek(0)
    fresh = load_masked_state_dict(_mlp(seed=7), torch.load(buf, weights_only=True))
    assert torch.equal(fresh(x), small(x))
    assert all(torch.equal(get_masks(fresh)[k], get_masks(small)[k]) for k in get_masks(small))
    # ONNX: exported as plain zeroed weights, same outputs in ONNX Runtime
    path = export_onnx(small, tmp_path / "pruned.onnx", x)
    assert has_masks(small)  # export did not touch the model
    import onnx

    graph = onnx.load(str(path)).graph
    assert not any("mask" in i.name or "parametrizations" in i.name for i in graph.initializer)
    assert "Mul" not in {n.op_type for n in graph.node}
    torch.testing.assert_close(OrtModel(path, threads=1)(x), small.eval()(x), atol=1e-5, rtol=1e-5)


def test_sparse_bytes_shrink_with_sparsity() -> None:
    net = nn.Sequential(nn.Linear(256, 256), nn.Linear(256, 10))
    dense = sparse_bytes(net, "dense")
    assert dense == sum(p.numel() * 4 for p in net.parameters())
    assert sparse_bytes(net, "bitmask") == dense  # nothing to gain: stored dense
    small = prune(net, MagnitudePrune(sparsity=0.9))
    nnz = sum(int(m.weight.count_nonzero()) for m in small)
    bias = (256 + 10) * 4
    assert sparse_bytes(small, "bitmask") == nnz * 4 + (256 * 256 + 256 * 10) // 8 + bias
    csr = sparse_bytes(small, "csr")
    assert nnz * 5 + bias < csr < sparse_bytes(small, "bitmask") * 1.5
    assert sparse_bytes(small, "dense") == dense
    with pytest.raises(ConfigError, match="unknown sparse encoding 'zip'.*bitmask"):
        sparse_bytes(small, "zip")


def test_configs_round_trip_through_yaml() -> None:
    for cfg in (MagnitudePrune(sparsity=0.8, scope="layer", target=Target(include=["type:Linear"]), ignore="fc3"),
                NMPrune(n=1, m=8), RandomPrune(sparsity=0.2, seed=5), LotteryTicket(rounds=2)):
        assert config_from_yaml(cfg.to_yaml()) == cfg


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_sparsity_outside_0_1_is_refused(bad: float) -> None:
    with pytest.raises(ValidationError, match=r"sparsity must be in \[0, 1\)"):
        MagnitudePrune(sparsity=bad)
    with pytest.raises(ConfigError, match="sparsity must be in"):
        config_from_yaml(f"type: random_prune\nsparsity: {bad}\n")


def test_bad_scope_and_nm_are_refused() -> None:
    with pytest.raises(ValidationError, match="scope"):
        MagnitudePrune(scope="network")
    with pytest.raises(ValidationError, match="0 < n <= m, got n=5, m=4"):
        NMPrune(n=5, m=4)
    with pytest.raises(ConfigError, match=r"layer '0' has 10 inputs.*not a multiple of 4.*ignore=\['0'\]"):
        prune(nn.Sequential(nn.Linear(10, 8), nn.Linear(8, 4)), NMPrune(n=2, m=4))
    ok = prune(nn.Sequential(nn.Linear(10, 8), nn.Linear(8, 4)), NMPrune(n=2, m=4, ignore=["0"]))
    assert list(masked_layers(ok)) == ["1"]


def test_a_target_that_matches_nothing_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no module named 'fc9'"):
        prune(_mlp(), MagnitudePrune(target=Target(include=["fc9"])))
    with pytest.raises(ConfigError, match=r"matches no prunable layer.*\['0', '2', '4'\]"):
        prune(_mlp(), MagnitudePrune(target=Target(include=["type:Conv2d"])))
    with pytest.raises(ConfigError, match="no module named 'head'"):
        prune(_mlp(), MagnitudePrune(ignore=["head"]))


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['epoch'\]"):
        prune(_mlp(), MagnitudePrune(), train_data=_data(), epoch=1)
    with pytest.raises(ConfigError, match="need train_data="):
        prune(_mlp(), MagnitudePrune(), epochs=2)
    with pytest.raises(ConfigError, match="needs epochs="):
        prune(_mlp(), MagnitudePrune(), train_data=_data())
