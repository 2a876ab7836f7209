"""``transferlab predict``: forecast every pair of a config without running its matrix, and check the forecast
once the matrix has run.

Flow (data one way): the config's domains and pairs (``adapt``) → per pair, per label budget, per seed the
protocol's labelled target subset (``Domain.split`` / ``labelled_subset``, the very samples the matrix's cells
train on; never the test split) → :func:`analysis.forecast.pair_predictors` and label-free distances between the
source and the target's unlabelled pool → the mean over seeds → ``predictions.csv`` and a ranked list of sources
per target. When the output folder also holds the finished matrix (``cells/``), the predictions are scored
against it with :func:`analysis.forecast.evaluate_predictors` → ``predictor_evaluation.csv``.

Every predictor family is timed (``seconds`` in ``predict.json``), to compare with the matrix's own cost.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError
from analysis.forecast import EVALUATION_FILE, PREDICTIONS_FILE, SUMMARY_FILE

#: Label-free distances between the source and the target's unlabelled pool (cheap at these sizes).
DISTANCES = ("mmd2", "coral", "wasserstein")


def predict_matrix(config, domains: dict, pairs: list[tuple[str, str]], out_dir: str | Path,
                   seeds: list[int] | None = None) -> dict:
    """Compute, write and (when the matrix is there) evaluate the predictions; returns a summary dict."""
    from analysis.distances import domain_distances
    from analysis.forecast import (checked_verdicts, fit_source_model, pair_evidence, pair_predictors,
                                   rank_sources, target_only_outcomes)

    out = Path(out_dir)
    budgets = [b for b in config.budgets if b > 0]
    if not budgets:
        raise TransferlabError("budgets: predict needs at least one budget > 0 (its predictors read the "
                               "labelled target subset)")
    for name in {n for p in pairs for n in p}:
        if domains[name].kind == "text":
            raise TransferlabError(f"domain {name!r} holds text; predict needs vector or image inputs")
    seeds = list(seeds if seeds is not None else config.seeds)
    test_fraction = float(config.data["test_fraction"])  # parse_config filled the default
    transductive = bool(config.data["transductive"])
    seconds: dict[str, float] = defaultdict(float)
    per_predictor: dict[str, float] = {}  # each predictor's own seconds (within "predictors")
    n_classes = max(d.n_classes for d in domains.values())
    source_models, target_only, per_pair = {}, {}, defaultdict(list)
    for source, target in pairs:
        S, T = domains[source], domains[target]
        if source not in source_models:
            t0 = time.perf_counter()
            source_models[source] = (flat_inputs(S.X), fit_source_model(flat_inputs(S.X), S.y))
            seconds["source models"] += time.perf_counter() - t0
        xs, model = source_models[source]
        for seed in seeds:
            split = T.split(seed, test_fraction, transductive)
            t0 = time.perf_counter()
            dist = domain_distances(xs, flat_inputs(T.X[split.train]), which=list(DISTANCES), seed=seed)
            seconds["distances"] += time.perf_counter() - t0
            for budget in budgets:
                lab = T.labelled_subset(split, budget, seed)
                x_lab = flat_inputs(T.X[lab])
                t0 = time.perf_counter()
                key = (target, seed, budget)
                if key not in target_only:
                    target_only[key] = target_only_outcomes(x_lab, T.y[lab])
                values = pair_predictors(xs, S.y, x_lab, T.y[lab], n_classes, source_model=model,
                                         target_only=target_only[key], timings=per_predictor, seed=seed)
                seconds["predictors"] += time.perf_counter() - t0
                per_pair[(source, target, budget)].append({**dist, **values})
    rows = []
    for (source, target, budget), values in per_pair.items():
        frame = pd.DataFrame(values).drop(columns="evidence")
        mean = frame.mean()
        # seeds draw independent splits: the mean's standard error is √(Σ se²) / n_seeds
        se = float(np.sqrt(np.nansum(frame.pooled_gain_se.to_numpy(float) ** 2)) / len(frame))
        rows.append({"source": source, "target": target, "budget": budget, **mean.to_dict(), "pooled_gain_se": se,
                     "evidence": pair_evidence(float(mean.pooled_gain), se, int(round(mean.n_labelled * len(frame)))),
                     "n_seeds": len(frame)})
    predictions = pd.DataFrame(rows)
    summary: dict = {"pairs": len(pairs), "budgets": budgets, "seeds": seeds,
                     "seconds": {k: round(v, 3) for k, v in seconds.items()},
                     "predictions": str(out / PREDICTIONS_FILE)}
    summary["seconds"]["total"] = round(sum(seconds.values()), 3)
    summary["seconds_per_predictor"] = {k: round(v, 4) for k, v in sorted(per_predictor.items())}
    measured = measured_rows(out)
    checked = checked_verdicts(predictions, measured)
    ranked = rank_sources(checked)
    out.mkdir(parents=True, exist_ok=True)
    ranked.to_csv(out / PREDICTIONS_FILE, index=False)
    evaluation = None
    if measured is not None:
        from analysis.forecast import verdict_precision

        baseline = measured.attrs.get("baseline")
        summary["verdicts"] = {"baseline": baseline, **verdict_precision(checked, measured)}
        evaluation = evaluate_run(out, predictions, baseline)
    if evaluation is not None:
        summary["evaluation"] = str(out / EVALUATION_FILE)
        summary["matrix_seconds"] = _matrix_seconds(out)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return {**summary, "table": ranked, "evaluation_table": evaluation}


def measured_rows(out: Path) -> pd.DataFrame | None:
    """The finished (or partly finished) matrix's rows in ``out`` with their gains against the decision
    baseline (``target-only`` when the run has it, else ``scratch``); None when there is no matrix. The
    baseline's name is in ``attrs["baseline"]``."""
    if not (out / "cells").is_dir():
        return None
    import analysis

    results = analysis.load_results(out)
    if results.empty:
        return None
    baseline = "target-only" if "target-only" in set(results.method) else "scratch"
    table = measured_flags(out, baseline=baseline, convergence_guard=False)
    table = table[table.budget > 0] if "budget" in table else table
    table.attrs["baseline"] = baseline
    return table


