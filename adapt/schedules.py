"""Learning-rate schedules: one ``train.lr_schedule`` for every method of a run (scratch included).

A schedule is a factor ``f(p)`` on ``train.lr`` where ``p`` = step within the phase / steps of the phase, in
[0, 1): every phase (finetune's source and target phases, a joint phase, scratch's target phase) starts a
fresh optimiser and runs the schedule over its own steps, so a target phase of ``n`` steps is optimised
exactly as a ``target-only`` or ``scratch`` run of ``n`` steps.

============ ================================================================================
``constant`` (default) ``f = 1``
``anneal``   ``f = 1 / (1 + 10 p)^0.75`` — Ganin et al. 2016, §5.2.2 (DANN's paper schedule), for all
``cosine``   ``f = (1 + cos(π p)) / 2``
============ ================================================================================

``LR_SCHEDULES`` is the one list of valid names (``transferlab.config`` validates against it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

LR_SCHEDULES = ("constant", "anneal", "cosine")
DEFAULT_LR_SCHEDULE = "constant"


def anneal_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    r""":math:`\mu_p / \mu_0 = 1 / (1 + \alpha p)^\beta` (Ganin et al., JMLR 2016, §5.2.2)."""
    return 1.0 / (1.0 + alpha * progress) ** beta


def cosine_factor(progress: float) -> float:
    r""":math:`(1 + \cos \pi p) / 2` (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts)."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_factor_fn(name: str | None) -> Callable[[float], float]:
    """The factor function of schedule ``name`` (``None`` = the default); ``ValueError`` for unknown names."""
    name = DEFAULT_LR_SCHEDULE if name is None else name
    if name == "constant":
        return lambda p: 1.0
    if name == "anneal":
        return anneal_factor
    if name == "cosine":
        return cosine_factor
    raise ValueError(f"train.lr_schedule: expected one of {list(LR_SCHEDULES)}, got {name!r}")
