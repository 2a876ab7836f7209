"""Which domain distance (or transferability score) predicts the gain of transfer, or its harm?

Both functions join a negative-transfer table (:func:`analysis.negative_transfer`, one row per
``(source, target, method, budget)``) with a distance table (:func:`analysis.distances.distance_table`,
one row per ``(source, target)``) on the pair, and score every numeric distance column.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

PAIR = ["source", "target"]
MAX_EXACT_PERMUTATIONS = 5040  # 7 domains: 7! permutations are enumerated


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
    n_permutations: int = MAX_EXACT_PERMUTATIONS,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Spearman rank correlation of each distance with the transfer gain, tested by permuting domains.

    .. math:: \rho = \operatorname{corr}\big(\operatorname{rank}(d), \operatorname{rank}(\text{gain})\big)

    The pairs of one matrix are not independent observations: 4 domains give 12 ordered pairs but only 6
    distinct symmetric distances, and every domain appears in 6 pairs. So the p-value is a Mantel / QAP test
    (Mantel 1967; Krackhardt 1988): the domain labels of the distance matrix are permuted (one permutation
    :math:`\pi` moves rows and columns alike, :math:`d_{st} \to d_{\pi(s)\pi(t)}`) while the gains stay,
    and ``p_value`` is the share of permutations (the identity included) with :math:`|\rho_\pi| \ge
    |\rho|`. All :math:`D!` permutations are enumerated when there are at most ``n_permutations`` of them
    (4 domains: 24, so no p below 1/24 ≈ 0.042 exists), else ``n_permutations`` random ones (seeded).
    Trying several distances is corrected by the max-statistic (Westfall & Young 1993): ``p_adjusted``
    compares :math:`|\rho|` with the largest :math:`|\rho_\pi|` over all distances of the group under
    the same permutation, which controls the family-wise error over the distances tried. ``p_spearman`` is
    scipy's independent-pairs p-value, for reference only. A good harm predictor has :math:`\rho < 0`.
    Rows with a NaN gain or distance are left out; fewer than 3 points or a constant column give NaN.

    Parameters
    ----------
    nt_table : pandas.DataFrame
        With ``source, target, gain`` (plus any ``by`` columns).
    distances_table : pandas.DataFrame or mapping
        ``source, target`` and one numeric column per distance, or ``{(source, target): {name: value}}``.
    columns : sequence of str, optional
        Distance columns to score (default: every numeric one).
    by : sequence of str
        Compute separately per group, e.g. ``("method", "budget")`` (multiplicity is corrected within a
        group, over its distances).
    n_permutations, seed : int
        Enumeration limit / number of random permutations, and their seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, distance, n, n_domains, rho, p_value, p_adjusted, p_spearman``.
    """
    from scipy.stats import rankdata, spearmanr

    joined, columns = _joined(nt_table, distances_table, columns, "gain", by)
    dist = _as_frame(distances_table)
    rows = []
    for key, g in _groups(joined, by):
        g = g[np.isfinite(pd.to_numeric(g["gain"], errors="coerce"))]
        domains = sorted(set(g["source"]) | set(g["target"]), key=str)
        perms = _domain_permutations(len(domains), n_permutations, seed)
        index = {d: i for i, d in enumerate(domains)}
        src = np.array([index[v] for v in g["source"]])
        tgt = np.array([index[v] for v in g["target"]])
        gain = g["gain"].to_numpy(float)
        stats_obs, stats_perm, info = {}, {}, {}
        for col in columns:
            lookup = {(s, t): v for s, t, v in zip(dist["source"], dist["target"],
                                                   pd.to_numeric(dist[col], errors="coerce"))}
            matrix = np.full((len(domains), len(domains)), np.nan)
            for (s, t), v in lookup.items():
                if s in index and t in index:
                    matrix[index[s], index[t]] = v
            permuted = matrix[perms[:, src], perms[:, tgt]]  # (permutations, rows); row 0: identity
            x = permuted[0]
            keep = np.isfinite(x)
            n = int(keep.sum())
            rho = p_sp = np.nan
            if n >= 3 and np.ptp(x[keep]) > 0 and np.ptp(gain[keep]) > 0:
                res = spearmanr(x[keep], gain[keep])
                rho, p_sp = float(res.statistic), float(res.pvalue)
                ok_perm = np.all(np.isfinite(permuted[:, keep]), axis=1)
                rx = rankdata(permuted[ok_perm][:, keep], axis=1)
                ry = rankdata(gain[keep])
                rx = rx - rx.mean(1, keepdims=True)
                ry = ry - ry.mean()
                with np.errstate(invalid="ignore", divide="ignore"):
                    r_perm = (rx @ ry) / np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum())
                full = np.full(len(perms), np.nan)
                full[ok_perm] = r_perm
                stats_obs[col], stats_perm[col] = abs(rho), np.abs(full)
            info[col] = (n, rho, p_sp)
        tested = [c for c in columns if c in stats_obs]
        if tested:
            max_perm = np.nanmax(np.stack([stats_perm[c] for c in tested]), axis=0)
        for col in columns:
            n, rho, p_sp = info[col]
            p = p_adj = np.nan
            if col in stats_obs:
                tol = 1e-12
                perm = stats_perm[col]
                p = float(np.mean(perm[np.isfinite(perm)] >= stats_obs[col] - tol))
                p_adj = float(np.mean(max_perm[np.isfinite(max_perm)] >= stats_obs[col] - tol))
            rows.append({**key, "distance": col, "n": n, "n_domains": len(domains), "rho": rho, "p_value": p,
                         "p_adjusted": p_adj, "p_spearman": p_sp})
    return pd.DataFrame(rows, columns=[*by, "distance", "n", "n_domains", "rho", "p_value", "p_adjusted",
                                       "p_spearman"])


def _domain_permutations(n_domains: int, limit: int, seed: int) -> np.ndarray:
    """Every permutation of the domains (identity first) when there are at most ``limit``, else the
    identity and ``limit`` random ones."""
    if math.factorial(n_domains) <= limit:
        return np.array(list(itertools.permutations(range(n_domains))), dtype=np.int64).reshape(-1, n_domains)
    rng = np.random.default_rng(seed)
    return np.vstack([np.arange(n_domains), np.argsort(rng.random((limit, n_domains)), axis=1)])


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

