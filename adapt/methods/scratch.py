"""``scratch``: the same architecture with *random* weights (pretrained backbones are NOT loaded), trained on
the labelled target subset only — answers "does transfer beat training from nothing?" (for a pretrained
backbone that mixes the effect of pretraining with the effect of the source; ``target-only`` isolates the
source). By default it trains exactly like ``target-only``: one target phase of ``train.steps`` steps with
the run's lr schedule and selection rule.

``early_stopping: true`` tunes its step count without the test split: a stratified ``holdout`` fraction
(default 0.25, at least one sample per class that has two or more, never a whole class) of the labelled
subset is held out; a first run on the rest evaluates held-out accuracy every ``train.eval_every`` steps up
to ``train.steps``; the step count with the best held-out accuracy (latest on ties) is then used to retrain
on the whole labelled subset from the same init. A budget of 1 leaves nothing to hold out: all steps are
used. (Off by default since the fair protocol: the transfer arms are not tuned either.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..domains.base import stable_seed
from .base import Method, Phase, boolean, number


def holdout_positions(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified held-out positions in the labelled subset (≥1 per class with ≥2, never a whole class)."""
    if fraction <= 0:
        return np.array([], dtype=np.int64)
    rng = np.random.default_rng(stable_seed("holdout", seed))
    out = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) < 2:
            continue
        k = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
        out.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(out)) if out else np.array([], dtype=np.int64)


class Scratch(Method):
    name = "scratch"
    stackable = True
    uses_source = False
    random_init = True
    PARAMS = {
        "early_stopping": (False, boolean),
        "holdout": (0.25, number(0.0, 0.9)),
    }

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("target", steps, source=False, target_labelled=True)]

    @classmethod
    def stack_blocker(cls, params: dict) -> str | None:
        if params["early_stopping"]:  # a held-out search run per cell, then a retrain to its own step count
            return "scratch early_stopping chooses each cell's step count"
        return super().stack_blocker(params)

    @classmethod
    def fit_cell(cls, run) -> dict:
        if not run.params["early_stopping"]:
            return super().fit_cell(run)
        problem = run.problem
        hold = holdout_positions(problem.y_lab, run.params["holdout"], run.cell.seed)
        if not len(hold):
            out = super().fit_cell(run)
            return {**out, "early_stopping": {"chosen_steps": run.steps,
                                              "note": "budget too small to hold out: all steps used"}}
        keep = np.setdiff1d(np.arange(len(problem.y_lab)), hold)
        origins = dict(problem.origins) if problem.origins else None
        if origins:  # the feature cache finds the search run's labelled rows by their target indices
            whole, rows = origins["X_lab"]
            origins["X_lab"] = (whole, np.asarray(rows)[keep])
        search = replace(problem, X_lab=problem.X_lab[keep], y_lab=problem.y_lab[keep],
                         lab_index=problem.lab_index[keep], origins=origins)
        holdout = (problem.X_lab[hold], problem.y_lab[hold])
        model, method = run.build()
        res = run.fit(model, method, method.phases(run.steps, run.budget, run.train_cfg), problem=search,
                      rule="last", holdout=holdout)
        if res["status"] != "ok":
            return run.finish(model, method, res)
        acc = np.asarray(res["holdout_acc"], dtype=float)
        best = int(np.flatnonzero(acc == acc.max())[-1])
        chosen = int(res["curves"]["step"][best])
        early = {"step": res["curves"]["step"], "holdout_acc": res["holdout_acc"], "chosen_steps": chosen,
                 "n_holdout": int(len(hold))}
        search_convergence = res["convergence"]
        model, method = run.build()  # the same init again (seeded from the seed only)
        res = run.fit(model, method, method.phases(chosen, run.budget, run.train_cfg), rule="last")
        # steps chosen by accuracy on the held-out labelled samples, then retrained on all of them
        res["selection"] = "holdout"
        res["selected_step"] = chosen
        if res["status"] == "ok":
            # convergence is judged on the search run: stopping where held-out accuracy peaked before the
            # last step is a plateau by construction; peaking at the last step is judged like any run
            res["convergence"] = {name: {**info, "converged": True, "early_stopped_at": chosen}
                                  for name, info in search_convergence.items()} if chosen < run.steps \
                else search_convergence
        return {"early_stopping": early, **run.finish(model, method, res)}
