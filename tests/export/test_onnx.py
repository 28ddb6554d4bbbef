import os

import pytest
import torch
from torch import nn

from torchslim.core.errors import ConfigError, InputError
from torchslim.export.onnx import OrtModel, export_onnx


class TwoInputs(nn.Module):
    """Token ids and a mask, as a text model takes them."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids) * mask.unsqueeze(-1)  # (B, T, 8)
        return self.fc(h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1))  # (B, 3)


def conv_bn():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    m.train()
    m(torch.randn(16, 1, 12, 12))  # move BatchNorm statistics off their defaults
    return m


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_matches_torch_at_any_batch(tmp_path, batch):
    model = conv_bn()
    path = export_onnx(model, tmp_path / "m.onnx", torch.randn(1, 1, 12, 12))
    assert model.training, "export must restore the training flag"
    model.eval()
    x = torch.randn(batch, 1, 12, 12)
    with torch.no_grad():
        expected = model(x)
    got = OrtModel(path)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_two_input_model(tmp_path):
    model = TwoInputs().eval()
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7)
    mask[1, 4:] = 0
    path = export_onnx(model, tmp_path / "t.onnx", (ids, mask))
    ort_model = OrtModel(path)
    assert ort_model.input_names == ["input_0", "input_1"]
    with torch.no_grad():
        assert torch.allclose(ort_model(ids, mask), model(ids, mask), atol=1e-4)
    with pytest.raises(InputError, match="takes 2 inputs"):
        ort_model(ids)


def test_prepared_call_computes_what_run_does_on_its_bound_inputs(tmp_path):
    model = TwoInputs().eval()
    ids, mask = torch.randint(1, 50, (2, 7)), torch.ones(2, 7)
    mask[0, 3:] = 0
    with torch.no_grad():
        expected = model(ids, mask)
    ort_model = OrtModel(export_onnx(model, tmp_path / "t.onnx", (ids, mask)))
    call = ort_model.prepared(ids, mask)
    ids.zero_()  # bound inputs are copies: a later change to the tensors does not leak in
    for _ in range(2):  # a second run reuses the binding
        got = torch.from_numpy(call()[0].numpy())
        assert torch.allclose(got, expected, atol=1e-4)
    with pytest.raises(InputError, match="takes 2 inputs"):
        ort_model.prepared(ids)


def test_wrong_shape_is_a_clear_error_and_leaves_no_file(tmp_path):
    with pytest.raises(InputError, match=r"\(1, 3, 12, 12\)"):
        export_onnx(conv_bn(), tmp_path / "bad.onnx", torch.randn(1, 3, 12, 12))
    assert os.listdir(tmp_path) == []


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        with open(args[2], "wb") as f:
            f.write(b"half an onnx file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(conv_bn(), tmp_path / "m.onnx", torch.randn(1, 1, 12, 12))
    assert os.listdir(tmp_path) == []


def test_session_threads_and_bad_arguments(tmp_path):
    path = export_onnx(nn.Linear(4, 2), tmp_path / "l.onnx", torch.randn(1, 4))
    assert OrtModel(path, threads=2).options.intra_op_num_threads == 2
    with pytest.raises(ConfigError, match="threads"):
        OrtModel(path, threads=0)
    with pytest.raises(InputError, match="no ONNX file"):
        OrtModel(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(nn.Linear(4, 2), tmp_path / "l2.onnx", torch.randn(1, 4), opset=99)


def test_registered_lowering_claims_its_models(tmp_path):
    from torchslim.export.onnx import _LOWERINGS, register_lowering

    class Marked(nn.Linear):
        pass

    written = []

    def lower(model, tmp, inputs, opset, dynamic):
        written.append((type(model).__name__, opset, dynamic))
        tmp.write_bytes(b"lowered")

    register_lowering("test-marked", lambda m: isinstance(m, Marked), lower)
    try:
        path = export_onnx(Marked(4, 2), tmp_path / "m.onnx", torch.randn(1, 4))
        assert path.read_bytes() == b"lowered" and written == [("Marked", 18, True)]
        export_onnx(nn.Linear(4, 2), tmp_path / "plain.onnx", torch.randn(1, 4))
        assert len(written) == 1
    finally:
        del _LOWERINGS["test-marked"]
