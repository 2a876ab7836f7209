"""Which domain distance (or transferability score) predicts the gain of transfer, or its harm?

Both functions join a negative-transfer table (:func:`analysis.negative_transfer`, one row per
``(source, target, method, budget)``) with a distance table (:func:`analysis.distances.distance_table`,
one row per ``(source, target)``) on the pair, and score every numeric distance column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

PAIR = ["source", "target"]


def _joined(nt_table: pd.DataFrame, distances_table, columns: Sequence[str] | None, need: str,
            by: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Join on ``(source, target)``; pick the numeric distance columns."""
    dist = _as_frame(distances_table)
    for name, frame, cols in (("nt_table", nt_table, [*PAIR, need, *by]), ("distances_table", dist, PAIR)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise TransferlabError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")
    if columns is None:
        columns = [c for c in dist.columns if c not in PAIR and pd.api.types.is_numeric_dtype(dist[c])]
    unknown = [c for c in columns if c not in dist.columns]
    if unknown:
        raise TransferlabError(f"distances_table has no column(s) {unknown}")
    clash = [c for c in columns if c in nt_table.columns]
    left = nt_table.drop(columns=clash)
    joined = left.merge(dist[[*PAIR, *columns]], on=PAIR, how="inner")
    if joined.empty:
        raise TransferlabError("no (source, target) pair is in both the results and the distances table")
    return joined, list(columns)


def _as_frame(distances_table) -> pd.DataFrame:
    """Accept a DataFrame or ``{(source, target): {name: value}}``."""
    if isinstance(distances_table, pd.DataFrame):
        return distances_table
    if isinstance(distances_table, Mapping):
        return pd.DataFrame([{"source": s, "target": t, **vals} for (s, t), vals in distances_table.items()])
    raise TransferlabError(f"distances_table must be a DataFrame or a mapping, got {type(distances_table).__name__}")


def _groups(joined: pd.DataFrame, by: Sequence[str]):
    if not by:
        yield {}, joined
        return
    for key, g in joined.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key)), g


def distance_gain_correlation(
    nt_table: pd.DataFrame,
    distances_table,
    columns: Sequence[str] | None = None,
    by: Sequence[str] = (),
) -> pd.DataFrame:
    r"""Spearman rank correlation of each distance with the transfer gain across the matrix.

    .. math:: \rho = \operatorname{corr}\big(\operatorname{rank}(d), \operatorname{rank}(\text{gain})\big)

    with the two-sided p-value of ``scipy.stats.spearmanr`` (t approximation, no tie correction beyond
    midranks). A good harm predictor has :math:`\rho < 0`: larger distance, smaller gain. Rows with a NaN
    gain or distance are left out; fewer than 3 points or a constant column give NaN.

    Parameters
    ----------
    nt_table : pandas.DataFrame
        With ``source, target, gain`` (plus any ``by`` columns).
    distances_table : pandas.DataFrame or mapping
        ``source, target`` and one numeric column per distance, or ``{(source, target): {name: value}}``.
    columns : sequence of str, optional
        Distance columns to score (default: every numeric one).
    by : sequence of str
        Compute separately per group, e.g. ``("method", "budget")``.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, distance, n, rho, p_value``.
    """
    from scipy.stats import spearmanr

    joined, columns = _joined(nt_table, distances_table, columns, "gain", by)
    rows = []
    for key, g in _groups(joined, by):
        for col in columns:
            x, y = _finite_pair(g[col], g["gain"])
            rho = p = np.nan
            if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                res = spearmanr(x, y)
                rho, p = float(res.statistic), float(res.pvalue)
            rows.append({**key, "distance": col, "n": len(x), "rho": rho, "p_value": p})
    return pd.DataFrame(rows, columns=[*by, "distance", "n", "rho", "p_value"])


def harm_auroc(
    nt_table: pd.DataFrame,
    distances_table,
    columns: Sequence[str] | None = None,
    by: Sequence[str] = (),
    positive: str = "negative",
) -> pd.DataFrame:
    r"""AUROC of each distance, used as a score, for detecting cells flagged ``positive`` (negative transfer).

    .. math:: \mathrm{AUROC} = P\big(d_{\text{harmed}} > d_{\text{not harmed}}\big) + \tfrac12 P(=)

    (``sklearn.metrics.roc_auc_score`` with the distance as the score and ``flag == positive`` as the
    class). ``0.5``: no information; above: larger distance, more harm; below 0.5 the score is inversely
    related (as expected for transferability scores like LogME, where higher means better transfer).
    NaN when only one class is present.

    Parameters
    ----------
    nt_table : pandas.DataFrame
        With ``source, target, flag`` (plus any ``by`` columns).
    distances_table, columns, by
        As in :func:`distance_gain_correlation`.
    positive : str
        The flag value treated as the positive class (``"harm"`` for :func:`analysis.da_harm` tables).

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, distance, n, n_positive, auroc``.
    """
    from sklearn.metrics import roc_auc_score

    joined, columns = _joined(nt_table, distances_table, columns, "flag", by)
    rows = []
    for key, g in _groups(joined, by):
        label = (g["flag"].astype(str) == positive).astype(int)
        for col in columns:
            score, y = _finite_pair(g[col], label)
            auc = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else np.nan
            rows.append({**key, "distance": col, "n": len(y), "n_positive": int(y.sum()), "auroc": auc})
    return pd.DataFrame(rows, columns=[*by, "distance", "n", "n_positive", "auroc"])


def _finite_pair(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    x = pd.to_numeric(a, errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(b, errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]

