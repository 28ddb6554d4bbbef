"""The recipe schema: every example recipe round-trips; a broken recipe is refused before any
work, with the key and the YAML line of each problem; YAML is loaded safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchslim.recipe import DEFAULT_RECIPE, Recipe, RecipeError, run, stage_types
from torchslim.recipe import runner as runner_module
from torchslim.recipe.schema import apply_overrides

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
GOOD = """\
name: tiny
model:
  zoo: lenet300-mnist
data:
  name: mnist_5k
stages:
  - type: magnitude_prune
    sparsity: 0.5
  - type: int8_dynamic
"""


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_example_recipes_round_trip(path: Path) -> None:
    r = Recipe.load(path)
    again = Recipe.from_yaml(r.to_yaml(), base_dir=path.parent)
    assert again == r
    assert again.to_dict() == r.to_dict()
    assert [s.type for s in again.stages] == [s.type for s in r.stages]


def test_there_are_the_example_recipes_the_issue_asks_for() -> None:
    names = {p.stem for p in RECIPES}
    assert {"lenet5_demo", "lenet300_deep_compression", "minilm_int8", "resnet_prune_kd_int8"} <= names


def test_the_demo_file_is_the_default_recipe() -> None:
    file = Recipe.load(Path(__file__).parents[2] / "recipes" / "lenet5_demo.yaml")
    assert Recipe.from_yaml(DEFAULT_RECIPE) == file


def test_every_family_contributes_stages() -> None:
    names = set(stage_types())
    assert {"structured_prune", "magnitude_prune", "gradual_prune", "int8_static", "int8_dynamic", "qat",
            "weight_sharing", "low_rank", "depthwise_separable", "kd", "dkd", "finetune", "deep_compression"} <= names


def test_stage_fields_and_options_are_kept_apart() -> None:
    r = Recipe.from_yaml(GOOD + "  - {type: finetune, epochs: 2, guard: false, name: recover}\n")
    stage = r.stages[-1]
    assert stage.config.epochs == 2 and stage.options.guard is False and stage.label == "recover"
    assert stage.to_dict() == {"type": "finetune", "epochs": 2, "name": "recover", "guard": False}


def _problems(text: str, tmp_path: Path | None = None) -> list[str]:
    with pytest.raises(RecipeError) as e:
        Recipe.from_yaml(text, source="r.yaml", base_dir=tmp_path or ".")
    return [p.text("r.yaml") for p in e.value.problems]


def test_wrong_type_names_key_and_line() -> None:
    probs = _problems(GOOD.replace("sparsity: 0.5", "sparsity: half"))
    assert len(probs) == 1 and probs[0].startswith("r.yaml:8: stages[0].sparsity:")


def test_unknown_keys_are_refused_with_their_lines() -> None:
    text = GOOD.replace("name: tiny", "name: tiny\nbudgett: {max_accuracy_drop: 1}").replace(
        "sparsity: 0.5", "sparsity: 0.5\n    sparsty: 0.6")
    probs = _problems(text)
    assert any(p.startswith("r.yaml:2: budgett:") for p in probs), probs
    assert any(p.startswith("r.yaml:10: stages[0].sparsty: unknown key") and "sparsity" in p for p in probs), probs


def test_unknown_stage_type_lists_the_known_ones() -> None:
    (p,) = _problems(GOOD.replace("type: int8_dynamic", "type: int9_dynamic"))
    assert p.startswith("r.yaml:9: stages[1].type:") and "int8_dynamic" in p and "structured_prune" in p


def test_missing_files_and_unknown_names_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("zoo: lenet300-mnist", "factory: torch.nn:Identity\n  weights: missing.safetensors")
    (p,) = _problems(text, tmp_path)
    assert p.startswith("r.yaml:4: model.weights: file not found") and "missing.safetensors" in p
    (p,) = _problems(GOOD.replace("lenet300-mnist", "lenet301-mnist"))
    assert p.startswith("r.yaml:3: model.zoo:") and "lenet300-mnist" in p
    (p,) = _problems(GOOD.replace("zoo: lenet300-mnist", "hf: no/such/folder").replace("name: mnist_5k", "text: sentences"), tmp_path)
    assert p.startswith("r.yaml:3: model.hf: no Hugging Face model folder")
    (p,) = _problems(GOOD.replace("zoo: lenet300-mnist", "factory: no_such_pkg.models:build"))
    assert p.startswith("r.yaml:3: model.factory: cannot import 'no_such_pkg.models'")


def test_yaml_tags_and_repeated_keys_are_refused() -> None:
    (p,) = _problems(GOOD.replace("name: tiny", "name: !!python/object/apply:os.system [ls]"))
    assert p.startswith("r.yaml:1:") and "tags that build Python objects are refused" in p
    (p,) = _problems(GOOD.replace("sparsity: 0.5", "sparsity: 0.5\n    sparsity: 0.6"))
    assert p.startswith("r.yaml:9: stages[0].sparsity: given twice (first on line 8)")


def test_a_broken_recipe_is_rejected_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the workload must not be built for a broken recipe")

    monkeypatch.setattr(runner_module, "build_workload", no_work)
    path = tmp_path / "broken.yaml"
    path.write_text(GOOD.replace("sparsity: 0.5", "sparsity: 1.5"))
    with pytest.raises(RecipeError, match=r"broken.yaml:8: stages\[0\]\.sparsity: sparsity must be in \[0, 1\)"):
        run(path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_overrides_set_dotted_keys_and_are_validated() -> None:
    r = Recipe.from_yaml(GOOD, overrides={"stages.0.sparsity": 0.25, "data.val_samples": 100})
    assert r.stages[0].config.sparsity == 0.25 and r.data.val_samples == 100
    with pytest.raises(RecipeError, match="no list item 5"):
        apply_overrides({"stages": []}, {"stages.5.epochs": 1})
    with pytest.raises(RecipeError, match=r"stages\[0\]\.sparsity"):
        Recipe.from_yaml(GOOD, overrides={"stages.0.sparsity": -1})
