"""The Distiller: a student, its loss term (with any learnable adapters) and a frozen teacher,
packaged as one module that :func:`torchslim.train.fit` trains.

``Distiller.forward`` is the student's forward; feature hooks record the layers the term reads.
Its :attr:`~Distiller.extra_loss` runs the teacher (eval mode, no gradients) on the same batch
and returns the term's loss. The teacher is *not* a submodule: its parameters are never in the
optimizer, the state dict or the checkpoints.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.distill.configs import FeatureKD
    >>> from torchslim.distill.distiller import Distiller
    >>> from torchslim.train import fit
    >>> teacher = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    >>> d = Distiller(student, teacher, FeatureKD(), example=data[0])
    >>> _ = fit(d, data, epochs=1, extra_loss=d.extra_loss, progress=False)
    >>> d.close(); sorted(n for n, _ in d.named_children())
    ['student', 'term']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchslim.core.config import Config, handler_for
from torchslim.core.errors import ConfigError
from torchslim.core.hooks import FeatureHooks
from torchslim.core.inputs import batch_of, first_tensor
from torchslim.distill import terms  # noqa: F401 - registers the terms as handlers
from torchslim.distill.terms import Term
from torchslim.train import LossContext
from torchslim.train.kd import check_logits, device_of, teacher_forward


class DistillLoss:
    """The ``extra_loss`` of a :class:`Distiller` (``task_weight`` tells ``fit`` how much task
    loss to keep)."""

    def __init__(self, distiller: Distiller) -> None:
        self.distiller = distiller

    @property
    def task_weight(self) -> float:
        return self.distiller.term.task_weight

    def __call__(self, ctx: LossContext) -> torch.Tensor:
        return self.distiller.loss(ctx)


class Distiller(nn.Module):
    """Student + loss term (+ adapters) + an unregistered, frozen teacher.

    ``example`` is one training item (``(x, y)`` or ``x``): both models run on it once, in
    eval mode, to check that their outputs match in shape and to size the adapters.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, config: Config, example: Any) -> None:
        super().__init__()
        if student is teacher:
            raise ConfigError("distill: the student and the teacher are the same module; pass a copy as the student")
        shared = {id(p) for p in teacher.parameters()} & {id(p) for p in student.parameters()}
        if shared:
            raise ConfigError(f"distill: student and teacher share {len(shared)} parameter tensors; the teacher must stay frozen")
        self.student = student
        self.term: Term = handler_for(config, "distill")(config, student, teacher)
        object.__setattr__(self, "teacher", teacher)  # not a submodule: frozen, not checkpointed
        name = type(config).__name__
        self._s_hooks = FeatureHooks(student, self.term.student_paths, f"student ({name}.student_layers)")
        self._t_hooks = FeatureHooks(teacher, self.term.teacher_paths, f"teacher ({name}.teacher_layers)")
        self.extra_loss = DistillLoss(self)
        try:
            self._probe(example)
        except Exception:
            self.close()
            raise

    def _probe(self, example: Any) -> None:
        inputs, _ = batch_of(example)
        device = device_of(self.student)
        inputs = tuple(t.to(device) for t in inputs)
        was_training = self.student.training
        self.student.eval()
        try:
            with torch.no_grad():
                s_logits = first_tensor(self.student(*inputs))
                t_logits = first_tensor(teacher_forward(self.teacher, inputs))
        finally:
            self.student.train(was_training)
        check_logits(s_logits, t_logits, "distill")
        self.term.build(self._s_hooks.take(), self._t_hooks.take())

    def forward(self, *inputs: Any) -> Any:
        return self.student(*inputs)

    def loss(self, ctx: LossContext) -> torch.Tensor:
        """The term's loss for the batch ``fit`` just ran the student on."""
        s_features = self._s_hooks.take() if self.term.student_paths else []
        if not self.term.needs_teacher(ctx.targets is not None):
            return ctx.outputs.new_zeros(())
        t_logits = first_tensor(teacher_forward(self.teacher, ctx.inputs))  # (B, classes)
        t_features = self._t_hooks.take() if self.term.teacher_paths else []
        return self.term(ctx.outputs, t_logits, s_features, t_features, ctx.targets, ctx.epoch)

    def close(self) -> None:
        """Remove the feature hooks from both models (idempotent)."""
        self._s_hooks.remove()
        self._t_hooks.remove()
