"""Parameter counts (zeros counted exactly) and deployable bytes, for both runtimes."""

from __future__ import annotations

from pathlib import Path

import onnx
import safetensors.torch
import torch
from torch import nn

from torchslim.measure import measure
from torchslim.measure.params import count_params, onnx_params, state_dict_bytes


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))


def test_params_total_and_nonzero_exact() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].weight[:4].zero_()  # 4 rows x 20 = 80 zeros
        model[2].bias[1] = 0.0  # 1 more
    m = measure(model, torch.randn(2, 20), latency=False, memory=False)
    assert m.params_total == 20 * 30 + 30 + 30 * 5 + 5
    assert m.params_nonzero == m.params_total - 81
    assert abs(m.sparsity - 81 / m.params_total) < 1e-12


def test_shared_parameter_counted_once() -> None:
    a = nn.Linear(6, 6)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert count_params(model) == (42, 42)
    tied = nn.Module()
    tied.emb, tied.out = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    tied.out.weight = tied.emb.weight
    assert count_params(tied)[0] == 40
    assert state_dict_bytes(tied) < 2 * 40 * 4  # the tied weight is stored once


def test_torch_bytes_equal_safetensors_length() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    m = measure(model, torch.randn(1, 3, 8, 8), latency=False, memory=False)
    assert m.bytes == len(safetensors.torch.save(model.state_dict()))


def test_onnx_bytes_equal_file_size_and_params_match(tmp_path: Path) -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight[0].zero_()  # 30 zeros
    path = tmp_path / "mlp.onnx"
    m = measure(model, torch.randn(2, 20), runtime="onnxruntime", onnx_path=path, latency=False, memory=False)
    assert path.is_file()
    assert m.bytes == path.stat().st_size
    assert (m.params_total, m.params_nonzero) == count_params(model) == (785, 755)
    assert onnx_params(path) == (785, 755)


def test_existing_onnx_path_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "given.onnx"
    measure(mlp(), torch.randn(2, 20), runtime="onnxruntime", onnx_path=path, latency=False, memory=False)
    proto = onnx.load(str(path))
    proto.doc_string = "x" * 1000  # a marker that a re-export would erase
    onnx.save(proto, str(path))
    m = measure(mlp(), torch.randn(2, 20), runtime="onnxruntime", onnx_path=path, latency=False, memory=False)
    assert m.bytes == path.stat().st_size
    assert onnx.load(str(path)).doc_string == "x" * 1000
