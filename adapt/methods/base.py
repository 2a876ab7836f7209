"""The method interface: a small class saying only what a method adds to the one training loop.

A method declares its parameters (``PARAMS``: name → (default, checker)), the phases it trains in
(:meth:`Method.phases`: which data each step reads), the extra loss terms it adds on top of the
classification loss (:meth:`Method.extra_loss`), values to monitor (:meth:`Method.monitors`), and optionally
per-part lr multipliers or a parameter freeze. The loop in :mod:`adapt.train` does everything else (sampling,
devices, AMP, the one lr schedule, curves, convergence, selection). A method whose fitting is not "build the
model, run its phases, evaluate" overrides the hook :meth:`Method.fit_cell` (``scratch``'s early stopping,
``coral-closed``'s closed-form re-colouring) — the loop itself names no method.

Shared protocol: a phase step reads a source batch (source labels), a labelled-target batch (when the
budget is > 0 and the phase says so: its cross-entropy is added as ``loss_cls_target``) and an unlabelled
target batch (for alignment losses). ``progress`` is the step within the phase / the phase's steps, in
[0, 1); the lr schedule (``train.lr_schedule``, :mod:`adapt.schedules`) runs over each phase alike.

Step budget (the same for every arm of a comparison): every method takes ``train.steps`` steps that read the
labelled target subset when the budget is > 0 — joint methods in one phase, ``target-only`` and ``scratch``
in a target phase, ``finetune`` in its target phase, which comes *after* its source phase (see
:mod:`adapt.methods.finetune`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class Phase:
    """A stretch of ``steps`` optimisation steps and the data each of them reads."""

    name: str
    steps: int
    source: bool = True              # source batch with its labels (loss_cls)
    target_labelled: bool = True     # labelled-target batch when budget > 0 (loss_cls_target)
    target_unlabelled: bool = False  # unlabelled-target batch (for extra_loss)
    freeze: str = "none"             # none | backbone | first:K


# -------------------------------------------------------------------------------------------- checkers
def number(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Callable:
    def check(name: str, v: Any) -> float:
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ValueError(f"param '{name}': expected a number, got {v!r}")
        if low is not None and (v < low or (low_open and v == low)):
            raise ValueError(f"param '{name}': expected a number {'>' if low_open else '>='} {low}, got {v!r}")
        if high is not None and v > high:
            raise ValueError(f"param '{name}': expected a number <= {high}, got {v!r}")
        return float(v)
    return check


def integer(low: int = 0) -> Callable:
    def check(name: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"param '{name}': expected an integer >= {low}, got {v!r}")
        return int(v)
    return check


def boolean(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"param '{name}': expected true or false, got {v!r}")
    return v


def choice(*options: str) -> Callable:
    def check(name: str, v: Any) -> str:
        if v not in options:
            raise ValueError(f"param '{name}': expected {'|'.join(options)}, got {v!r}")
        return v
    return check


def freeze_spec(name: str, v: Any) -> str:
    """``none`` | ``backbone`` | ``first:K`` (K >= 0)."""
    if v is None or v is False:
        return "none"
    if v in ("none", "backbone"):
        return v
    if isinstance(v, str) and v.startswith("first:"):
        k = v.split(":", 1)[1]
        if k.isdigit():
            return f"first:{int(k)}"
    raise ValueError(f"param '{name}': expected none|backbone|first:K, got {v!r}")


# -------------------------------------------------------------------------------------------- method
class Method:
    """Base class: plain supervised training on source (+ labelled target) in one joint phase."""

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, tuple[Any, Callable]]] = {}
    uses_source: ClassVar[bool] = True   # False: the result does not depend on the source (shared per target)
    random_init: ClassVar[bool] = False  # True: the configured architecture with random weights (no pretraining)
    # True: the trained network (run_cell(return_model=True)) maps the domain's own inputs to logits, so
    # train.save_models can keep it and `transferlab export` can ship it; False for a method that classifies
    # its own representation (coral-closed's re-coloured inputs).
    exports_model: ClassVar[bool] = True
    # True: the default fit_cell, and extra_loss/monitors take stacked members' batches (M, N, d) and return one
    # value per member — cells of the method then train many at once (adapt.stacked); False: one at a time
    stackable: ClassVar[bool] = False
    # True: the method aligns source and target distributions (an alignment loss or transform on unlabelled target
    # data); explanations speak of "after adaptation" only for such a method (finetune adapts nothing)
    aligns: ClassVar[bool] = False

    def __init__(self, params: dict, feature_dim: int, n_classes: int):
        self.params = dict(params)
        self.feature_dim = feature_dim
        self.n_classes = n_classes
        self.modules = nn.ModuleDict()  # extra trainable modules (a discriminator, ...)

    @classmethod
    def check_params(cls, params: dict | None) -> dict:
        params = dict(params or {})
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            expected = sorted(cls.PARAMS) or "none"
            raise ValueError(f"unknown param {unknown[0]!r}; {cls.name} takes {expected}")
        out = {}
        for key, (default, check) in cls.PARAMS.items():
            out[key] = check(key, params[key]) if key in params else default
        return out

    @classmethod
    def fit_cell(cls, run) -> dict:
        """Train and evaluate one cell; returns record fields. ``run`` is the loop's
        :class:`adapt.train.CellRun` (problem, configs, ``build``/``fit``/``finish``). Default: build the
        model, run :meth:`phases` with ``train.selection``, evaluate once on the target test split."""
        model, method = run.build()
        res = run.fit(model, method, method.phases(run.steps, run.budget, run.train_cfg))
        return run.finish(model, method, res)

    @classmethod
    def stack_blocker(cls, params: dict) -> str | None:
        """Why cells of this method with ``params`` cannot train stacked (:mod:`adapt.stacked`); None: they can."""
        return None if cls.stackable else f"method {cls.name} has no stacked form"

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("joint", steps, source=True, target_labelled=budget > 0)]

    def extra_loss(self, f_s: torch.Tensor | None, f_t: torch.Tensor | None, logits_s: torch.Tensor | None,
                   logits_t: torch.Tensor | None, progress: float) -> dict[str, torch.Tensor]:
        """Named loss terms (already weighted) added to the classification loss. Default: none."""
        return {}

    def scalars(self, progress: float) -> dict[str, float]:
        """Host-side values to log at eval points (e.g. ``lambda``)."""
        return {}

    def monitors(self) -> dict[str, torch.Tensor]:
        """Device scalars of the last step to average into the curves (e.g. ``disc_acc``); not losses."""
        return {}

    def param_groups_lr(self) -> dict[str, float]:
        """lr multipliers per part: ``backbone``, ``head``, ``method``."""
        return {"backbone": 1.0, "head": 1.0, "method": 1.0}