def evaluate_run(out: Path, predictions: pd.DataFrame, baseline: str = "scratch") -> pd.DataFrame | None:
    """Score the predictions against the finished matrix in ``out`` (None when there is none)."""
    if not (out / "cells").is_dir():
        return None
    import analysis
    from analysis.forecast import evaluate_predictors

    if analysis.load_results(out).empty:
        return None
    # A forecast is judged against what the matrix measured: the gains, and the flags the statistics give
    # them. Rows whose arms had not converged are never flagged by negative_transfer (issue #11), which would
    # leave short matrices with nothing to score, so the convergence guard is set aside here, and only here.
    nt = measured_flags(out, baseline=baseline, convergence_guard=False)
    table = evaluate_predictors(predictions, nt)
    table.to_csv(out / EVALUATION_FILE, index=False)
    return table


def measured_flags(run_dir: str | Path, baseline: str = "scratch", convergence_guard: bool = True) -> pd.DataFrame:
    """The run's negative-transfer table as the report computes it (per-example outcomes for degenerate rows)
    against ``baseline``; ``convergence_guard=False`` tests rows whose arms had not converged too."""
    import analysis

    results = analysis.load_results(run_dir)
    if not convergence_guard:
        results = results.assign(converged=True)
    return analysis.negative_transfer(results, baseline=baseline, outcomes=analysis.load_outcomes(run_dir))


def _matrix_seconds(out: Path) -> float | None:
    """Sum of the cells' own wall times (the matrix's cost on its device)."""
    import analysis

    try:
        frame = analysis.load_results(out)
    except Exception:  # noqa: BLE001 - an unreadable run just has no cost figure
        return None
    return round(float(frame["wall_time"].sum()), 3) if "wall_time" in frame else None


def flat_inputs(x) -> np.ndarray:
    """A domain's inputs as a float 2-d array (uint8 images scaled to [0, 1], as the training loop does)."""
    x = np.asarray(x)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    return x.reshape(len(x), -1)
