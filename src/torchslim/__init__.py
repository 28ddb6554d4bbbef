"""torchslim: make trained PyTorch models smaller and faster, measured on the real runtime.

The public API (verbs return new results and leave their inputs untouched)::

    import torchslim as slim
    small = slim.prune(model, slim.StructuredPrune(sparsity=0.5), example_inputs=x)
    q = slim.quantize(small, slim.Int8Static(), calibration=loader)
    stud = slim.distill(student, teacher, train_loader, slim.KD(temperature=4.0), epochs=5)
    lr = slim.factorize(model, slim.LowRank(energy=0.95))
    m = slim.measure(q, example_inputs=x, data=test_loader, runtime="onnxruntime")
    slim.compare({"fp32": m, "other": m2})
    slim.export(model, "model.onnx", example_inputs=x)
    slim.save(q, "model.slim"); q2 = slim.load("model.slim", model=fresh_instance)
    result = slim.run("recipes/lenet5_demo.yaml")      # the pipeline; slim.auto(...) searches

Subpackages: ``torchslim.data`` (bundled real data), ``torchslim.zoo`` (reference models and
teachers), ``torchslim.train`` (the training loop), ``torchslim.core`` (configs, targets).
Note: ``torchslim.measure`` and ``torchslim.export`` name the functions; their modules stay
importable as ``from torchslim.measure import ...``.
"""

from __future__ import annotations

__version__ = "0.1.0"

import torchslim.report  # noqa: F401, E402 - registers the html/markdown/json report writers
from torchslim.arch import (
    DepthwiseSeparable,
    LowRank,
    depth_student,
    factorize,
    fold_batchnorm,
    replace_depthwise,
    width_student,
)
from torchslim.core import Config, Target, config_from_dict, config_from_yaml
from torchslim.core.errors import (
    ConfigError,
    InputError,
    MissingPackageError,
    TorchslimError,
    UnknownNameError,
)
from torchslim.distill import DKD, KD, AttentionKD, FeatureKD, distill
from torchslim.export import export
from torchslim.export.slim import SlimFileError
from torchslim.measure import Metrics, compare, measure
from torchslim.prune import (
    BlockPrune,
    GradualPrune,
    LotteryTicket,
    MagnitudePrune,
    NMPrune,
    RandomPrune,
    StructuredPrune,
    load_pruned,
    make_permanent,
    preflight,
    prune,
    recover,
    save_pruned,
    split_attention,
)
from torchslim.quant import (
    QAT,
    Int8Dynamic,
    Int8Static,
    WeightOnly,
    WeightSharing,
    mixed_precision,
    quantize,
)
from torchslim.recipe import AutoResult, Finetune, Recipe, RecipeError, RunResult, auto, run
from torchslim.recipe.artifact import load, save
from torchslim.recipe.deep_compression import DeepCompression, deep_compression
from torchslim.train import fit, teacher_loss

__all__ = [
    "QAT", "Config", "ConfigError", "DepthwiseSeparable", "LowRank", "depth_student", "factorize",
    "replace_depthwise", "width_student", "GradualPrune", "InputError", "Int8Dynamic", "Int8Static",
    "LotteryTicket", "MagnitudePrune", "Metrics", "MissingPackageError", "NMPrune", "RandomPrune",
    "StructuredPrune", "Target", "TorchslimError", "UnknownNameError", "WeightOnly", "__version__",
    "AttentionKD", "DKD", "FeatureKD", "KD", "distill", "teacher_loss",
    "AutoResult", "Finetune", "Recipe", "RecipeError", "RunResult", "auto", "run",
    "DeepCompression", "SlimFileError", "WeightSharing", "deep_compression", "load", "save",
    "BlockPrune", "preflight", "recover", "split_attention",
    "compare", "config_from_dict", "config_from_yaml", "export", "fit", "fold_batchnorm",
    "load_pruned", "make_permanent", "measure", "mixed_precision", "prune", "quantize", "save_pruned",
]
