"""Explain the flagged rows of a finished run: measured evidence per ``negative`` row, written for the report.

Flow (data one way): the run's records (``analysis.load_results`` / ``load_outcomes``) and flags
(``analysis.negative_transfer``) + the config's domains (``adapt``) → per flagged row, led by *that row's* own
measurements — its gain against the baseline and the classes that lose most, from the per-example outcomes of
the method and its baseline on the same seeds and test examples (:func:`analysis.explain.per_class_change`) —
then the pair's cause (:func:`analysis.explain.explain_pair`, computed once per pair and budget: a source model
fit on half the source, its confusion on the other half, the target's unlabelled pool and labelled subset of the
first seed, never its test split) → ``explanations.json`` beside the records, which the report renders.

Nothing is retrained by default. Evidence *after adaptation* (a domain classifier and class alignment on the
trained network's features) is measured only for a method that aligns (``Method.aligns`` in the registry:
finetune adapts nothing), from the network the run kept (``train.save_models: true``, loaded with
``adapt.load_model``); ``retrain=True`` (``transferlab explain --retrain``) retrains the cell instead when the
run kept none.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.explain import EXPLANATIONS_FILE

from .predict import flat_inputs, measured_flags


def explain_rows(rows: pd.DataFrame, run_dir: str | Path, config, domains: dict,
                 baseline: str = "scratch", retrain: bool = False) -> list[dict]:
    """One explanation per row of ``rows`` (``source, target, method, budget`` columns; ``gain``, ``ci_low``,
    ``ci_high`` when it is a negative-transfer table)."""
    import analysis
    from analysis.explain import after_evidence, explain_pair, per_class_change, read_evidence
    from analysis.forecast import fit_source_model

    outcomes = analysis.load_outcomes(run_dir)
    results = analysis.load_results(run_dir)
    aligning = method_alignment(config)
    test_fraction = float(config.data["test_fraction"])  # parse_config filled the default
    transductive = bool(config.data["transductive"])
    seed = int(config.seeds[0])
    pairs: dict = {}
    out = []
    for row in rows.itertuples(index=False):
        S, T = domains[row.source], domains[row.target]
        if S.kind == "text" or T.kind == "text":
            out.append({**_key(row), "cause": None, "reading": "not explained: text domains have no input "
                        "representation here", "evidence": {}})
            continue
        xs, xt = flat_inputs(S.X), flat_inputs(T.X)
        split = T.split(seed, test_fraction, transductive)
        lab = T.labelled_subset(split, int(row.budget), seed) if row.budget > 0 else np.array([], dtype=int)
        k = max(S.n_classes, T.n_classes)
        pair_key = (row.source, row.target, int(row.budget))
        if pair_key not in pairs:  # the pair's evidence does not depend on the method: measured once
            order = np.random.default_rng(seed).permutation(len(S.y))
            fit, held = order[: len(order) // 2], order[len(order) // 2:]
            model = fit_source_model(xs[fit], S.y[fit])
            pairs[pair_key] = explain_pair(
                X_source=xs, y_source=S.y, X_target=xt[split.train],
                heldout_source=(S.y[held], model.predict(xs[held])), pred_target=model.predict(xt[split.train]),
                labelled_target=(xt[lab], T.y[lab], model.predict(xt[lab])) if len(lab) else None,
                n_classes=k, seed=seed).evidence
        evidence = dict(pairs[pair_key])
        aligns = aligning.get(str(row.method), False)
        if aligns:
            after, source_of_after = _after_adaptation(results, run_dir, config, row, S, T, split.train, lab, seed,
                                                       retrain)
            evidence["after_from"] = source_of_after
            if after is not None:
                evidence.update(after_evidence(after[0], S.y, after[1], after[2], T.y[lab], seed))
        cause, pair_reading = read_evidence(evidence, str(row.method), aligns)
        entry = {**_key(row), "cause": cause, "aligns": aligns, "evidence": _plain(evidence)}
        classes = _per_class(outcomes, row, baseline, k, per_class_change)
        names = list(T.class_names) if getattr(T, "class_names", None) else None
        if classes is not None:
            entry["per_class"] = [{**r, "class_name": names[r["class"]] if names else str(r["class"])}
                                  for r in _plain(classes.to_dict("records"))]
        entry["lead"] = _lead(row, baseline, entry.get("per_class"))
        entry["reading"] = f"{entry['lead']}. The pair: {pair_reading}"
        out.append(entry)
    return out


def method_alignment(config) -> dict[str, bool]:
    """Method label → whether the registered method (or plugin) aligns the domains (``Method.aligns``)."""
    from adapt.plugins import method_class

    out = {}
    for spec in config.methods:
        try:
            out[spec.label] = bool(getattr(method_class(spec.name, spec.code), "aligns", False))
        except Exception:  # noqa: BLE001 - a plugin that no longer imports: say nothing about alignment
            out[spec.label] = False
    return out


def _lead(row, baseline: str, per_class: list[dict] | None) -> str:
    """The row's own measurement first: its gain against the baseline and the classes it loses most on."""
    gain = getattr(row, "gain", None)
    text = f"{row.method}"
    if gain is not None and np.isfinite(gain):
        text += f" {100 * gain:+.1f} pts vs {baseline}"
        lo, hi = getattr(row, "ci_low", None), getattr(row, "ci_high", None)
        if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
            text += f" (95% CI {100 * lo:+.1f} to {100 * hi:+.1f})"
    losers = [c for c in per_class or [] if (c.get("change") or 0) < 0][:3]
    if losers:
        text += ", losing most on " + ", ".join(f"{c['class_name']} ({100 * c['change']:+.0f} pts)" for c in losers)
    elif per_class:
        text += f", no class loses against {baseline} on the same test examples"
    return text


