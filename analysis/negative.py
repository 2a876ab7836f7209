r"""Negative transfer and DA harm: seed-paired statistics over a transfer matrix of results.

Definition (Wang, Dai, Póczos & Carbonell, "Characterizing and Avoiding Negative Transfer", CVPR 2019):
negative transfer happens when using the source data makes the target error *larger* than learning from
the target data alone. Their negative-transfer gap is

.. math:: \mathrm{NTG} = \epsilon_\tau(A(S, \tau)) - \epsilon_\tau(A(\emptyset, \tau)),

the target error of algorithm :math:`A` trained with the source :math:`S` minus its error without it.
Here :math:`A(\emptyset, \tau)` is the ``scratch`` method (target labels only, same label budget), and we
report the *gain* :math:`= -\mathrm{NTG}` in accuracy: ``accuracy(method) − accuracy(scratch)``.
Negative transfer is a gain significantly below 0.

Statistics, per ``(source, target, method, budget)`` cell:

* differences ``d_s = acc_method(s) − acc_baseline(s)`` paired by seed ``s`` (the baseline is joined on
  ``(target, seed, budget)``: scratch ignores the source); repeated records of one seed are averaged;
* ``gain = mean(d)``, ``std`` (``ddof=1``), ``t = gain / (std / √n)``;
* two-sided paired t-test (equivalently a one-sample t-test of ``d`` against 0, as
  ``scipy.stats.ttest_rel``), ``df = n − 1``, and the ``confidence`` CI ``gain ± t_{df} · std/√n``;
* degenerate cases: ``n < 2`` → p and CI ``NaN``, flag ``inconclusive``; all differences equal
  (zero variance) → CI of zero width at ``gain``, ``p = 0`` if ``gain ≠ 0`` and ``p = 1`` if ``gain = 0``;
* Benjamini–Hochberg q-values over every row with a p-value (the whole matrix is one family of tests);
* flag ``negative`` if ``q < alpha`` and ``gain < 0``, ``positive`` if ``q < alpha`` and ``gain > 0``,
  else ``inconclusive``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

REQUIRED_COLUMNS = ("source", "target", "method", "seed", "budget", "accuracy", "status")
CELL_KEYS = ["source", "target", "method", "budget"]


# --------------------------------------------------------------------------------------------- statistics
def paired_stats(diffs: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, spread, two-sided one-sample t-test against 0 and t confidence interval of paired differences.

    See the module docstring for the degenerate cases. Returns keys ``n_seeds, gain, std, t, df, ci_low,
    ci_high, p_value``.
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    nan = float("nan")
    out = {"n_seeds": n, "gain": float(d.mean()) if n else nan, "std": nan, "t": nan, "df": nan,
           "ci_low": nan, "ci_high": nan, "p_value": nan}
    if n < 2:
        return out
    gain, std = out["gain"], float(d.std(ddof=1))
    out.update(std=std, df=n - 1)
    if std <= 1e-12 * max(1.0, abs(gain)):
        out.update(std=0.0, ci_low=gain, ci_high=gain, p_value=0.0 if gain != 0 else 1.0,
                   t=math.copysign(math.inf, gain) if gain != 0 else 0.0)
        return out
    se = std / math.sqrt(n)
    t = gain / se
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    out.update(t=t, ci_low=gain - half, ci_high=gain + half, p_value=float(2 * stats.t.sf(abs(t), n - 1)))
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    r"""Benjamini–Hochberg adjusted p-values (q-values), the step-up FDR procedure (BH 1995).

    .. math:: q_{(i)} = \min_{j \ge i} \min\Big(1, \frac{m}{j}\, p_{(j)}\Big)

    over the ``m`` finite p-values sorted ascending; ``NaN`` entries stay ``NaN`` and do not count in
    ``m``. Matches ``scipy.stats.false_discovery_control(p, method="bh")``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok], kind="mergesort")
    scaled = p[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted
    q[ok] = out
    return q


def _flags(q: np.ndarray, gain: np.ndarray, alpha: float, low: str, high: str) -> np.ndarray:
    sig = np.nan_to_num(q, nan=1.0) < alpha
    return np.where(sig & (gain < 0), low, np.where(sig & (gain > 0), high, "inconclusive"))


# --------------------------------------------------------------------------------------------- inputs
def _ok_rows(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Validate columns; keep ``status == "ok"`` rows with a finite accuracy."""
    if not isinstance(df, pd.DataFrame):
        raise TransferlabError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [c for c in (*REQUIRED_COLUMNS, *extra) if c not in df.columns]
    if missing:
        raise TransferlabError(f"results table is missing column(s) {missing}; it has {list(df.columns)}")
    ok = df[df["status"].astype(str) == "ok"].copy()
    ok["accuracy"] = pd.to_numeric(ok["accuracy"], errors="coerce")
    return ok[np.isfinite(ok["accuracy"])]


def _per_seed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean accuracy per ``keys + [seed]`` (repeated records of one seed averaged)."""
    cols = {"accuracy": ("accuracy", "mean")}
    if "n_classes" in rows.columns:
        cols["n_classes"] = ("n_classes", "first")
    return rows.groupby(keys + ["seed"], dropna=False, sort=True).agg(**cols).reset_index()


def _paired_table(treated: pd.DataFrame, reference: pd.DataFrame, join: list[str], confidence: float,
                  chance: bool) -> pd.DataFrame:
    """One row of paired statistics per ``CELL_KEYS`` group of ``treated`` (see the module docstring)."""
    ref = _per_seed(reference, [k for k in join if k != "seed"])[join + ["accuracy"]]
    merged = _per_seed(treated, CELL_KEYS).merge(ref.rename(columns={"accuracy": "ref"}), on=join, how="left")
    rows = []
    for key, g in merged.groupby(CELL_KEYS, dropna=False, sort=True):
        paired = g[np.isfinite(g["ref"])]
        if len(paired):
            base, ref_acc, acc = "reference", paired["ref"], paired["accuracy"]
        elif chance and "n_classes" in g and np.all(pd.to_numeric(g["n_classes"], errors="coerce") > 0):
            base, ref_acc, acc = "chance", 1.0 / g["n_classes"].astype(float), g["accuracy"]
        else:
            base, ref_acc, acc = "none", pd.Series(dtype=float), g["accuracy"]
        stats = paired_stats((acc - ref_acc).to_numpy() if len(ref_acc) else [], confidence)
        if base == "none":
            stats["n_seeds"] = 0
        rows.append({**dict(zip(CELL_KEYS, key)), **stats, "mean_accuracy": float(acc.mean()),
                     "mean_reference": float(ref_acc.mean()) if len(ref_acc) else float("nan"),
                     "baseline": base})
    out = pd.DataFrame(rows, columns=[*CELL_KEYS, "n_seeds", "gain", "std", "t", "df", "ci_low", "ci_high",
                                      "p_value", "mean_accuracy", "mean_reference", "baseline"])
    out["q_value"] = benjamini_hochberg(out["p_value"].to_numpy(dtype=float))
    return out


# --------------------------------------------------------------------------------------------- public
def negative_transfer(df: pd.DataFrame, alpha: float = 0.05, baseline: str = "scratch",
                      confidence: float = 0.95) -> pd.DataFrame:
    """Gain of each transfer method over the target-only baseline, with paired tests and FDR control.

    Wang et al. (CVPR 2019) define negative transfer as the source making the target error larger than
    training on the target alone; the module docstring gives the statistics.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per trained cell with at least ``source, target, method, seed, budget, accuracy, status``
        (e.g. :func:`analysis.load_results`). Only ``status == "ok"`` rows with a finite accuracy count.
        ``baseline`` rows are joined on ``(target, seed, budget)``, whatever their ``source`` (a value or
        NaN). An optional ``n_classes`` column enables the chance baseline.
    alpha : float
        FDR level for the flags.
    baseline : str
        Method name of the target-only baseline.
    confidence : float
        Level of the t confidence interval.

    Returns
    -------
    pandas.DataFrame
        One row per ``(source, target, method ≠ baseline, budget)``, sorted by those keys, with columns
        ``source, target, method, budget, gain, ci_low, ci_high, p_value, q_value, flag, n_seeds,
        mean_accuracy, mean_scratch, std, t, df, baseline``. ``baseline`` says what the gain is measured
        against: ``"scratch"`` (seed-paired baseline runs; seeds without one are left out), ``"chance"``
        (no baseline run for any seed of the cell — typically budget 0, where scratch cannot train — and an
        ``n_classes`` column: the differences are ``accuracy − 1/n_classes``, tested the same way), or
        ``"none"`` (neither: gain, p and q are NaN, flag ``inconclusive``).
    """
    ok = _ok_rows(df)
    is_base = ok["method"].astype(str) == baseline
    if not is_base.any():
        warnings.warn(f"negative_transfer: no 'ok' rows of baseline method {baseline!r}; "
                      f"methods present: {sorted(ok['method'].astype(str).unique())}", stacklevel=2)
    out = _paired_table(ok[~is_base], ok[is_base], ["target", "seed", "budget"], confidence, chance=True)
    out["baseline"] = out["baseline"].replace({"reference": baseline})
    out["flag"] = _flags(out["q_value"].to_numpy(), out["gain"].to_numpy(), alpha, "negative", "positive")
    return _order(out.rename(columns={"mean_reference": "mean_scratch"}), "mean_scratch")


def da_harm(df: pd.DataFrame, reference: str = "finetune", alpha: float = 0.05,
            exclude: Sequence[str] = ("scratch",), confidence: float = 0.95) -> pd.DataFrame:
    """Does a domain-adaptation method help or harm compared with plain fine-tuning on the same pair?

    Same paired statistics as :func:`negative_transfer` (module docstring), with the ``reference``
    method's run of the same ``(source, target, seed, budget)`` as the baseline:
    ``gain = accuracy(method) − accuracy(reference)``. BH q-values over all rows; flag ``harm`` if
    ``q < alpha`` and ``gain < 0``, ``help`` if ``q < alpha`` and ``gain > 0``, else ``inconclusive``.

    Parameters
    ----------
    df : pandas.DataFrame
        Results as for :func:`negative_transfer`.
    reference : str
        The method every other one is compared with.
    alpha, confidence : float
    exclude : sequence of str
        Methods left out (the target-only baseline by default).

    Returns
    -------
    pandas.DataFrame
        One row per ``(source, target, method, budget)`` with columns ``source, target, method, budget,
        gain, ci_low, ci_high, p_value, q_value, flag, n_seeds, mean_accuracy, mean_reference, std, t, df,
        reference``; cells with no paired reference run get NaN statistics and ``inconclusive``.
    """
    ok = _ok_rows(df)
    methods = ok["method"].astype(str)
    if not (methods == reference).any():
        raise TransferlabError(f"da_harm: no 'ok' rows of reference method {reference!r}; "
                               f"methods present: {sorted(methods.unique())}")
    treated = ok[~methods.isin([reference, *exclude])]
    out = _paired_table(treated, ok[methods == reference], ["source", "target", "seed", "budget"],
                        confidence, chance=False)
    out["flag"] = _flags(out["q_value"].to_numpy(), out["gain"].to_numpy(), alpha, "harm", "help")
    out["reference"] = reference
    return _order(out.drop(columns="baseline"), "mean_reference", last="reference")


def _order(out: pd.DataFrame, mean_ref: str, last: str = "baseline") -> pd.DataFrame:
    cols = [*CELL_KEYS, "gain", "ci_low", "ci_high", "p_value", "q_value", "flag", "n_seeds", "mean_accuracy",
            mean_ref, "std", "t", "df", last]
    return out[cols].reset_index(drop=True)


def budget_crossover(df: pd.DataFrame, baseline: str = "scratch") -> pd.DataFrame:
    """Per ``(source, target, method)``: the label budget from which the target-only baseline wins.

    ``crossover_budget`` is the smallest budget ``b`` such that the mean gain (:func:`negative_transfer`)
    is below 0 at ``b`` and at every larger budget evaluated — "from ``b`` on, training from scratch beats
    transfer" (Wang et al. 2019 observe negative transfer growing with the target label budget). NaN when
    the gain at the largest budget is ``>= 0``. ``first_negative_budget`` is the smallest budget with a
    negative mean gain (NaN if none). Budgets whose gain is NaN (no baseline) are skipped. This is about
    point estimates; see ``flag`` in :func:`negative_transfer` for significance.

    Parameters
    ----------
    df : pandas.DataFrame
        Raw results (as for :func:`negative_transfer`), or its output (recognised by a ``gain`` column).
    baseline : str

    Returns
    -------
    pandas.DataFrame
        Columns ``source, target, method, crossover_budget, first_negative_budget, n_budgets``.
    """
    table = df if "gain" in df.columns else negative_transfer(df, baseline=baseline)
    missing = [c for c in (*CELL_KEYS, "gain") if c not in table.columns]
    if missing:
        raise TransferlabError(f"budget_crossover: table is missing column(s) {missing}")
    rows = []
    keys = ["source", "target", "method"]
    for key, g in table[np.isfinite(table["gain"])].groupby(keys, dropna=False, sort=True):
        g = g.sort_values("budget")
        budgets, gains = g["budget"].to_numpy(), g["gain"].to_numpy()
        negative = gains < 0
        # Suffix of budgets where every gain is negative.
        tail = np.flip(np.logical_and.accumulate(np.flip(negative)))
        rows.append({**dict(zip(keys, key)),
                     "crossover_budget": budgets[tail][0] if tail.any() else np.nan,
                     "first_negative_budget": budgets[negative][0] if negative.any() else np.nan,
                     "n_budgets": len(g)})
    return pd.DataFrame(rows, columns=[*keys, "crossover_budget", "first_negative_budget", "n_budgets"])
