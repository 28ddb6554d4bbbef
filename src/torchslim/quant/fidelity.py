"""How faithful a quantized model stays to float, measured on data: the latency gate's accuracy guard.

Two figures against the float model's outputs on the same inputs (the calibration data):

- ``agreement``: the fraction of samples whose top-1 class is the same as float's, for
  classifier-shaped outputs (2-D ``(B, C)`` with ``C >= 2``); None for other outputs
  (embeddings, hidden states), where it means nothing;
- ``rel_err``: the relative output error ``||y - y_float|| / ||y_float||`` over all samples.

:func:`accept` decides whether a candidate (a faster variant the gate may pick instead of the
static int8 model the config describes) is as accurate as that reference: at most
``agree_tol`` (a fraction of the samples, 0.2% by default; fewer than one sample allows none)
more top-1 disagreements with float, and a relative error at most ``rel_factor`` (1.5x) the
reference's. The first is what a classifier's user sees; the second bounds how far the raw
outputs move (and is the only test for outputs that are not class scores).

Example:
    >>> import torch
    >>> from torchslim.quant.fidelity import accept, fidelity
    >>> ref = [torch.tensor([[2.0, 1.0], [0.0, 1.0]])]
    >>> base = fidelity([torch.tensor([[1.9, 1.0], [0.1, 1.0]])], ref)
    >>> base.agreement, round(base.rel_err, 3)
    (1.0, 0.058)
    >>> accept(fidelity([torch.tensor([[1.0, 1.9], [0.1, 1.0]])], ref), base)[0]  # top-1 flips, error grows
    False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

AGREE_TOL = 0.002  # extra top-1 disagreements allowed, as a fraction of the samples
REL_FACTOR = 1.5  # relative output error allowed, as a multiple of the reference's


@dataclass(frozen=True)
class Fidelity:
    """``samples`` compared; top-1 ``agreement`` with float (None: not a classifier output);
    ``rel_err``: relative output error against float."""

    samples: int
    agreement: float | None
    rel_err: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (rounded)."""
        d = asdict(self)
        d["rel_err"] = round(self.rel_err, 6)
        d["agreement"] = None if self.agreement is None else round(self.agreement, 6)
        return d

    def __str__(self) -> str:
        top1 = "" if self.agreement is None else f"top-1 agreement {100 * self.agreement:.2f}%, "
        return f"{top1}relative error {self.rel_err:.4g} on {self.samples} samples"


def _classifier(t: torch.Tensor) -> bool:
    return t.dim() == 2 and t.shape[1] >= 2


def fidelity(outputs: Sequence[torch.Tensor], references: Sequence[torch.Tensor]) -> Fidelity:
    """Compare a model's ``outputs`` with float's ``references`` (one tensor per batch each,
    same shapes).

    Example:
        >>> import torch
        >>> fidelity([torch.ones(3, 4)], [torch.ones(3, 4)])
        Fidelity(samples=3, agreement=1.0, rel_err=0.0)
    """
    if len(outputs) != len(references) or not outputs:
        raise ValueError(f"fidelity needs one output per reference batch, got {len(outputs)} and {len(references)}")
    err = ref = 0.0
    agree = samples = 0
    classifier = all(_classifier(r) for r in references)
    for y, r in zip(outputs, references, strict=True):
        y, r = y.detach().float(), r.detach().float()
        if y.shape != r.shape:
            raise ValueError(f"fidelity: output shape {tuple(y.shape)} differs from float's {tuple(r.shape)}")
        err += float((y - r).pow(2).sum())
        ref += float(r.pow(2).sum())
        samples += int(r.shape[0]) if r.dim() > 0 else 1
        if classifier:
            agree += int((y.argmax(1) == r.argmax(1)).sum())
    rel = (err / ref) ** 0.5 if ref > 0 else err**0.5
    return Fidelity(samples, agree / samples if classifier else None, rel)


def accept(cand: Fidelity, base: Fidelity, agree_tol: float = AGREE_TOL, rel_factor: float = REL_FACTOR) -> tuple[bool, str]:
    """Whether ``cand`` is as accurate as ``base`` (see the module docstring), and why.

    Example:
        >>> accept(Fidelity(500, 0.998, 0.0058), Fidelity(500, 0.998, 0.0042))
        (True, 'as accurate as the reference')
        >>> accept(Fidelity(500, 0.99, 0.0042), Fidelity(500, 0.998, 0.0042))[1]
        'top-1 agreement with float 99.00% < 99.80% of the reference (4 more disagreements, 1 allowed)'
    """
    if cand.rel_err > rel_factor * base.rel_err + 1e-9:
        return False, f"relative error {cand.rel_err:.4g} > {rel_factor}x the reference's {base.rel_err:.4g}"
    if cand.agreement is not None and base.agreement is not None:
        n = cand.samples
        extra = round((base.agreement - cand.agreement) * n)
        allowed = int(agree_tol * n + 1e-9)
        if extra > allowed:
            return False, (f"top-1 agreement with float {100 * cand.agreement:.2f}% < {100 * base.agreement:.2f}% of the "
                           f"reference ({extra} more disagreements, {allowed} allowed)")
    return True, "as accurate as the reference"


__all__ = ["AGREE_TOL", "REL_FACTOR", "Fidelity", "accept", "fidelity"]
