"""``coral``: Deep CORAL (Sun & Saenko, ECCV-W 2016) — align second-order feature statistics.

Adds ``loss_coral`` = ``weight`` × ‖C_S − C_T‖²_F / (4d²) on the backbone features of a source and an
unlabelled-target batch (:class:`~adapt.losses.CORALLoss`). Labelled target samples add their cross-entropy.

Default ``weight``: the paper sets λ so that the CORAL and classification losses are of the same order at
the end of training. With the 1/(4d²) factor the raw term on d = 128 ReLU features is ~1e-4..1e-2, so
λ = 1 leaves it negligible (its gradient is ~1000× smaller than the classifier's). The default
``DEFAULT_WEIGHT`` was tuned once on the synthetic ``shift`` family (covariate pair), see
``adapt/methods/coral.py`` notes in the project's bench/RESULTS.md; ``loss_coral`` in a record's curves shows
the weighted term.
"""

from __future__ import annotations

from ..losses import CORALLoss
from .base import Method, Phase, number

DEFAULT_WEIGHT = 100.0


class DeepCORAL(Method):
    name = "coral"
    PARAMS = {"weight": (DEFAULT_WEIGHT, number(0.0))}

    def __init__(self, params: dict, feature_dim: int, n_classes: int):
        super().__init__(params, feature_dim, n_classes)
        self.loss = CORALLoss()

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("joint", steps, source=True, target_labelled=budget > 0, target_unlabelled=True)]

    def extra_loss(self, f_s, f_t, logits_s, logits_t, progress):
        return {"loss_coral": self.params["weight"] * self.loss(f_s, f_t)}

    def scalars(self, progress: float) -> dict[str, float]:
        return {"lambda": self.params["weight"]}
