"""The runner: the accuracy guard rolls back a destructive stage (alone, or together with the
unguarded stages before it); an interrupted run resumes after its last finished stage and ends
with the same model as an uninterrupted one; the result round-trips through JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import torchslim.report  # noqa: F401 - registers the report writers (as `import torchslim` does)
from torchslim.prune.unstructured import layer_sparsity
from torchslim.quant.fake_quant import quant_modules
from torchslim.recipe import Recipe, RunResult, run
from torchslim.recipe import stages as stages_module

SMALL = """\
name: small
model: {zoo: lenet300-mnist}
data: {name: mnist_5k, batch_size: 64, train_samples: 256, val_samples: 200, test_samples: 200}
budget: {max_accuracy_drop: 1.0}
measure: {runtime: torch, latency_seconds: 0}
output: {onnx: false, slim: false, report: [json]}
"""


def _recipe(stages: str) -> Recipe:
    return Recipe.from_yaml(SMALL + "stages:\n" + stages)


def test_guard_rolls_back_a_destructive_stage_and_its_group(tmp_path: Path) -> None:
    r = _recipe(
        "  - {type: random_prune, sparsity: 0.97, name: destroy}\n"
        "  - {type: random_prune, sparsity: 0.97, seed: 1, guard: false, name: destroy again}\n"
        "  - {type: finetune, epochs: 1, teacher: none, name: too little recovery}\n"
        "  - {type: int8_dynamic}\n"
    )
    result = run(r, out_dir=tmp_path, progress=False)
    status = [s.status for s in result.stages]
    assert status == ["rolled_back", "rolled_back", "rolled_back", "kept"]
    destroy, again, recovery, _ = result.stages
    assert destroy.drop_pt > 1.0 and "rolled back it" in destroy.note
    assert recovery.drop_pt > 1.0 and "rolled back stages 2, 3" in recovery.note
    assert "rolled back with stage 3" in again.note
    # the model the run ends with is int8 of the *original* (no pruning masks survived)
    assert result.model is not None and layer_sparsity(result.model) == {}
    assert len(quant_modules(result.model)) == 3
    assert result.budget_met and result.final_drop_pt <= 1.0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert RunResult.from_dict(saved).to_dict() == result.to_dict()
    assert (tmp_path / "report.json").is_file() and not (tmp_path / "model.onnx").exists()


class _Interrupt:
    """Stands in for ``quantize`` and raises KeyboardInterrupt, like Ctrl-C during the stage."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt


class _Spy:
    def __init__(self, fn: object) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self.fn(*args, **kwargs)  # type: ignore[operator]


RESUMABLE = (
    "  - {type: magnitude_prune, sparsity: 0.6, guard: false}\n"
    "  - {type: finetune, epochs: 1, lr: 0.0005}\n"
    "  - {type: int8_dynamic}\n"
)


def test_resume_continues_after_the_last_finished_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recipe.from_dict({**_recipe(RESUMABLE).to_dict(), "budget": {"max_accuracy_drop": 50.0}})
    with monkeypatch.context() as m:
        m.setattr(stages_module, "quantize", _Interrupt())
        with pytest.raises(KeyboardInterrupt):
            run(r, out_dir=tmp_path / "a", progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "state").glob("stage-??")) == ["stage-00", "stage-01"]

    prune_spy, distill_spy = _Spy(stages_module.prune), _Spy(stages_module.distill)
    monkeypatch.setattr(stages_module, "prune", prune_spy)
    monkeypatch.setattr(stages_module, "distill", distill_spy)
    resumed = run(r, out_dir=tmp_path / "a", progress=False)
    assert [s.resumed for s in resumed.stages] == [True, True, False]
    assert prune_spy.calls == 0 and distill_spy.calls == 0  # nothing was redone
    assert [s.status for s in resumed.stages] == ["kept", "kept", "kept"]
    assert "checked with stage 2" in resumed.stages[0].note

    straight = run(r, out_dir=tmp_path / "b", progress=False)
    assert prune_spy.calls == 1 and distill_spy.calls == 1
    x = next(iter(straight_loader()))[0]
    with torch.no_grad():
        assert torch.allclose(resumed.model(x), straight.model(x), atol=1e-5)
    assert resumed.final_val == pytest.approx(straight.final_val)
    assert layer_sparsity(resumed.model) == pytest.approx(layer_sparsity(straight.model))


def straight_loader() -> list[tuple[torch.Tensor, torch.Tensor]]:
    from torchslim import data

    x = data.example_batch("mnist_5k", 16)
    return [(x, torch.zeros(16, dtype=torch.long))]


def test_a_changed_stage_reruns_from_there(tmp_path: Path) -> None:
    first = run(_recipe("  - {type: magnitude_prune, sparsity: 0.5}\n  - {type: int8_dynamic}\n"),
                out_dir=tmp_path, progress=False)
    assert [s.resumed for s in first.stages] == [False, False]
    second = run(_recipe("  - {type: magnitude_prune, sparsity: 0.5}\n  - {type: finetune, epochs: 1}\n"),
                 out_dir=tmp_path, progress=False)
    assert [s.resumed for s in second.stages] == [True, False]
    assert second.stages[1].type == "finetune"
