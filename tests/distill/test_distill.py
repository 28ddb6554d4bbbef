"""distill(): the teacher stays frozen, the input student untouched, transfer sets work, and
bad input fails clearly. Small models and few epochs; one real-data check on MNIST-1D."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchslim import data, zoo
from torchslim.core.config import config_from_yaml
from torchslim.core.errors import ConfigError, InputError, UnknownNameError
from torchslim.data.transfer import mnist1d_transfer_loader
from torchslim.distill import DKD, KD, AttentionKD, FeatureKD, distill
from torchslim.measure import evaluate
from torchslim.train import Callback, load_checkpoint


def _data(n: int = 128, classes: int = 3, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 12, generator=g)  # (N, C, L)
    y = (x.sum((1, 2)) > 0).long() + (x[:, 0, 0] > 1).long()  # (N,) in 0..2
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, n, 32)]


def _convnet(width: int, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(1, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.1),
        nn.Conv1d(width, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 12, classes),
    )


ALL = [KD(), FeatureKD(), FeatureKD(student_layers=("1",), teacher_layers=("4",)), AttentionKD(), DKD()]


@pytest.mark.parametrize("config", ALL, ids=lambda c: c.type_key)
def test_teacher_unchanged_student_copied_and_trained(config: KD) -> None:
    teacher, student = _convnet(8).train(), _convnet(4, seed=1)
    t_before, s_before = copy.deepcopy(teacher.state_dict()), copy.deepcopy(student.state_dict())
    grads = [p.requires_grad for p in teacher.parameters()]
    out = distill(student, teacher, _data(), config, epochs=2, lr=1e-2, progress=False)
    t_after = teacher.state_dict()
    assert all(torch.equal(t_before[k], t_after[k]) for k in t_before)  # incl. BN running stats
    assert teacher.training and [p.requires_grad for p in teacher.parameters()] == grads
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher._forward_hooks and not any(m._forward_hooks or m._forward_pre_hooks for m in teacher.modules())
    assert out is not student and all(torch.equal(s_before[k], v) for k, v in student.state_dict().items())
    assert not all(torch.equal(s_before[k], v) for k, v in out.state_dict().items())  # it learned
    assert set(out.state_dict()) == set(s_before)  # adapters are dropped
    assert not out.training and out.distill_report.config == config.to_dict()
    assert config_from_yaml(config.to_yaml()) == config


def test_inplace_trains_the_given_student() -> None:
    student = _convnet(4)
    out = distill(student, _convnet(8), _data(), KD(), epochs=1, progress=False, inplace=True)
    assert out is student


def test_transfer_set_is_labelled_by_the_teacher_and_mixed_in() -> None:
    class Seen(Callback):
        def __init__(self) -> None:
            self.steps = 0

        def on_step_end(self, ctx) -> None:  # noqa: ANN001
            self.steps += 1

    seen = Seen()
    extra = torch.randn(96, 1, 12)
    out = distill(_convnet(4), _convnet(8), _data(), KD(), epochs=2, transfer_data=extra, callbacks=[seen],
                    progress=False)
    r = out.distill_report
    assert (r.labelled_batches, r.transfer_batches) == (4, 3) and seen.steps == 2 * 7
    labelled_loader = DataLoader(TensorDataset(torch.randn(64, 1, 12), torch.zeros(64, dtype=torch.long)), batch_size=32)
    only_transfer = distill(_convnet(4), _convnet(8), None, DKD(), epochs=1, transfer_data=labelled_loader,
                              progress=False)  # a loader with labels: they are ignored
    assert only_transfer.distill_report.transfer_batches == 2


def test_a_transfer_set_alone_teaches_mnist1d() -> None:
    """No labels at all: 4,000 generated inputs labelled by the zoo CNN teach an MLP."""
    teacher = zoo.teacher("cnn1d-mnist1d", progress=False)
    test = data.load("mnist1d").test
    torch.manual_seed(0)
    student = zoo.model("mlp-mnist1d")
    transfer = mnist1d_transfer_loader(4000, seed=0, batch_size=64)
    out = distill(student, teacher, None, KD(), epochs=8, lr=1e-2, transfer_data=transfer, progress=False)
    assert evaluate(out, test) > 0.5  # chance is 0.1; the untrained student sits near it
    assert evaluate(student, test) < 0.2


def test_checkpoints_hold_student_and_adapters_not_teacher(tmp_path) -> None:  # noqa: ANN001
    distill(_convnet(4), _convnet(8), _data(), FeatureKD(), epochs=1, checkpoint_dir=tmp_path, progress=False)
    keys = set(load_checkpoint(tmp_path / "checkpoint.pt")["model"])
    assert any(k.startswith("student.") for k in keys) and any(k.startswith("term.adapters.") for k in keys)
    assert not any(k.startswith("teacher") for k in keys)


def test_mismatched_output_sizes_are_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"teacher outputs shape \(32, 5\) but the student \(32, 3\)"):
        distill(_convnet(4), _convnet(8, classes=5), _data(), KD(), epochs=1, progress=False)


def test_a_feature_path_that_names_no_module_lists_near_names() -> None:
    bad = FeatureKD(student_layers=("conv1",), teacher_layers=("4",))
    with pytest.raises(UnknownNameError, match=r"student \(FeatureKD.student_layers\) has no module 'conv1'; nearest"):
        distill(_convnet(4), _convnet(8), _data(), bad, epochs=1, progress=False)
    bad = AttentionKD(student_layers=("1",), teacher_layers=("44",))
    with pytest.raises(UnknownNameError, match=r"teacher \(AttentionKD.teacher_layers\) has no module '44'; nearest names: 4"):
        distill(_convnet(4), _convnet(8), _data(), bad, epochs=1, progress=False)


def test_other_bad_input() -> None:
    net = _convnet(4)
    with pytest.raises(ConfigError, match="same module"):
        distill(net, net, _data(), KD(), epochs=1, inplace=True, progress=False)
    with pytest.raises(ValueError, match="must pair up"):
        FeatureKD(student_layers=("1", "4"), teacher_layers=("4",))
    with pytest.raises(ValueError, match="alpha"):
        KD(alpha=1.5)
    with pytest.raises(ConfigError, match="attention transfer needs feature maps"):
        distill(_convnet(4), _convnet(8), _data(), AttentionKD(student_layers=("7:input",), teacher_layers=("4",)),
                  epochs=1, progress=False)
    with pytest.raises(ConfigError, match="needs train_data"):
        distill(_convnet(4), _convnet(8), None, KD(), epochs=1, progress=False)
    with pytest.raises(ConfigError, match="sets extra_loss itself"):
        distill(_convnet(4), _convnet(8), _data(), KD(), epochs=1, extra_loss=lambda c: 0, progress=False)
