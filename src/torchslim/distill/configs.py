"""Distillation configs: which loss the student learns the teacher with. Data and models are
arguments of :func:`torchslim.distill.distill`, never fields here.

Every loss is added to the task loss of labelled batches; an unlabelled (transfer-set) batch
has the teacher as its only target. Feature layers are module paths (``"layer2.1"``, as in
``named_modules()``; ``"fc3:input"`` is the input of ``fc3``), paired in order.

Example:
    >>> from torchslim.distill.configs import KD, DKD
    >>> KD().to_dict()
    {'type': 'kd', 'temperature': 4.0, 'alpha': 0.9}
    >>> DKD(beta=2.0).beta
    2.0
"""

from __future__ import annotations

from pydantic import Field, model_validator

from torchslim.core.config import Config


class _LogitKD(Config, abstract=True):
    """Logit distillation settings shared by the losses built on it."""

    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.9, ge=0, le=1)


class KD(_LogitKD):
    """Logit distillation (Hinton et al., 2015): on a labelled batch
    ``(1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)``; on an unlabelled batch the
    soft term alone.

    Example:
        >>> KD(temperature=2.0, alpha=0.5).alpha
        0.5
    """


class _Layers(_LogitKD, abstract=True):
    """Student and teacher module paths, paired in order (empty: a default pair)."""

    student_layers: tuple[str, ...] = ()
    teacher_layers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _paired(self) -> _Layers:
        if len(self.student_layers) != len(self.teacher_layers):
            raise ValueError(
                f"student_layers ({len(self.student_layers)}) and teacher_layers "
                f"({len(self.teacher_layers)}) must pair up one to one"
            )
        return self


class FeatureKD(_Layers):
    """Feature hints (FitNets, Romero et al., 2015) on top of logit KD: each student feature
    goes through a learnable adapter (1x1 conv for feature maps of the same rank, else a linear
    map of the flattened features; average-pooled to the teacher's spatial size) and is
    regressed onto the teacher's with mean squared error, times ``weight``. The default pair
    is the input of each model's last Linear layer (the penultimate representation). The
    adapters train with the student and are dropped afterwards.

    Example:
        >>> FeatureKD(student_layers=("fc2",), teacher_layers=("conv3",)).weight
        1.0
    """

    weight: float = Field(default=1.0, ge=0)


class AttentionKD(_Layers):
    """Attention transfer (Zagoruyko & Komodakis, 2017) on top of logit KD: the spatial map
    ``mean_c |F|^p`` of each feature map (B, C, *spatial), flattened and L2-normalised, matched
    between student and teacher; ``weight / 2 * mean squared difference`` per pair (the paper's
    beta = 1000). Maps of different sizes are average-pooled to the smaller one. The default
    pair is the output of each model's last convolution.

    Example:
        >>> AttentionKD().weight
        1000.0
    """

    weight: float = Field(default=1000.0, ge=0)
    p: float = Field(default=2.0, gt=0)


class DKD(Config):
    """Decoupled KD (Zhao et al., 2022): ``ce_weight * CE + alpha * TCKD + beta * NCKD``, where
    TCKD matches the binary target-vs-rest probabilities and NCKD the distribution over the
    non-target classes, both at temperature ``T`` and scaled by ``T^2``. The KD part ramps up
    linearly over ``warmup_epochs``. On unlabelled batches the teacher's top class is the target
    and there is no CE term.

    Example:
        >>> DKD().to_dict()["beta"]
        8.0
    """

    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=1.0, ge=0)
    beta: float = Field(default=8.0, ge=0)
    ce_weight: float = Field(default=1.0, ge=0)
    warmup_epochs: int = Field(default=0, ge=0)
