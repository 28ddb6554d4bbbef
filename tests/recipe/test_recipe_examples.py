"""Every recipe in recipes/ runs, in a reduced form (fewer samples and epochs, no timing; the
ResNet untrained, MiniLM replaced by a tiny BERT saved as a local Hugging Face folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import torchslim.report  # noqa: F401 - registers the report writers (as `import torchslim` does)
from torchslim.recipe import run

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL_DATA = {"data.train_samples": 256, "data.val_samples": 100, "data.test_samples": 100, "measure.latency_seconds": 0}


def _run(name: str, tmp_path: Path, overrides: dict[str, Any]) -> Any:
    return run(RECIPES / name, out_dir=tmp_path, overrides={**SMALL_DATA, **overrides}, progress=False)


def test_lenet5_demo_recipe(tmp_path: Path) -> None:
    result = _run("lenet5_demo.yaml", tmp_path, {"stages.1.epochs": 1, "stages.2.gate": None, "budget.max_accuracy_drop": 100})
    prune, finetune, int8 = result.stages
    assert [s.status for s in result.stages] == ["kept", "kept", "kept"]
    assert prune.measured.macs < 0.5 * result.baseline.macs  # channels really removed
    assert finetune.val > prune.val  # distillation recovers what pruning lost
    assert int8.measured.bytes < 0.5 * finetune.measured.bytes  # int8 weights in the ONNX file
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.slim").is_file()
    assert result.artifact_bytes is not None and result.artifact_bytes < 0.3 * result.baseline_torch.bytes


def test_deep_compression_recipe(tmp_path: Path) -> None:
    result = _run("lenet300_deep_compression.yaml", tmp_path, {
        "stages.0.steps": 1, "stages.0.retrain_epochs": 1, "stages.0.share_epochs": 1, "budget.max_accuracy_drop": 100})
    (stage,) = result.stages
    assert stage.status == "kept" and stage.type == "deep_compression"
    assert result.final.params_nonzero < 0.15 * result.baseline.params_nonzero  # 92% pruned
    assert result.artifact_bytes is not None and result.artifact_bytes < result.baseline_torch.bytes / 15
    again = _run("lenet300_deep_compression.yaml", tmp_path, {  # the same recipe again: resumed from the saved stage
        "stages.0.steps": 1, "stages.0.retrain_epochs": 1, "stages.0.share_epochs": 1, "budget.max_accuracy_drop": 100})
    assert [s.resumed for s in again.stages] == [True]
    x = torch.rand(8, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(again.model(x), result.model(x))


def test_resnet_prune_kd_int8_recipe(tmp_path: Path) -> None:
    result = _run("resnet_prune_kd_int8.yaml", tmp_path, {
        "model.trained": False, "stages.1.epochs": 1, "stages.2.gate": None, "budget.max_accuracy_drop": 100,
        "data.train_samples": 128, "data.val_samples": 64, "data.test_samples": 64})
    assert [s.type for s in result.stages] == ["structured_prune", "kd", "int8_static"]
    assert all(s.status == "kept" for s in result.stages)
    assert result.final.macs < 0.5 * result.baseline.macs
    assert (tmp_path / "report.html").is_file()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")
    from torchslim.zoo.minilm import minilm_folder

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def test_minilm_int8_recipe_on_a_local_hf_folder(tmp_path: Path, tiny_bert: Path) -> None:
    result = _run("minilm_int8.yaml", tmp_path, {
        "model": {"hf": str(tiny_bert)}, "data.train_samples": 16, "data.val_samples": 16, "data.test_samples": 16,
        "data.max_length": 16, "data.batch_size": 8, "measure.batch_size": 8, "measure.threads": 1})
    (stage,) = result.stages
    assert result.metric == "cosine" and result.baseline_val == pytest.approx(1.0, abs=1e-4)
    assert stage.status == "kept" and 0.9 < stage.val <= 1.0 + 1e-6
