"""Methods: one small class per file, saying only what it adds to the shared loop (:mod:`adapt.train`).

``METHODS`` maps a registered name to its class; :func:`check_method_params` validates a config's params.
"""

from __future__ import annotations

from .base import Method, Phase
from .coral import DeepCORAL
from .coral_closed import CORALClosed
from .dann import DANN
from .finetune import Finetune
from .scratch import Scratch
from .target_only import TargetOnly

METHODS: dict[str, type[Method]] = {
    "finetune": Finetune,
    "dann": DANN,
    "coral": DeepCORAL,
    "coral-closed": CORALClosed,
    "scratch": Scratch,
    "target-only": TargetOnly,
}


def check_method_params(name: str, params: dict | None) -> dict:
    """Validate ``params`` for method ``name`` and fill defaults; ``ValueError`` with a one-line message."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"params: expected a mapping, got {params!r}")
    return METHODS[name].check_params(params)


__all__ = ["METHODS", "Method", "Phase", "check_method_params"]
