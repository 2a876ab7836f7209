"""``finetune``: source training, then fine-tuning on the target label budget (budget 0 = source-only).

Steps (the rule shared by every method, :mod:`adapt.methods.base`): with budget 0 the model trains
``train.steps`` steps on the source labels. With budget > 0 a source phase of
``round(train.source_fraction · steps)`` steps (default fraction 1.0: the budget-0 source-only model,
batch for batch) is followed by a target phase of ``train.steps`` steps on the labelled target subset only —
the same number of target steps, the same lr schedule (run over each phase) and the same fresh optimiser as
``target-only`` and ``scratch``, so the arms differ only in where the target phase starts from. Label-free
selection (``train.selection``) only considers checkpoints of the target phase.

Params: ``freeze: none | backbone | first:K`` — frozen backbone blocks during the target phase (``backbone`` =
linear probe on the source-trained / pretrained features); ``freeze_source: true`` also freezes them in the
source phase (a linear probe on pretrained features); ``backbone_lr_mult`` scales the backbone's lr (both
phases).
"""

from __future__ import annotations

from .base import Method, Phase, boolean, freeze_spec, number

DEFAULT_SOURCE_FRACTION = 1.0


class Finetune(Method):
    name = "finetune"
    stackable = True
    PARAMS = {
        "freeze": ("none", freeze_spec),
        "freeze_source": (False, boolean),
        "backbone_lr_mult": (1.0, number(0.0)),
    }

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        src_freeze = self.params["freeze"] if self.params["freeze_source"] else "none"
        if budget == 0:
            return [Phase("source", steps, source=True, target_labelled=False, freeze=src_freeze)]
        fraction = train_cfg.get("source_fraction")
        fraction = DEFAULT_SOURCE_FRACTION if fraction is None else float(fraction)
        n_source = max(int(round(fraction * steps)), 0)
        phases = [Phase("source", n_source, source=True, target_labelled=False, freeze=src_freeze),
                  Phase("target", steps, source=False, target_labelled=True, freeze=self.params["freeze"])]
        return [p for p in phases if p.steps > 0]

    def param_groups_lr(self) -> dict[str, float]:
        return {"backbone": self.params["backbone_lr_mult"], "head": 1.0, "method": 1.0}
