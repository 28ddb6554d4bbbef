"""fit(): learning, determinism, losses, callbacks, argument errors, keep_best, progress."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from train_helpers import loaders, make_mlp, same_weights, separable

from torchslim.core.errors import ConfigError, UnknownNameError
from torchslim.train import Callback, EpochRecord, LossContext, TrainContext, TrainResult, fit


def test_learns_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64)
    y = torch.tensor(digits.target, dtype=torch.long)  # (1797,)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    x, y = x[order], y[order]
    train = DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=256)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    result = fit(model, train, epochs=5, val_data=val, lr=1e-2, progress=False)

    assert isinstance(result, TrainResult) and result.model is model
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < 0.3 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert result.history[0].val_metric < result.best_val
    assert result.best_val > 0.9 and result.final_val > 0.9
    assert result.best_epoch is not None and result.resumed_from is None
    rec = result.history[-1]
    assert isinstance(rec, EpochRecord) and rec.epoch == 5 and rec.seconds > 0 and rec.samples_per_s > 0
    assert 0 < rec.lr < 1e-2  # cosine has decayed the lr
    assert model.training  # the mode it came in with


def test_same_seed_gives_identical_weights() -> None:
    runs = []
    for seed in (7, 7, 8):
        model = make_mlp(seed=0)  # same initial weights; the fit seed drives shuffling and dropout
        train, _ = loaders()
        fit(model, train, epochs=2, seed=seed, progress=False)
        runs.append(model)
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


def test_constant_extra_loss_is_added_to_the_reported_loss() -> None:
    results = []
    for extra in (None, lambda ctx: torch.tensor(2.5)):
        model = make_mlp()
        train, _ = loaders()
        results.append(fit(model, train, epochs=2, extra_loss=extra, progress=False))
    plain, with_extra = results
    assert same_weights(plain.model, with_extra.model)  # a constant has no gradient
    for a, b in zip(plain.history, with_extra.history, strict=True):
        assert b.train_loss - a.train_loss == pytest.approx(2.5, abs=1e-5)


def test_extra_loss_penalty_drives_weights_to_zero() -> None:
    seen: list[LossContext] = []

    def l2(ctx: LossContext) -> torch.Tensor:
        seen.append(ctx)
        return sum((p ** 2).sum() for p in ctx.model.parameters())

    train, _ = loaders()
    sgd = dict(optimizer="sgd", momentum=0.0, lr=0.1, schedule="constant", progress=False)
    plain = fit(make_mlp(), train, epochs=3, **sgd).model
    penalised = fit(make_mlp(), train, epochs=3, extra_loss=l2, **sgd).model

    def norm(m: nn.Module) -> float:
        return float(sum(p.detach().abs().sum() for p in m.parameters()))

    assert norm(penalised) < 0.2 * norm(plain)
    ctx = seen[0]
    assert ctx.epoch == 1 and ctx.step == 0 and ctx.task_loss is not None and ctx.task_loss.requires_grad
    assert ctx.targets is not None and ctx.outputs.shape == (64, 2) and len(ctx.inputs) == 1


def test_transfer_set_without_targets_trains_on_extra_loss_alone() -> None:
    torch.manual_seed(1)
    teacher = nn.Linear(8, 2).requires_grad_(False)
    x, _ = separable()
    transfer = DataLoader(TensorDataset(x), batch_size=64, shuffle=True)  # items are (x,)
    val = [(x, teacher(x).argmax(1))]  # agreement with the teacher
    task_losses: list[torch.Tensor | None] = []

    def kd(ctx: LossContext) -> torch.Tensor:
        task_losses.append(ctx.task_loss)
        assert ctx.targets is None
        return F.mse_loss(ctx.outputs, teacher(*ctx.inputs))

    torch.manual_seed(2)
    student = nn.Linear(8, 2)
    result = fit(student, transfer, epochs=8, extra_loss=kd, val_data=val, lr=2e-2, progress=False)

    assert all(t is None for t in task_losses)
    assert result.history[-1].train_loss < 0.1 * result.history[0].train_loss
    assert result.final_val > 0.95

    bare = [x[i:i + 64] for i in range(0, 512, 64)]  # items that are bare tensors work too
    assert fit(nn.Linear(8, 2), bare, epochs=1, extra_loss=kd, progress=False).history


def test_unlabelled_data_needs_extra_loss_and_no_loss_fn() -> None:
    x, _ = separable()
    bare = [x[:64], x[64:128]]
    with pytest.raises(ConfigError, match="no targets.*extra_loss"):
        fit(nn.Linear(8, 2), bare, epochs=1, progress=False)
    with pytest.raises(ConfigError, match="loss_fn needs targets"):
        fit(nn.Linear(8, 2), bare, epochs=1, loss_fn=F.cross_entropy,
            extra_loss=lambda ctx: ctx.outputs.pow(2).mean(), progress=False)


class Counter(Callback):
    def __init__(self) -> None:
        self.calls = {"on_train_begin": 0, "on_step_end": 0, "on_epoch_end": 0, "on_train_end": 0}
        self.global_steps: list[int] = []
        self.records: list[EpochRecord] = []

    def on_train_begin(self, ctx: TrainContext) -> None:
        self.calls["on_train_begin"] += 1

    def on_step_end(self, ctx: TrainContext) -> None:
        self.calls["on_step_end"] += 1
        self.global_steps.append(ctx.global_step)

    def on_epoch_end(self, ctx: TrainContext) -> None:
        self.calls["on_epoch_end"] += 1
        assert ctx.record is not None
        self.records.append(ctx.record)

    def on_train_end(self, ctx: TrainContext) -> None:
        self.calls["on_train_end"] += 1


def test_callbacks_are_called_the_right_number_of_times() -> None:
    train, val = loaders()  # 384 samples / 64 = 6 steps per epoch
    counter = Counter()
    only_steps = SimpleNamespace(n=0)
    only_steps.on_step_end = lambda ctx: setattr(only_steps, "n", only_steps.n + 1)  # duck-typed
    result = fit(make_mlp(), train, epochs=3, val_data=val, callbacks=[counter, only_steps], progress=False)

    assert counter.calls == {"on_train_begin": 1, "on_step_end": 18, "on_epoch_end": 3, "on_train_end": 1}
    assert only_steps.n == 18
    assert counter.global_steps == list(range(1, 19))
    assert counter.records == result.history


def test_a_callback_can_stop_training() -> None:
    class StopAfterTwo(Callback):
        def on_epoch_end(self, ctx: TrainContext) -> None:
            ctx.stop = ctx.epoch == 2

    train, _ = loaders()
    result = fit(make_mlp(), train, epochs=5, callbacks=[StopAfterTwo()], progress=False)
    assert [r.epoch for r in result.history] == [1, 2]


def test_keep_best_restores_the_best_epoch_weights() -> None:
    scores = iter([0.5, 0.9, 0.6])  # one val batch per epoch: epoch 2 is best

    def scripted(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        return next(scores), 1

    snapshots: list[dict[str, torch.Tensor]] = []
    snap = SimpleNamespace(on_epoch_end=lambda ctx: snapshots.append(
        {k: v.clone() for k, v in ctx.model.state_dict().items()}))
    train, val = loaders()
    model = make_mlp()
    result = fit(model, train, epochs=3, val_data=val, metric=scripted, keep_best=True,
                 callbacks=[snap], progress=False)

    assert result.best_val == 0.9 and result.best_epoch == 2
    assert [r.val_metric for r in result.history] == [0.5, 0.9, 0.6]
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[2][k]) for k in final)


def test_tuple_and_logits_outputs_are_accepted() -> None:
    class TupleOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.fc(x), x

    class LogitsOut(TupleOut):
        def forward(self, x: torch.Tensor) -> SimpleNamespace:  # type: ignore[override]
            return SimpleNamespace(logits=self.fc(x))

    train, val = loaders()
    for model in (TupleOut(), LogitsOut()):
        result = fit(model, train, epochs=4, val_data=[(x, y) for x, y in val], lr=1e-2, progress=False)
        assert result.history[-1].train_loss < result.history[0].train_loss


def test_two_input_models() -> None:
    class TwoIn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            return self.a(x1) + self.b(x2)

    x, y = separable()
    data = [((x[i:i + 64, :4], x[i:i + 64, 4:]), y[i:i + 64]) for i in range(0, 512, 64)]
    result = fit(TwoIn(), data, epochs=5, lr=1e-2, progress=False)
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_max_grad_norm_clips_the_update() -> None:
    x, y = separable(n=64)
    model = nn.Linear(8, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, [(x, y)], epochs=1, optimizer="sgd", momentum=0.0, lr=1.0, schedule="constant",
        max_grad_norm=0.01, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("schedule", ["cosine", "constant", "step", "onecycle"])
def test_every_optimizer_and_schedule_trains(optimizer: str, schedule: str) -> None:
    train, _ = loaders()
    result = fit(make_mlp(dropout=0.0), train, epochs=3, optimizer=optimizer, schedule=schedule,
                 lr=0.05 if optimizer == "sgd" else 1e-2, warmup_steps=2 if schedule == "cosine" else 0,
                 weight_decay=1e-4, progress=False)
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_bad_arguments_raise_clear_errors() -> None:
    train, val = loaders()
    model = make_mlp()
    with pytest.raises(ConfigError, match="unknown optimizer 'lion'; known: adam, adamw, sgd") as e:
        fit(model, train, epochs=1, optimizer="lion", progress=False)
    assert isinstance(e.value, UnknownNameError)
    with pytest.raises(ConfigError, match="unknown schedule 'linear'; known: constant, cosine, onecycle, step"):
        fit(model, train, epochs=1, schedule="linear", progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        fit(model, train, epochs=0, progress=False)
    for lr in (0.0, -1e-3, float("nan")):
        with pytest.raises(ConfigError, match="lr"):
            fit(model, train, epochs=1, lr=lr, progress=False)
    with pytest.raises(ConfigError, match="empty"):
        fit(model, [], epochs=1, progress=False)
    with pytest.raises(ConfigError, match="empty"):
        fit(model, DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0).long())), epochs=1, progress=False)
    with pytest.raises(ConfigError, match="one-shot iterator"):
        fit(model, (b for b in train), epochs=1, progress=False)
    with pytest.raises(ConfigError, match="keep_best"):
        fit(model, train, epochs=1, keep_best=True, progress=False)
    with pytest.raises(ConfigError, match="warmup_steps"):
        fit(model, train, epochs=1, warmup_steps=6, progress=False)  # 6 steps in the whole run
    with pytest.raises(ConfigError, match="no trainable parameters"):
        fit(make_mlp().requires_grad_(False), train, epochs=1, progress=False)
    with pytest.raises(ConfigError, match="became nan"):
        fit(model, train, epochs=1, loss_fn=lambda o, t: o.sum() * float("nan"), progress=False)
    with pytest.raises(ConfigError, match="scalar"):
        fit(model, train, epochs=1, loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"), progress=False)


def test_unsized_data_needs_steps_per_epoch() -> None:
    x, y = separable()

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(zip(x, y, strict=True))

    stream = DataLoader(Stream(), batch_size=64)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        fit(make_mlp(), stream, epochs=1, progress=False)
    result = fit(make_mlp(), stream, epochs=2, steps_per_epoch=8, progress=False)
    assert len(result.history) == 2


def test_progress_prints_one_line_per_epoch_and_false_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    train, val = loaders()
    fit(make_mlp(), train, epochs=2, val_data=val, description="finetune", progress=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("finetune epoch 1/2  loss ") and " val " in lines[0] and "samples/s" in lines[1]
    fit(make_mlp(), train, epochs=2, val_data=val, progress=False)
    assert capsys.readouterr().out == ""
