"""``scratch``: the same architecture from the same per-seed random init, trained on the labelled target
subset only (no source) — the baseline every transfer method must beat.

Tuned alike, never on the test split: with ``early_stopping: true`` (default) a stratified ``holdout``
fraction (default 0.25, at least one sample per class that has two or more) of the labelled subset is held
out; a first run on the rest evaluates held-out accuracy every ``train.eval_every`` steps up to
``train.steps``; the step count with the best held-out accuracy (latest on ties) is then used to retrain on
the whole labelled subset from the same init. A budget of 1 leaves nothing to hold out: all steps are used.
Pretrained backbones are NOT loaded for ``scratch`` (random init of the same architecture).
"""

from __future__ import annotations

from .base import Method, Phase, boolean, number


class Scratch(Method):
    name = "scratch"
    uses_source = False
    PARAMS = {
        "early_stopping": (True, boolean),
        "holdout": (0.25, number(0.0, 0.9)),
    }

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("target", steps, source=False, target_labelled=True)]
