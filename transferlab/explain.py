"""Explain the flagged rows of a finished run: measured evidence per ``negative`` row, written for the report.

Flow (data one way): the run's records (``analysis.load_results`` / ``load_outcomes``) and flags
(``analysis.negative_transfer``) + the config's domains (``adapt``) → per flagged row
:func:`analysis.explain.explain_pair` on the pair's inputs (as the config loads them) with a source model
(:func:`analysis.forecast.fit_source_model`: fit on half the source, its confusion on the other half), the
target's unlabelled pool and labelled subset of the first seed (never its test split), and
:func:`analysis.explain.per_class_change` from the per-example outcomes of the method and its baseline on the
same seeds and test examples → ``explanations.json`` beside the records, which the report renders.

Evidence *after* adaptation (domain classifier, class alignment on the trained features) needs the trained
cell's model and is not measured here yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.explain import EXPLANATIONS_FILE

from .predict import flat_inputs, measured_flags

ALIGNING = ("dann", "coral")


def explain_rows(rows: pd.DataFrame, run_dir: str | Path, config, domains: dict,
                 baseline: str = "scratch") -> list[dict]:
    """One explanation per row of ``rows`` (``source, target, method, budget`` columns)."""
    import analysis
    from analysis.explain import explain_pair, per_class_change
    from analysis.forecast import fit_source_model

    outcomes = analysis.load_outcomes(run_dir)
    results = analysis.load_results(run_dir)
    method_names = dict(zip(results.method, results.get("method_name", results.method)))
    test_fraction = float(config.data["test_fraction"])  # parse_config filled the default
    transductive = bool(config.data["transductive"])
    seed = int(config.seeds[0])
    out = []
    for row in rows.itertuples(index=False):
        S, T = domains[row.source], domains[row.target]
        if S.kind == "text" or T.kind == "text":
            out.append({**_key(row), "cause": None, "reading": "not explained: text domains have no input "
                        "representation here", "evidence": {}})
            continue
        xs, xt = flat_inputs(S.X), flat_inputs(T.X)
        order = np.random.default_rng(seed).permutation(len(S.y))
        fit, held = order[: len(order) // 2], order[len(order) // 2:]
        model = fit_source_model(xs[fit], S.y[fit])
        split = T.split(seed, test_fraction, transductive)
        lab = T.labelled_subset(split, int(row.budget), seed) if row.budget > 0 else np.array([], dtype=int)
        k = max(S.n_classes, T.n_classes)
        explanation = explain_pair(
            X_source=xs, y_source=S.y, X_target=xt[split.train],
            heldout_source=(S.y[held], model.predict(xs[held])), pred_target=model.predict(xt[split.train]),
            labelled_target=(xt[lab], T.y[lab], model.predict(xt[lab])) if len(lab) else None,
            after=_after_adaptation(config, row, S, T, split.train, lab, seed),
            method=str(row.method), aligns=method_names.get(row.method, row.method) in ALIGNING, n_classes=k,
            seed=seed)
        entry = {**_key(row), "cause": explanation.cause, "reading": explanation.reading,
                 "evidence": _plain(explanation.evidence)}
        classes = _per_class(outcomes, row, baseline, k, per_class_change)
        if classes is not None:
            names = list(T.class_names) if getattr(T, "class_names", None) else None
            entry["per_class"] = [{**r, "class_name": names[r["class"]] if names else str(r["class"])}
                                  for r in _plain(classes.to_dict("records"))]
        out.append(entry)
    return out


def _after_adaptation(config, row, S, T, pool, lab, seed: int):
    """Backbone features of the source, the target pool and the labelled subset after the flagged method trained:
    the row's cell of ``seed`` retrained (deterministic on CPU, so it is the recorded model) with the public
    ``run_cell(..., return_model=True)``. None when the cell has no network on the inputs (closed-form fits)."""
    from transferlab.plan import expand_cells
    from adapt.train import backbone_features, run_cell

    cells = [c for c in expand_cells(config, [(row.source, row.target)])
             if c.method == row.method and c.budget == int(row.budget) and c.seed == seed]
    if not cells:
        return None
    record, model = run_cell(cells[0], S, T, device="cpu", return_model=True)
    if model is None or record.get("status") != "ok":
        return None
    try:
        return tuple(backbone_features(model, X, T.kind) for X in (S.X, T.X[pool], T.X[lab]))
    except (RuntimeError, ValueError):  # a classifier on another representation (closed-form CORAL)
        return None


def explain_run(run_dir: str | Path, config, domains: dict, baseline: str = "scratch") -> list[dict]:
    """Explain every ``negative`` row of the run (vs ``baseline``, flagged as the report flags them) and write
    ``explanations.json``; returns the entries."""
    nt = measured_flags(run_dir, baseline)
    flagged = nt[nt.flag == "negative"]
    entries = explain_rows(flagged, run_dir, config, domains, baseline)
    path = Path(run_dir) / EXPLANATIONS_FILE
    path.write_text(json.dumps({"baseline": baseline, "rows": entries}, indent=1))
    return entries


def _per_class(outcomes: pd.DataFrame, row, baseline: str, k: int, per_class_change) -> pd.DataFrame | None:
    """Per-class change pooled over the seeds where both arms have outcomes, on the same test examples."""
    if outcomes.empty:
        return None
    mine = outcomes[(outcomes.source == row.source) & (outcomes.target == row.target)
                    & (outcomes.method == row.method) & (outcomes.budget == row.budget)]
    base = outcomes[(outcomes.target == row.target) & (outcomes.method == baseline)
                    & (outcomes.budget == row.budget)].drop_duplicates("seed")
    y, p, b = [], [], []
    for m in mine.itertuples(index=False):
        match = base[base.seed == m.seed]
        if match.empty:
            continue
        other = match.iloc[0]
        pos = {int(i): j for j, i in enumerate(other.test_index)}
        keep = [j for j, i in enumerate(m.test_index) if int(i) in pos]
        if not keep:
            continue
        y.append(m.label[keep])
        p.append(m.pred[keep])
        b.append(other.pred[[pos[int(m.test_index[j])] for j in keep]])
    if not y:
        return None
    return per_class_change(np.concatenate(y), np.concatenate(p), np.concatenate(b), k)


def _key(row) -> dict:
    return {"source": row.source, "target": row.target, "method": row.method, "budget": int(row.budget)}


def _plain(value):
    """JSON-ready copy (numpy scalars and arrays to Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
