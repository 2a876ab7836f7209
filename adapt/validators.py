"""Label-free model selection with pytorch-adapt's validators (Musgrave et al., "Unsupervised Domain
Adaptation: A Reality Check", 2021).

``train.selection``:

- ``last`` (default) — the model after the last step;
- ``im`` — Information Maximisation (IMValidator: −entropy + diversity of target predictions);
- ``snd`` — Soft Neighbourhood Density (SNDValidator, Saito et al. 2021) on target softmax outputs;
- ``entropy`` — negative mean prediction entropy (EntropyValidator).

At each eval point the model's logits on the *unlabelled* target training pool are scored (higher is
better) and the best-scoring checkpoint is kept. Target labels are never read.

``pytorch_adapt.validators``'s package ``__init__`` imports torchvision; the validator modules themselves do
not, so where that import fails they are loaded through bare package modules (:func:`import_pytorch_adapt`).
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


_LAYER_NAMES = {"entropy_loss": ("EntropyLoss",), "diversity_loss": ("DiversityLoss",), "coral_loss": ("CORALLoss",)}


def _bare_package(name: str) -> types.ModuleType:
    import pytorch_adapt

    pkg = types.ModuleType(name)
    pkg.__path__ = [str(Path(pytorch_adapt.__file__).parent / name.rsplit(".", 1)[1])]
    sys.modules[name] = pkg
    return pkg


def import_pytorch_adapt(module: str):
    """Import ``pytorch_adapt.<module>`` (e.g. ``validators.im_validator``, ``layers.coral_loss``).

    pytorch-adapt's ``layers`` and ``validators`` package ``__init__``s import torchvision/torchmetrics, which
    are absent or broken in some environments (a torchvision built for another torch fails with "operator
    torchvision::nms does not exist"). The modules we use need neither, so when a package ``__init__`` fails
    it is replaced by a bare package module (``layers`` gets the few names the validators import).
    """
    for sub in ("layers", "validators"):
        name = f"pytorch_adapt.{sub}"
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure of the optional heavy imports
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                sys.modules.pop(key, None)
            pkg = _bare_package(name)
            if sub == "layers":
                for mod, names in _LAYER_NAMES.items():
                    m = importlib.import_module(f"{name}.{mod}")
                    for attr in names:
                        setattr(pkg, attr, getattr(m, attr))
    return importlib.import_module(f"pytorch_adapt.{module}")


def get_validator(rule: str):
    """The pytorch-adapt validator object for ``rule`` (``im`` | ``snd`` | ``entropy``)."""
    if rule not in _CLASSES:
        raise ValueError(f"train.selection: expected one of {list(RULES)}, got {rule!r}")
    module, cls = _CLASSES[rule]
    return getattr(import_pytorch_adapt(f"validators.{module}"), cls)()


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
