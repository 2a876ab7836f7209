"""Label-free model selection with pytorch-adapt's validators (Musgrave et al., "Unsupervised Domain
Adaptation: A Reality Check", 2021).

``train.selection``:

- ``last`` (default) — the model after the last step;
- ``im`` — Information Maximisation (IMValidator: −entropy + diversity of target predictions);
- ``snd`` — Soft Neighbourhood Density (SNDValidator, Saito et al. 2021) on target softmax outputs;
- ``entropy`` — negative mean prediction entropy (EntropyValidator).

At each eval point the model's logits on the *unlabelled* target training pool are scored (higher is
better) and the best-scoring checkpoint is kept. Target labels are never read.

``pytorch_adapt.validators``'s package ``__init__`` imports torchvision (absent here); the validator modules
themselves do not, so they are loaded through a bare package module registered in ``sys.modules``.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import torch

RULES = ("last", "im", "snd", "entropy")
_CLASSES = {"im": ("im_validator", "IMValidator"), "snd": ("snd_validator", "SNDValidator"),
            "entropy": ("entropy_validator", "EntropyValidator")}


def _validators_package() -> None:
    name = "pytorch_adapt.validators"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        sys.modules.pop(name, None)
    import pytorch_adapt

    pkg = types.ModuleType(name)
    pkg.__path__ = [str(Path(pytorch_adapt.__file__).parent / "validators")]
    sys.modules[name] = pkg


def get_validator(rule: str):
    """The pytorch-adapt validator object for ``rule`` (``im`` | ``snd`` | ``entropy``)."""
    if rule not in _CLASSES:
        raise ValueError(f"train.selection: expected one of {list(RULES)}, got {rule!r}")
    _validators_package()
    module, cls = _CLASSES[rule]
    return getattr(importlib.import_module(f"pytorch_adapt.validators.{module}"), cls)()


class Selector:
    """Scores target-unlabelled logits with one rule; ``score(logits) -> float`` (higher is better)."""

    def __init__(self, rule: str):
        self.rule = rule
        self.validator = get_validator(rule)

    def score(self, logits: torch.Tensor) -> float:
        logits = logits.float()
        if self.rule == "snd":
            return float(self.validator(target_train={"preds": torch.softmax(logits, dim=1)}))
        return float(self.validator(target_train={"logits": logits}))
