"""Models and data the pruning benchmark builds itself: a ResNet-18 and a MobileNet-v1 for
larger inputs (random weights; latency does not depend on them), two small blocks for the
coverage table, and real English sentences for MiniLM (from Python's own documentation).

Not a benchmark itself (``benchmarks/__main__.py`` skips modules whose name starts with ``_``).
"""

from __future__ import annotations

import importlib
import inspect
import random
import re

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.zoo.resnet import BasicBlock


class ResNet18(nn.Module):
    """ResNet-18 for 3x64x64 inputs: stride-2 3x3 stem, 4 stages of 2 BasicBlocks (64-512)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(c, w, 2 if i else 1), BasicBlock(w, w)]
            c = w
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 64, 64)
        return self.head(self.layers(self.stem(x)))  # (B, classes)


def _cbr(i: int, o: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o), nn.ReLU6())


class MobileNetV1(nn.Module):
    """MobileNet-v1 (width 1.0): 13 depthwise 3x3 + pointwise 1x1 blocks, 32-1024 channels."""

    CFG = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        layers, c = [_cbr(3, 32, 3, 2)], 32
        for o, stride in self.CFG:
            layers += [_cbr(c, c, 3, stride, groups=c), _cbr(c, o, 1)]
            c = o
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 128, 128)
        return self.head(self.features(x))  # (B, classes)


def random_bn(model: nn.Module) -> nn.Module:
    """Random BatchNorm scales and statistics, so magnitude criteria see varied channels."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen) + 0.5
            m.running_var = torch.rand(m.num_features, generator=gen) + 0.5
    return model.eval()


DOC_MODULES = ("argparse", "asyncio", "calendar", "collections", "concurrent.futures", "configparser", "contextlib",
               "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum", "fractions", "ftplib",
               "functools", "gettext", "glob", "gzip", "heapq", "html.parser", "http.client", "inspect", "io",
               "ipaddress", "itertools", "json", "locale", "logging", "os", "pathlib", "pdb", "pickle", "platform",
               "pprint", "queue", "random", "sched", "selectors", "shutil", "smtplib", "socket", "sqlite3",
               "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
               "tokenize", "traceback", "typing", "unittest", "urllib.request", "uuid", "warnings", "zipfile")


def sentences() -> list[str]:
    """Real English sentences from the docstrings of Python's standard library (deterministic
    for a Python version), shuffled with a fixed seed."""
    seen: dict[str, None] = {}
    for name in DOC_MODULES:
        mod = importlib.import_module(name)
        objs = [mod, *[o for _, o in sorted(vars(mod).items()) if (inspect.isfunction(o) or inspect.isclass(o))
                       and getattr(o, "__module__", "") == mod.__name__]]
        for para in "\n\n".join(inspect.getdoc(o) or "" for o in objs).split("\n\n"):
            for s in re.split(r"(?<=[.!?])\s+", " ".join(para.split())):
                if 8 <= len(s.split()) <= 40 and s[0].isupper() and s.endswith(".") and not re.search(r"[<>{}\[\]=_`|\\]|\(\)", s):
                    seen[s] = None
    out = list(seen)
    random.Random(0).shuffle(out)
    return out


class MHABlock(nn.Module):
    """nn.MultiheadAttention + FFN on (B, T, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 32)
        h = x + self.attn(x, x, x, need_weights=False)[0]
        return self.fc((h + self.ffn(h)).mean(1))  # (B, 3)


class Decoder(nn.Module):
    """GroupNorm, a grouped conv and a transposed conv (a small U-Net-style decoder)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 32, 3, padding=1, groups=4))
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.out = nn.Conv2d(16, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        return self.out(F.silu(self.up(self.enc(x))))  # (B, 3, H, W)
