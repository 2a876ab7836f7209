"""``coral``: Deep CORAL (Sun & Saenko, ECCV-W 2016) — align second-order feature statistics.

Adds ``loss_coral`` = ``weight`` × ‖C_S − C_T‖²_F / (4d²) on the backbone features of a source and an
unlabelled-target batch (:class:`~adapt.losses.CORALLoss`). Labelled target samples add their cross-entropy.

Default ``weight`` = 100. The paper sets λ so that the CORAL and classification losses are of the same
order at the end of training. With the 1/(4d²) factor the raw term on d = 64..128 ReLU features is ~1e-3
(e.g. 0.0009-0.003 on the shift family), so at λ = 1 its gradient is ~1000× smaller than the classifier's and
the method is source-only in all but name. First tuned on the synthetic ``shift`` family (canonical domains,
family seed 0, MLP [64], 300 steps, Adam 1e-3, budget 0, seeds 0-4), mean target accuracy
(covariate→base / base→covariate), source-only finetune .744 / .692:

====== ====== ====== ====== ====== ======
weight 10     30     100    300    1000
====== ====== ====== ====== ====== ======
c→b    .782   .809   .829   .851   .856
b→c    .770   .791   .816   .806   .773
====== ====== ====== ====== ====== ======

Family seed 0 is also what the outcome tests used then, so the weight was re-checked under the fair
protocol (constant lr for every arm) on data no test and no bench evaluates on: ``shift`` family seed 7
(same setting) and the digits pairs blurred ↔ original (MLP [128], seeds 0-2):

=============== ====== ====== ====== ====== ====== ======
weight          0      10     30     100    300    1000
=============== ====== ====== ====== ====== ====== ======
cov→base (s7)   .768   .752   .760   .757   .759   .732
base→cov (s7)   .613   .603   .641   .669   .683   .658
blur→orig       .896          .896   .885   .870
orig→blur       .878          .881   .881   .867
=============== ====== ====== ====== ====== ====== ======

100 stays: within noise of the best everywhere (300 is ahead on base→cov, behind on digits), and it keeps the
weighted term at the order of the classification loss (``loss_coral`` .09-.30 vs ``loss_cls`` .2-.8 in the
curves), as the paper prescribes. The outcome test uses family seed 3, never seen here.
"""

from __future__ import annotations

from ..losses import CORALLoss
from .base import Method, Phase, number

DEFAULT_WEIGHT = 100.0


class DeepCORAL(Method):
    name = "coral"
    aligns = True
    stackable = True
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
