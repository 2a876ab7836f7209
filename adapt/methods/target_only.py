"""``target-only``: the transfer methods' initial model (pretrained when the backbone is), trained on the
labelled target subset only — the baseline that answers "does the *source domain* help?".

Wang et al. ("Characterizing and Avoiding Negative Transfer", CVPR 2019) define negative transfer against
exactly this arm, :math:`A(\\emptyset, \\tau)`: the same algorithm and initial weights without the source.
Its one target phase is ``train.steps`` steps with the run's lr schedule and selection rule — step for step
``finetune``'s target phase, which starts from the source-trained model instead. ``scratch`` differs in one
thing: random weights (it answers "does transfer beat training from nothing?", pretraining included).
The result never reads the source, so it is computed once per (target, seed, budget) and shared.
"""

from __future__ import annotations

from .base import Method, Phase


class TargetOnly(Method):
    name = "target-only"
    stackable = True
    uses_source = False

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("target", steps, source=False, target_labelled=True)]