def _after_adaptation(results: pd.DataFrame, run_dir, config, row, S, T, pool, lab, seed: int, retrain: bool):
    """Backbone features (source, target pool, labelled subset) of the row's trained network of ``seed``: the
    one the run kept (``train.save_models``), else — only with ``retrain`` — the cell retrained (deterministic
    on CPU, so it is the recorded model). Returns ``(features or None, where they came from)``."""
    from adapt.errors import TransferlabError
    from adapt.train import backbone_features

    mine = results[(results.source == row.source) & (results.target == row.target)
                   & (results.method == row.method) & (results.budget == row.budget) & (results.seed == seed)]
    model = None
    where = "not measured: the run kept no trained network (train.save_models: true, or explain --retrain)"
    if len(mine) and "cell_id" in mine:
        from adapt import load_model

        try:
            model = load_model(run_dir, str(mine.iloc[0].cell_id))
            where = "the network the run kept"
        except (TransferlabError, FileNotFoundError, RuntimeError):
            model = None
    if model is None and retrain:
        from adapt.train import run_cell
        from transferlab.plan import expand_cells

        cells = [c for c in expand_cells(config, [(row.source, row.target)])
                 if c.method == row.method and c.budget == int(row.budget) and c.seed == seed]
        if cells:
            record, model = run_cell(cells[0], S, T, device="cpu", return_model=True)
            if record.get("status") != "ok":
                model = None
            where = "the cell retrained (explain --retrain)"
    if model is None:
        return None, where
    try:
        return tuple(backbone_features(model, X, T.kind) for X in (S.X, T.X[pool], T.X[lab])), where
    except (RuntimeError, ValueError):  # a classifier on another representation (closed-form CORAL)
        return None, "not measured: the network reads another representation than the inputs"


def explain_run(run_dir: str | Path, config, domains: dict, baseline: str = "scratch",
                retrain: bool = False) -> list[dict]:
    """Explain every ``negative`` row of the run (vs ``baseline``, flagged as the report flags them) and write
    ``explanations.json`` (with the seconds it took); returns the entries."""
    t0 = time.perf_counter()
    nt = measured_flags(run_dir, baseline)
    flagged = nt[nt.flag == "negative"]
    entries = explain_rows(flagged, run_dir, config, domains, baseline, retrain=retrain)
    path = Path(run_dir) / EXPLANATIONS_FILE
    path.write_text(json.dumps({"baseline": baseline, "rows": entries,
                                "seconds": round(time.perf_counter() - t0, 3)}, indent=1))
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
