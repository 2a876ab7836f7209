"""``dann``: Domain-Adversarial Neural Networks (Ganin et al., JMLR 2016).

Adds ``loss_domain`` = ``trade_off`` × :class:`~adapt.losses.DomainAdversarialLoss` on the features of a
source and an unlabelled-target batch, through a gradient reversal layer with coefficient
``λ_p = 2/(1+exp(−γp)) − 1`` (``lambda_schedule: true``, γ = ``gamma`` = 10; ``false`` = constant 1) and a
2-hidden-layer discriminator (``disc_hidden`` units) ending in one logit (BCE-with-logits). No private lr
schedule: the run's ``train.lr_schedule`` applies to DANN as to every other method (the paper's annealing is
``lr_schedule: anneal``, for all arms). The discriminator's accuracy on each step's batches is averaged into
the curves as ``disc_acc``. Labelled target samples (budget > 0) add their cross-entropy.

Defaults (``trade_off`` 3, ``disc_hidden`` 32, ``disc_lr_mult`` 0.3 — the discriminator's lr is 0.3 × the
run's). The paper's settings (trade_off 1, a 256-unit discriminator at the full lr) let the discriminator win
outright here: its accuracy → 1.00, ``loss_domain`` → 0.01, and almost no reversed gradient reaches the
features, so ``dann`` was finetune with a different schedule. A smaller, slower discriminator stays near
chance (``disc_acc`` ≈ 0.6-0.75 at the end) and keeps pushing the features. Tuned once, on data no test and
no bench evaluates on: the ``shift`` family with family seed 7 (canonical domains, 600 samples, 16-d, 4
classes; MLP [64]) and the digits pairs blurred ↔ original (MLP [128]); 300 steps, Adam 1e-3, constant lr,
budget 0; seeds 0-4 (shift) and 0-2 (digits). Mean target accuracy (final ``disc_acc`` in brackets):

============================== ============ ============ ============ ============
setting                        cov→base     base→cov     blur→orig    orig→blur
============================== ============ ============ ============ ============
trade_off 0 (no domain term)   .768         .613         .896         .878
paper: 1, h 256, lr × 1        .772 (1.00)  .623 (1.00)  .841 (.86)   .856 (.98)
1, h 256, lr × 0.1             .772 (.93)   .754 (.88)
1, h 256, lr × 0.03            .773 (.61)   .782 (.68)   .900 (.60)   .867 (.70)
3, h 256, lr × 0.3             .772 (.86)   .773 (.87)   .841 (.81)   .789 (.80)
1, h 32, lr × 0.3              .767 (.84)   .794 (.74)   .904 (.69)   .859 (.57)
**3, h 32, lr × 0.3**          .764 (.66)   .808 (.59)   .904 (.59)   .889 (.58)
3, h 32, lr × 0.1              .763 (.52)   .769 (.65)
============================== ============ ============ ============ ============

(finetune, source-only: .764 / .612 on shift.) The chosen row is the best on base→cov and on the digits
pairs and within seed noise of the best on cov→base, where no setting moved accuracy. The outcome test
(``tests/adapt/test_train_outcomes.py``) uses family seed 3, never seen here.
"""

from __future__ import annotations

import torch

from ..losses import DomainAdversarialLoss, DomainDiscriminator, dann_lambda
from .base import Method, Phase, boolean, integer, number


DEFAULT_TRADE_OFF = 3.0
DEFAULT_DISC_HIDDEN = 32
DEFAULT_DISC_LR_MULT = 0.3


class DANN(Method):
    name = "dann"
    aligns = True
    stackable = True
    PARAMS = {
        "trade_off": (DEFAULT_TRADE_OFF, number(0.0)),
        "lambda_schedule": (True, boolean),
        "gamma": (10.0, number(0.0)),
        "disc_hidden": (DEFAULT_DISC_HIDDEN, integer(1)),
        "disc_lr_mult": (DEFAULT_DISC_LR_MULT, number(0.0, low_open=True)),
    }

    def __init__(self, params: dict, feature_dim: int, n_classes: int):
        super().__init__(params, feature_dim, n_classes)
        self.modules["domain_loss"] = DomainAdversarialLoss(DomainDiscriminator(feature_dim, params["disc_hidden"]))

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("joint", steps, source=True, target_labelled=budget > 0, target_unlabelled=True)]

    def coeff(self, progress: float) -> float:
        return dann_lambda(progress, self.params["gamma"]) if self.params["lambda_schedule"] else 1.0

    def extra_loss(self, f_s, f_t, logits_s, logits_t, progress):
        loss = self.modules["domain_loss"](f_s, f_t, self.coeff(progress))
        return {"loss_domain": self.params["trade_off"] * loss}

    def scalars(self, progress: float) -> dict[str, float]:
        return {"lambda": self.params["trade_off"] * self.coeff(progress)}

    def param_groups_lr(self) -> dict[str, float]:
        return {"backbone": 1.0, "head": 1.0, "method": self.params["disc_lr_mult"]}

    def monitors(self) -> dict[str, torch.Tensor]:
        acc = self.modules["domain_loss"].last_accuracy
        return {} if acc is None else {"disc_acc": acc}
