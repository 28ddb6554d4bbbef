"""Checkpoints: resume equals an uninterrupted run, weights_only loading, mismatch errors,
atomic writes, callback state, main-process helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from train_helpers import loaders, make_mlp, same_weights

from torchslim.core.errors import ConfigError
from torchslim.train import Callback, TrainContext, fit, is_main_process, load_checkpoint


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Simulates a killed process: raises at the first step of ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_step_end(self, ctx: TrainContext) -> None:
        if ctx.epoch == self.epoch:
            raise Crash


def test_two_epochs_then_resume_to_four_equals_four_straight(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(schedule="constant", progress=False)  # a constant lr does not depend on epochs
    train, val = loaders()
    straight = fit(make_mlp(), train, epochs=4, val_data=val, **kw)

    first = fit(make_mlp(), train, epochs=2, val_data=val, checkpoint_dir=tmp_path, **kw)
    assert first.resumed_from is None and len(first.history) == 2
    model = make_mlp(seed=123)  # other initial weights: the checkpoint replaces them
    resumed = fit(model, train, epochs=4, val_data=val, checkpoint_dir=tmp_path, **kw)

    assert resumed.resumed_from == 2
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == first.history
    assert same_weights(model, straight.model, atol=1e-6)
    assert [r.val_metric for r in resumed.history] == [r.val_metric for r in straight.history]


def test_resume_after_a_crash_with_cosine_and_a_loader_generator(tmp_path: Path) -> None:
    train, val = loaders(generator=torch.Generator().manual_seed(5))
    straight = fit(make_mlp(), train, epochs=4, val_data=val, progress=False)

    with pytest.raises(Crash):
        fit(make_mlp(), train, epochs=4, checkpoint_dir=tmp_path, callbacks=[CrashAt(3)], progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    model = make_mlp()
    resumed = fit(model, train, epochs=4, val_data=val, checkpoint_dir=tmp_path, progress=False)

    assert resumed.resumed_from == 2
    assert same_weights(model, straight.model, atol=1e-6)
    assert resumed.history[-1].val_metric == straight.history[-1].val_metric
    assert resumed.history[-1].lr == pytest.approx(straight.history[-1].lr)


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    train, val = loaders()
    model = make_mlp()
    fit(model, train, epochs=2, val_data=val, keep_best=True, checkpoint_dir=tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)

    assert ck["epoch"] == 2 and ck["global_step"] == 12
    assert {"model", "optimizer", "scheduler", "history", "rng", "config", "best_model"} <= ck.keys()
    best = model.state_dict()  # keep_best restored the best weights: the checkpoint holds them too
    assert all(torch.equal(ck["best_model"][k], v) for k, v in best.items())
    assert ck["model"].keys() == best.keys()
    assert [h["epoch"] for h in ck["history"]] == [1, 2]
    assert isinstance(ck["rng"]["torch"], torch.Tensor) and isinstance(ck["rng"]["python"]["state"], torch.Tensor)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary files left


def test_mismatched_checkpoint_names_the_key(tmp_path: Path) -> None:
    train, _ = loaders()
    fit(make_mlp(hidden=16), train, epochs=1, checkpoint_dir=tmp_path, progress=False)

    with pytest.raises(ConfigError, match=r"'0\.weight' has shape \(16, 8\) in the checkpoint but \(32, 8\)"):
        fit(make_mlp(hidden=32), train, epochs=2, checkpoint_dir=tmp_path, progress=False)

    class Extra(nn.Sequential):
        pass

    bigger = Extra(*make_mlp(hidden=16), nn.Linear(2, 2))
    with pytest.raises(ConfigError, match=r"key '4\.weight' is missing"):
        fit(bigger, train, epochs=2, checkpoint_dir=tmp_path, progress=False)


def test_resume_refuses_hyperparameters_the_checkpoint_would_override(tmp_path: Path) -> None:
    train, _ = loaders()
    fit(make_mlp(), train, epochs=1, lr=1e-3, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lr=0.001.*lr=0.01.*resume=False"):
        fit(make_mlp(), train, epochs=2, lr=1e-2, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="optimizer='adam'"):
        fit(make_mlp(), train, epochs=2, optimizer="sgd", checkpoint_dir=tmp_path, progress=False)
    with pytest.warns(UserWarning, match="epochs 1 -> 2"):  # cosine over another length
        fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, progress=False)


def test_resume_false_starts_fresh_and_overwrites(tmp_path: Path) -> None:
    train, _ = loaders()
    fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, schedule="constant", progress=False)
    fresh = fit(make_mlp(), train, epochs=1, checkpoint_dir=tmp_path, schedule="constant", resume=False,
                progress=False)
    assert fresh.resumed_from is None and len(fresh.history) == 1
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_a_finished_run_resumes_to_nothing(tmp_path: Path) -> None:
    train, _ = loaders()
    done = fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, progress=False)
    model = make_mlp(seed=9)
    again = fit(model, train, epochs=2, checkpoint_dir=tmp_path, progress=False)
    assert again.resumed_from == 2 and again.history == done.history
    assert same_weights(model, done.model)


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, _ = loaders()
    fit(make_mlp(), train, epochs=1, checkpoint_dir=tmp_path, schedule="constant", progress=False)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def dying_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, schedule="constant", progress=False)
    monkeypatch.setattr(torch, "save", real_save)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_unreadable_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    train, _ = loaders()
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        fit(make_mlp(), train, epochs=1, checkpoint_dir=tmp_path, progress=False)
    torch.save({"model": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="not a torchslim training checkpoint"):
        fit(make_mlp(), train, epochs=1, checkpoint_dir=tmp_path, progress=False)


class Stateful(Callback):
    def __init__(self) -> None:
        self.steps = 0
        self.began_at: list[int] = []

    def on_train_begin(self, ctx: TrainContext) -> None:
        self.began_at.append(ctx.start_epoch)

    def on_step_end(self, ctx: TrainContext) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]


def test_callback_state_is_checkpointed_and_restored(tmp_path: Path) -> None:
    train, _ = loaders()
    fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, schedule="constant",
        callbacks=[Stateful()], progress=False)
    cb = Stateful()
    fit(make_mlp(), train, epochs=3, checkpoint_dir=tmp_path, schedule="constant", callbacks=[cb], progress=False)
    assert cb.steps == 18 and cb.began_at == [3]
    with pytest.raises(ConfigError, match=r"callbacks \['Stateful'\].*\[\]"):
        fit(make_mlp(), train, epochs=4, checkpoint_dir=tmp_path, schedule="constant", progress=False)


def test_is_main_process_without_a_process_group() -> None:
    assert is_main_process()
