"""Text workloads: a sentence encoder around a Hugging Face model, varied English sentences,
and the cosine metric that compares a compressed encoder's embeddings with the original's.

Example:
    >>> from torchslim.recipe.text import sentences
    >>> len(sentences(50)), len(set(sentences(50)))
    (50, 50)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchslim.core.errors import MissingPackageError

SUBJECTS = ["The cat", "A young engineer", "Our team", "The old bridge", "My neighbour", "The market",
            "A small startup", "The orchestra", "The river", "This recipe", "The mayor", "A tired pilot"]
VERBS = ["quietly crossed", "announced", "repaired", "painted", "ignored", "celebrated", "measured",
         "described", "rebuilt", "sold", "questioned", "forgot"]
OBJECTS = ["the wooden fence at dawn.", "a new library for phones.", "the broken violin.",
           "three hundred tickets before noon.", "the results of the election.", "an enormous cake.",
           "the flooded basement after the storm.", "a poem about distant mountains.",
           "the quarterly figures.", "its plans to expand abroad.", "the map of the old city.",
           "a letter nobody had read."]
TAILS = ["", " Nobody expected it.", " It took all week.", " Everyone agreed."]


def sentences(n: int, offset: int = 0) -> list[str]:
    """``n`` distinct sentences from templates (subject x verb x object x tail), starting at
    ``offset`` (so train, val and test take disjoint ones)."""
    out = []
    for i in range(offset, offset + n):
        s, v = SUBJECTS[i % 12], VERBS[(i // 12) % 12]
        o, t = OBJECTS[(i * 5 + i // 144) % 12], TAILS[(i // 144) % 4]
        out.append(f"{s} {v} {o}{t}")
    return out


class SentenceEncoder(nn.Module):
    """``(input_ids, attention_mask) -> (B, D)``: mean-pooled, L2-normalised embeddings of a
    Hugging Face encoder's last hidden state (the sentence-transformers recipe)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        w = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return F.normalize((hidden * w).sum(1) / w.sum(1).clamp_min(1.0), dim=-1)  # (B, D)


def cosine(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
    """Sum of cosine similarities between output and target embeddings, and the count."""
    return float(F.cosine_similarity(outputs.float(), targets.float(), dim=-1).sum()), int(outputs.shape[0])


def load_hf(folder: str | Path) -> tuple[nn.Module, Any]:
    """``(SentenceEncoder, tokenizer)`` from a local Hugging Face folder, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        transformers = importlib.import_module("transformers")  # optional: only for hf models
    except ImportError:
        raise MissingPackageError("transformers", "a Hugging Face model in a recipe", extra="minilm") from None
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return SentenceEncoder(model.eval()).eval(), tokenizer


@torch.no_grad()
def text_loader(model: nn.Module, tokenizer: Any, texts: list[str], *, max_length: int, batch_size: int,
                shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Batches of ``((input_ids, attention_mask), reference embedding)``: the references are
    ``model``'s own embeddings, so the metric is agreement with the original model."""
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    model.eval()
    refs = torch.cat([model(ids[i:i + 64], mask[i:i + 64]) for i in range(0, len(texts), 64)])
    dataset = TensorDataset(ids, mask, refs)
    gen = torch.Generator().manual_seed(seed)

    def collate(items: list[tuple[torch.Tensor, ...]]) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        i, m, r = (torch.stack(t) for t in zip(*items, strict=True))
        return (i, m), r

    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate)
