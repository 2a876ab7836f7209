"""``finetune``: source training, then fine-tuning on the target label budget (budget 0 = source-only).

Steps: with budget 0 all ``train.steps`` go to the source phase; with budget > 0 the first
``round(train.source_fraction · steps)`` (default 0.5) train on source labels and the rest on the labelled
target subset only (so the total equals every other method's ``train.steps``).

Params: ``freeze: none | backbone | first:K`` — frozen backbone blocks during the target phase (``backbone`` =
linear probe on the source-trained / pretrained features); ``freeze_source: true`` also freezes them in the
source phase (a linear probe on pretrained features); ``backbone_lr_mult`` scales the backbone's lr (both
phases).
"""

from __future__ import annotations

from .base import Method, Phase, boolean, freeze_spec, number

DEFAULT_SOURCE_FRACTION = 0.5


class Finetune(Method):
    name = "finetune"
    PARAMS = {
        "freeze": ("none", freeze_spec),
        "freeze_source": (False, boolean),
        "backbone_lr_mult": (1.0, number(0.0)),
    }

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        src_freeze = self.params["freeze"] if self.params["freeze_source"] else "none"
        if budget == 0:
            return [Phase("source", steps, source=True, target_labelled=False, freeze=src_freeze)]
        fraction = float(train_cfg.get("source_fraction", DEFAULT_SOURCE_FRACTION))
        n_source = min(max(int(round(fraction * steps)), 0), steps)
        phases = [Phase("source", n_source, source=True, target_labelled=False, freeze=src_freeze),
                  Phase("target", steps - n_source, source=False, target_labelled=True,
                        freeze=self.params["freeze"])]
        return [p for p in phases if p.steps > 0]

    def param_groups_lr(self) -> dict[str, float]:
        return {"backbone": self.params["backbone_lr_mult"], "head": 1.0, "method": 1.0}
