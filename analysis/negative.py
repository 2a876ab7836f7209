r"""Negative transfer and DA harm over a transfer matrix: seed-paired, moderated, sequential, calibrated verdicts.

**What is tested.** Wang, Dai, Póczos & Carbonell ("Characterizing and Avoiding Negative Transfer", CVPR
2019) define negative transfer as the source making the target error larger than learning without it:
:math:`\mathrm{NTG} = \epsilon_\tau(A(S, \tau)) - \epsilon_\tau(A(\emptyset, \tau))`. We report the *gain*
:math:`= -\mathrm{NTG}` in accuracy, ``accuracy(method) − accuracy(baseline)``, seed-paired at the same
label budget and the same target-phase steps. Two baselines answer two questions: ``scratch`` (random init,
target labels only): "does transfer beat training from nothing?"; ``target-only`` (the transfer methods'
initial weights, target labels only): "does the *source domain* help?" — Wang et al.'s gap proper. Every
table says which one it used.

**Verdicts.** Each ``(source, target, method, budget)`` row gets one flag:

- ``negative`` — the gain is significantly below :math:`-m` (``min_effect``);
- ``positive`` — significantly above :math:`+m`;
- ``no-effect`` — significantly inside :math:`(-m, +m)`: an equivalence test (Schuirmann's TOST,
  :func:`analysis.stats.tost`), transfer neither helps nor hurts by more than the margin;
- ``inconclusive`` — tested, none of the three shown (more seeds may decide it: :func:`more_seeds`);
- ``untested`` — not tested, with the reason in ``reason`` (an arm had not converged at the judged step
  level; no baseline run on the row's seeds). Never ``negative`` or ``positive``.

**Model** (per family of rows, e.g. all budget > 0 rows of one call). Row :math:`g` has :math:`n_g` seeds
with paired differences :math:`d_{gs}`; :math:`d_{gs} \sim N(\mu_g, \sigma_g^2)` independent over seeds,
and, to share information across the matrix, :math:`1/\sigma_g^2 \sim \chi^2_{d_0} / (d_0 s_0^2)` (Smyth
2004, "Linear models and empirical Bayes methods for assessing differential expression in microarray
experiments", Stat. Appl. Genet. Mol. Biol. 3:3 — limma's moderated t):

.. math::

    \tilde s_g^2 = \frac{d_0 s_0^2 + \nu_g s_g^2}{d_0 + \nu_g}, \qquad
    \tilde t_g = \frac{\bar d_g}{\tilde s_g / \sqrt{n_g}} \sim t_{d_0 + \nu_g} \text{ under } \mu_g = 0 .

**Whole-count noise: the prior's scale has a test-sampling term.** An accuracy on :math:`n_g` test examples
is a binomial proportion, so each seed's paired difference carries the test split's sampling variance
:math:`c_{gs} = (a_{gs}(1 - a_{gs}) + b_{gs}(1 - b_{gs}))/n_g` (:math:`a, b` the arms' accuracies on that seed)
besides the training spread. Across a matrix :math:`n_g` runs from 47 (dslr) to 600 (digits), so the rows'
variances differ several-fold by construction, and one constant :math:`s_0^2` fits none of them: it inflates
the large splits' variances (power lost: a −5-point loss on amazon/caltech found 43 % of the time with
independent binomial arms) and the spread it must absorb pushes :math:`d_0` down. The prior's scale is
therefore, per row, :math:`s_{0g}^2 = \tau^2 + \kappa\, \bar c_g` (:math:`\bar c_g` the mean of
:math:`c_{gs}` over the seeds a look uses) — limma-trend (Sartor et al. 2006, BMC Bioinformatics 7:538; Law,
Chen, Shi & Smyth 2014, "voom", Genome Biology 15:R29: a prior variance that follows a known mean–variance
trend of count data), with :math:`(\tau^2, \kappa, d_0)` fitted by maximum likelihood of
:math:`s_g^2 / s_{0g}^2 \sim F(\nu_g, d_0)` (:func:`analysis.stats.variance_trend_prior`; zero variances of
tied whole counts enter censored below one test example). :math:`\kappa` is fitted, not fixed at 1: two
models scored on the same examples agree on most of them (measured on the demo's outcomes: they disagree on
0.40 × the examples independent arms would), and under noise unrelated to the split size :math:`\kappa \to
0`, the constant prior of :func:`analysis.stats.variance_prior` (also used when a row lacks ``n_test``). With
it the same loss is found 73.5 % of the time — what a z-test that *knows* every row's variance finds (74.2 %):
on 287–337-example splits with independent arms no test finds more (``bench/stats_calibration.py``). The prior
is fitted on **every row with paired data** — untested rows included — so which rows happen to be untested
never changes another row's p-value. The plain paired t (``test="t"``) stays available.

**Margin and direction.** ``min_effect`` :math:`m` defaults to the practical margin
:math:`\max(1\text{ pt}, 2\text{ test examples})` per row (``DEFAULT_MARGIN_POINTS``,
``DEFAULT_MARGIN_EXAMPLES``): one test example is the resolution of a whole-count accuracy, and a margin of
one example can never be shown to contain a difference (rows one example apart on every seed sit *on* it;
on dslr one example is 2.1 pts); two examples is the smallest margin a whole-count difference can lie
strictly inside, and below 1 pt no transfer-learning benchmark calls two methods different. The three
one-sided questions, at each look,

.. math:: p^- = F_t\big((\bar d + m)/\widetilde{se}\big)\ (H_0{:}\ \mu \ge -m), \quad
          p^+ = 1 - F_t\big((\bar d - m)/\widetilde{se}\big)\ (H_0{:}\ \mu \le m), \quad
          p^{=} = \max\big(1 - p^-, 1 - p^+\big)\ (H_0{:}\ |\mu| \ge m),

each get their own Benjamini–Hochberg family: the expected share of false ``negative`` flags among
``negative`` flags is at most :math:`\alpha`, likewise for ``positive``; for ``no-effect`` the expected share
of rows whose true :math:`|\mu| \ge m` among the ``no-effect`` rows is at most :math:`\alpha` (TOST p-values
are valid for every :math:`\mu` outside the margin). ``p_value``/``q_value`` are those of the observed
direction; ``p_two_sided`` :math:`= \min(1, 2\min(p^-, p^+))`. ``no_harm`` (kept): the BH-adjusted
:math:`1 - p^-` below :math:`\alpha`.

**Seeds: fixed or adaptive.** A *fixed* design (``seeds: 5``) tests each row once with the nominal
p-values above. An *adaptive* design (``seeds: {min: 3, max: 10}``; :func:`load_results` puts the config's
``seeds`` in ``frame.attrs["seeds"]``) adds seeds to undecided rows (:func:`more_seeds`, the stopping rule
the runner calls) at the planned totals :func:`seed_looks` (3, 5, 8, 10). Looking again after each stage
would inflate the false flags, so an adaptive frame is tested with a **group-sequential design with
alpha spending** (Lan & DeMets 1983, O'Brien–Fleming-type spending; Jennison & Turnbull 2000): a row's p at
each look it had (its first :math:`n_k` seeds in seed order; the prior refitted on the matrix as it was at
that look) becomes a *repeated p-value* (:func:`analysis.stats.sequential_p`), the smallest overall level
whose boundary has been crossed so far. Repeated p-values are super-uniform under the null whatever rule
stops a row, and BH is monotone in its p-values, so BH on them keeps P(any false ``negative`` in a null
matrix) :math:`\le \alpha` at whatever stage the procedure stops. Why this and not anytime-valid confidence
sequences (Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49:1055): a confidence sequence is valid under continuous monitoring, for
infinitely many looks, and pays for it with boundaries that grow like :math:`\sqrt{\log\log n / n}` and
(for the nonparametric ones) sub-Gaussian or bounded-increment assumptions instead of the moderated t's
variance sharing across rows; our looks are few and planned (3, 5, 8, 10 seeds, the runner only ever asks
:func:`more_seeds` after a stage), and with four looks O'Brien–Fleming spending keeps the last look's
nominal level near the fixed test's (it spends almost nothing at 3 seeds) while keeping the moderated
t's power. Measured (``tests/analysis/test_adaptive_calibration.py``, ``bench/stats_calibration.py``, 500
null matrices per line): the adaptive procedure's false-flag rate is 0.0–0.6 % and it finds a planted
−5-point loss as often as the known-variance z-test at 10 seeds does (98.3 % vs 99.5 % Gaussian, 73.5 % vs
74.2 % independent binomial on Office-Caltech's splits) — the looks cost almost nothing.

**Degenerate rows** — zero variance across seeds or a single seed — never get :math:`p = 0`: under
moderation :math:`\tilde s_g > 0`. With per-example outcomes (``outcomes=``, :func:`analysis.load_outcomes`)
such a row must also pass an exact McNemar-type test on the test examples pooled over its seeds
(:func:`analysis.stats.binom_one_sided`); its one-sided p is the larger of the two. With the plain t a
degenerate row has no t-test: its p is the exact test's, or NaN with a ``note``.

**What the data can show.** ``mde``: the smallest loss detected with 80 % power at the row's (moderated)
standard error and df at the per-test level :math:`\alpha`, :math:`m + (t_{1-\alpha} + t_{0.8})\,
\widetilde{se}`; for inconclusive rows ``seeds_needed``: the seed count at which the observed effect would
reach that power (NaN within the margin).

**Calibration and power, measured** by simulation (:mod:`analysis.simulate`): fixed seeds on 50-cell
matrices with ties in ``tests/analysis/test_calibration.py``, the whole adaptive procedure through
:func:`more_seeds` on Office-Caltech10-shaped matrices under Gaussian and whole-count binomial noise in
``tests/analysis/test_adaptive_calibration.py``; the full table (500 matrices per line, each with its
Monte-Carlo error) in ``bench/RESULTS.md`` §7, made by ``bench/stats_calibration.py``.

**Step levels.** When the runner trained a row's arms longer (records' ``train.steps``: 2×, 4×, 8× the
configured steps) the row is judged at the **largest** level its transfer arm has records for, paired with
the baseline's records at that same level (``steps`` column). An arm with ``converged == False`` there makes
the row ``untested`` (``reason`` names the arm, its seeds and why).

**Families.** The budget > 0 rows of one call. Budget 0 is not in it: at budget 0 no target-only baseline
can train, so those rows go to :func:`budget_zero` (exact tests on pooled test counts, its own table and BH
family).

**Which rows count** (one rule, :func:`ok_rows`, shared with :mod:`analysis.plots` and
:mod:`analysis.report`): ``status == "ok"`` (any case; every row when the table has no ``status``) and a
finite accuracy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

from .selection import selected_rows

from .stats import (
    ZERO_VARIANCE,
    benjamini_hochberg,
    binom_one_sided,
    mcnemar_exact,
    moderated_variance,
    paired_stats,
    sequential_p,
    t_cdf,
    t_ppf,
    variance_prior,
    variance_trend_prior,
)

__all__ = ["benjamini_hochberg", "budget_crossover", "budget_zero", "da_harm", "decide", "mcnemar_exact",
           "more_seeds", "negative_transfer", "ok_rows", "paired_stats", "seed_design", "seed_looks",
           "variance_prior", "verdict_counts"]

REQUIRED_COLUMNS = ("source", "target", "method", "seed", "budget", "accuracy", "status")
CELL_KEYS = ["source", "target", "method", "budget"]
MORE_SEEDS_COLUMNS = [*CELL_KEYS, "seeds"]
BASELINES = ("scratch", "target-only")
TESTS = ("moderated", "t")
FLAGS = ("negative", "positive", "no-effect", "inconclusive", "untested")
DECIDED = ("negative", "positive", "no-effect")
UNTESTED_KINDS = ("unconverged", "no-baseline")
POWER = 0.8
MAX_SEEDS = 1000
DEFAULT_MARGIN_POINTS = 1.0
DEFAULT_MARGIN_EXAMPLES = 2
DEFAULT_SEEDS = {"min": 3, "max": 10}
SPENDING = "obrien-fleming"
STEPS_COLUMN = "train.steps"
OK_STATUS = "ok"


# --------------------------------------------------------------------------------------------- which rows
def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows every statistic, plot and report table uses: finished cells with a finite accuracy.

    ``status == "ok"`` (case and surrounding blanks ignored; every row when the table has no ``status``
    column) and ``accuracy`` numeric and finite. Failed or diverged cells never count. A sweep's table (a
    ``selected`` column, :func:`analysis.load_results`) keeps each group's selected configuration under the
    sweep's label (:func:`analysis.selection.selected_rows`): verdicts judge the configuration a label-free rule
    chose, never the best one on the test split.
    """
    out = selected_rows(df)
    if "status" in out.columns:
        out = out[out["status"].astype(str).str.strip().str.lower() == OK_STATUS]
    if "accuracy" in out.columns:
        out = out.assign(accuracy=pd.to_numeric(out["accuracy"], errors="coerce"))
        out = out[np.isfinite(out["accuracy"])]
    return out


# --------------------------------------------------------------------------------------------- seed design
def seed_design(spec: Any) -> dict[str, int] | None:
    """The seed design a config's ``seeds`` states: ``{"min": a, "max": b}`` (adaptive) or ``None`` (fixed).

    ``spec`` is what the config said (``run.json``'s ``config.seeds``, :func:`load_results`' ``attrs["seeds"]``):
    an int or a list is a fixed design (``None``: every row tested once on the seeds it has); a mapping with
    ``min`` and ``max`` (positive ints, ``min <= max``) is adaptive; a mapping ``{"design": "fixed", …}`` is
    fixed too.
    """
    if spec is None or isinstance(spec, (int, list, tuple)) and not isinstance(spec, bool):
        return None
    if isinstance(spec, Mapping):
        if str(spec.get("design", "adaptive")) == "fixed":
            return None
        lo, hi = spec.get("min"), spec.get("max")
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in (lo, hi))
        if ok and lo <= hi:
            return {"min": int(lo), "max": int(hi)}
    raise TransferlabError(f"seeds: expected an int, a list of seeds or {{min: a, max: b}} with 1 <= a <= b, "
                           f"got {spec!r}")


def seed_looks(min_seeds: int, max_seeds: int) -> list[int]:
    """The planned seed totals of an adaptive design: ``min``, then ×1.5 (rounded up), capped at ``max``.

    ``seed_looks(3, 10) == [3, 5, 8, 10]``. Few looks keep the spending design's last level near the fixed
    test's; growing by half keeps each stage's added information similar on the :math:`1/\\sqrt n` scale.
    """
    looks = [int(min_seeds)]
    while looks[-1] < max_seeds:
        looks.append(min(int(max_seeds), max(looks[-1] + 1, math.ceil(1.5 * looks[-1]))))
    return looks


# --------------------------------------------------------------------------------------------- decisions
def _seeds_needed(effect: float, s: float, d0: float, alpha: float) -> float:
    """Smallest seed count ``n`` with ``effect ≥ (t_{1-α} + t_power)·s/√n`` on ``d0 + n − 1`` df."""
    if not (np.isfinite(effect) and effect > 0 and np.isfinite(s) and s > 0):
        return float("nan")
    n = np.arange(2, MAX_SEEDS + 1, dtype=float)
    df = d0 + n - 1
    enough = effect >= (t_ppf(1 - alpha, df) + t_ppf(POWER, df)) * s / np.sqrt(n)
    return float(n[np.argmax(enough)]) if enough.any() else math.inf


def _row_moments(diffs: np.ndarray, n_keep: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, mean, var)`` per row over its first ``n_keep`` seeds (all when None); var NaN below 2 seeds."""
    d = diffs if n_keep is None else diffs[:, :n_keep]
    if not d.size:
        return np.zeros(len(d), dtype=int), np.full(len(d), np.nan), np.full(len(d), np.nan)
    n = np.isfinite(d).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(d, 1)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        dev = np.where(np.isfinite(d), d - mean[:, None], 0.0)
        var = np.where(n > 1, (dev ** 2).sum(1) / np.maximum(n - 1, 1), np.nan)
    var = np.where(var < ZERO_VARIANCE, 0.0, var)
    return n, mean, var


def _look_test_variance(test_variance, n_keep: int | None = None):
    """Per row, the mean test-sampling variance over its first ``n_keep`` seeds (None without one)."""
    if test_variance is None:
        return None
    c = test_variance if n_keep is None else test_variance[:, :n_keep]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no seed: NaN, never in the fit
        return np.nanmean(c, axis=1) if c.size else np.full(len(c), np.nan)


def _nominal(n, mean, var, margin, resolution, fit, test: str, test_variance=None) -> dict[str, Any]:
    """One look's one-sided p-values against the margin, with the prior fitted on the ``fit`` rows.

    ``test_variance`` (per row, this look's): the prior's scale is :math:`\tau^2 + \kappa c_g`
    (:func:`analysis.stats.variance_trend_prior`); without it, one constant :math:`s_0^2`.
    """
    nu = n - 1.0
    if test == "moderated":
        c_fit = None if test_variance is None else test_variance[fit]
        tau2, kappa, d0 = variance_trend_prior(var[fit], nu[fit], c_fit,
                                               None if resolution is None else resolution[fit])
        s0sq = tau2 + kappa * np.nan_to_num(test_variance, nan=0.0) if kappa > 0 else np.full(len(n), tau2)
    else:
        s0sq, d0 = np.full(len(n), np.nan), 0.0
    s2, df = moderated_variance(var, nu, s0sq, d0)
    if not (np.all(np.isfinite(s0sq)) and d0 > 0):
        d0 = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(s2 / n)
        p_loss = t_cdf((mean + margin) / se, df)
        p_gain = 1.0 - t_cdf((mean - margin) / se, df)
    return {"p_loss": p_loss, "p_gain": p_gain, "s2": s2, "df": df, "se": se,
            "prior_sd": np.sqrt(s0sq), "prior_df": d0}


def decide(diffs, min_effect, *, resolution=None, tested=None, alpha: float = 0.05, test: str = "moderated",
           confidence: float = 0.95, looks: Sequence[int] | None = None, max_seeds: int | None = None,
           spending: str = SPENDING, p_exact=None, test_variance=None) -> dict[str, Any]:
    r"""The verdicts of one family of rows, on arrays (the module docstring gives the model).

    Parameters
    ----------
    diffs : array ``(rows, seeds)``
        Paired differences in seed order, NaN after a row's last seed (a row with no paired seed: all NaN).
    min_effect : array-like, one per row (or a scalar)
        The margin :math:`m` (a fraction of accuracy).
    resolution : array-like, optional
        One test example per row (``1 / n_test``): zero variances enter the prior censored below it.
    tested : bool array, optional
        The rows that get a verdict (default: every row with data). The prior is fitted on every row with
        data either way; BH counts only the tested rows.
    looks, max_seeds
        An adaptive design's planned seed totals and maximum (:func:`seed_looks`): p-values become repeated
        p-values over the looks each row had. ``None``: the fixed test.
    p_exact : pair of arrays, optional
        ``(p_loss, p_gain)`` exact one-sided p of degenerate rows at the current look (NaN elsewhere).
    test_variance : array ``(rows, seeds)``, optional
        Per seed, the binomial test-sampling variance of its paired difference,
        :math:`(a(1-a) + b(1-b))/n_\text{test}`, aligned with ``diffs``: the moderated prior's scale becomes
        :math:`\tau^2 + \kappa \bar c_g` (:func:`analysis.stats.variance_trend_prior`, :math:`\bar c_g`
        the mean over the seeds a look uses). ``None``: one constant prior scale.

    Returns
    -------
    dict
        Arrays per row: ``flag`` (``negative, positive, no-effect, inconclusive``; ``""`` for untested rows),
        ``n, gain, var, s, df, se, t, ci_low, ci_high, mde, degenerate``, the (repeated) ``p_loss, p_gain,
        p_equivalence, p_no_harm``, their BH ``q_*``, ``p, q`` of the observed direction, ``p_two_sided``,
        ``direction``; scalars ``prior_sd, prior_df`` (the current look's prior; ``prior_df`` 0 when not
        moderated; ``prior_sd`` per row under the trend).
    """
    if test not in TESTS:
        raise TransferlabError(f"test must be one of {list(TESTS)}, got {test!r}")
    d = np.atleast_2d(np.asarray(diffs, dtype=float))
    tv = None if test_variance is None else np.atleast_2d(np.asarray(test_variance, dtype=float))
    rows = d.shape[0]
    n, mean, var = _row_moments(d)
    m = np.broadcast_to(np.asarray(min_effect, dtype=float), (rows,)).copy()
    res = None if resolution is None else np.broadcast_to(np.asarray(resolution, dtype=float), (rows,))
    has_data = n > 0
    tested = has_data if tested is None else (np.asarray(tested, dtype=bool) & has_data)
    now = _nominal(n, mean, var, m, res, has_data, test, _look_test_variance(tv))
    degenerate = (n < 2) | ~(var > 0)
    p_loss, p_gain = now["p_loss"].copy(), now["p_gain"].copy()
    if p_exact is not None:
        for p_t, p_x in zip((p_loss, p_gain), p_exact):
            p_x = np.broadcast_to(np.asarray(p_x, dtype=float), (rows,))
            use = degenerate & np.isfinite(p_x)
            p_t[:] = np.where(use, np.where(np.isfinite(p_t), np.maximum(p_t, p_x), p_x), p_t)
    with np.errstate(invalid="ignore"):
        p_eq = np.maximum(1.0 - p_loss, 1.0 - p_gain)  # TOST: H0 |mu| >= m (analysis.stats.tost)
    p_no_harm = 1.0 - p_loss
    if looks is not None:
        p_loss, p_gain, p_eq, p_no_harm = _sequential(d, n, m, res, has_data, test, looks, max_seeds, spending,
                                                      (p_loss, p_gain, p_eq, p_no_harm), tv)
    masked = [np.where(tested, p, np.nan) for p in (p_loss, p_gain, p_eq, p_no_harm)]
    q_loss, q_gain, q_eq, q_no_harm = (benjamini_hochberg(p) for p in masked)
    neg = np.nan_to_num(q_loss, nan=1.0) < alpha
    pos = ~neg & (np.nan_to_num(q_gain, nan=1.0) < alpha)
    same = ~neg & ~pos & (np.nan_to_num(q_eq, nan=1.0) < alpha)
    flag = np.where(neg, "negative", np.where(pos, "positive", np.where(same, "no-effect", "inconclusive")))
    flag = np.where(tested, flag, "").astype(object)
    direction = np.where(np.nan_to_num(p_loss, nan=1.0) <= np.nan_to_num(p_gain, nan=1.0), -1.0, 1.0)
    se, df = now["se"], now["df"]
    with np.errstate(invalid="ignore", divide="ignore"):
        half = t_ppf(0.5 + confidence / 2, df) * se
        mde = m + (t_ppf(1 - alpha, df) + t_ppf(POWER, df)) * se
        tstat = mean / se
    return {"flag": flag, "n": n, "gain": mean, "var": var, "s": np.sqrt(now["s2"]), "df": df, "se": se,
            "t": tstat, "ci_low": mean - half, "ci_high": mean + half, "mde": mde, "degenerate": degenerate,
            "tested": tested, "p_loss": masked[0], "p_gain": masked[1], "p_equivalence": masked[2],
            "p_no_harm": masked[3], "q_loss": q_loss, "q_gain": q_gain, "q_equivalence": q_eq,
            "q_no_harm": q_no_harm, "p": np.where(direction < 0, masked[0], masked[1]),
            "q": np.where(direction < 0, q_loss, q_gain),
            "p_two_sided": np.minimum(1.0, 2.0 * np.minimum(masked[0], masked[1])), "direction": direction,
            "negative": neg & tested, "positive": pos & tested, "no_effect": same & tested,
            "prior_sd": now["prior_sd"], "prior_df": now["prior_df"]}


def _sequential(d, n, m, res, has_data, test, looks, max_seeds, spending, current, tv=None):
    """Repeated p-values over the planned looks each row had (the current one last, with ``current``'s p)."""
    looks = sorted(int(k) for k in looks)
    top = max(int(max_seeds or looks[-1]), int(n.max()) if len(n) else 1)
    earlier = [k for k in looks if k < (n.max() if len(n) else 0)]
    # nominal p of each earlier look, for the rows that went past it (the prior as the matrix was then)
    per_look = []
    for k in earlier:
        nk, mk, vk = _row_moments(d, k)
        r = _nominal(nk, mk, vk, m, res, has_data & (nk > 0), test, _look_test_variance(tv, k))
        with np.errstate(invalid="ignore"):
            p_eq = np.maximum(1.0 - r["p_loss"], 1.0 - r["p_gain"])
        per_look.append((k, (r["p_loss"], r["p_gain"], p_eq, 1.0 - r["p_loss"])))
    out = [np.full(len(n), np.nan) for _ in current]
    histories: dict[tuple[float, ...], list[int]] = {}
    for i in np.flatnonzero(has_data):
        own = tuple(k for k, _ in per_look if k < n[i]) + (int(n[i]),)
        histories.setdefault(own, []).append(i)
    index = {k: j for j, (k, _) in enumerate(per_look)}
    for own, members in histories.items():
        idx = np.array(members)
        fractions = tuple(k / top for k in own)
        for s in range(len(current)):
            stack = [per_look[index[k]][1][s][idx] for k in own[:-1]] + [current[s][idx]]
            out[s][idx] = sequential_p(np.vstack(stack), fractions, spending)
    return out


# --------------------------------------------------------------------------------------------- inputs
def _checked(df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TransferlabError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TransferlabError(f"results table is missing column(s) {missing}; it has {list(df.columns)}")
    return ok_rows(df)


def _converged(rows: pd.DataFrame) -> pd.Series:
    """``converged`` as booleans; an absent column or a missing value (older records) counts as converged."""
    if "converged" not in rows.columns:
        return pd.Series(True, index=rows.index)

    def said_no(v) -> bool:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        if isinstance(v, (bool, np.bool_)):
            return not v
        return str(v).strip().lower() in ("false", "0", "0.0", "no")

    return ~rows["converged"].map(said_no).astype(bool)


def _steps(rows: pd.DataFrame) -> pd.Series:
    """Target-phase steps of each record (``train.steps``); -1 where a record does not say."""
    if STEPS_COLUMN not in rows.columns:
        return pd.Series(-1.0, index=rows.index)
    return pd.to_numeric(rows[STEPS_COLUMN], errors="coerce").fillna(-1.0)


def _judged_level(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The records of each ``keys`` group at the largest ``train.steps`` level the group has."""
    rows = rows.assign(_steps=_steps(rows))
    top = rows.groupby(keys, dropna=False, sort=False)["_steps"].transform("max")
    return rows[rows["_steps"] == top]


def _per_seed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean accuracy per ``keys + [seed]`` (repeated records of one seed averaged), with ``n_test``,
    ``n_classes``, ``converged`` (every record of the seed) and the convergence ``reason``."""
    extra = {"_conv": _converged(rows),
             "_n_test": pd.to_numeric(rows["n_test"], errors="coerce") if "n_test" in rows else np.nan,
             "_k": pd.to_numeric(rows["n_classes"], errors="coerce") if "n_classes" in rows else np.nan}
    agg = {"accuracy": ("accuracy", "mean"), "n_test": ("_n_test", "mean"), "n_classes": ("_k", "max"),
           "converged": ("_conv", "all")}
    unconverged = not extra["_conv"].all()
    if unconverged:
        extra["_reason"] = rows["convergence_reason"] if "convergence_reason" in rows else None
        agg["reason"] = ("_reason", _reasons)
    out = rows.assign(**extra).groupby(keys + ["seed"], dropna=False, sort=True).agg(**agg).reset_index()
    if not unconverged:
        out["reason"] = ""
    return out


def _discordant(mine, ref) -> tuple[int, int]:
    """Examples of one seed's test split only the method gets right (b), only the baseline (c)."""
    right_m = pd.Series(mine.pred == mine.label, index=mine.test_index)
    right_r = pd.Series(ref.pred == ref.label, index=ref.test_index)
    both = right_m.index.intersection(right_r.index)
    x, y = right_m.loc[both].to_numpy(), right_r.loc[both].to_numpy()
    return int((x & ~y).sum()), int((~x & y).sum())


def _exact_degenerate(rows: pd.DataFrame, paired: pd.DataFrame, outcomes: pd.DataFrame | None,
                      join: list[str], reference: str) -> dict:
    """Discordant counts ``(b, c)`` per degenerate row, pooled over its paired seeds (needs outcomes)."""
    if outcomes is None or outcomes.empty or rows.empty:
        return {}
    by_key = {}
    for o in outcomes.itertuples(index=False):
        by_key.setdefault((o.target, o.seed, o.budget, o.method, o.source), o)
        by_key.setdefault((o.target, o.seed, o.budget, o.method, None), o)
    out = {}
    for idx, row in rows.iterrows():
        sel = paired
        for k in CELL_KEYS:
            sel = sel[sel[k] == row[k]]
        b = c = 0
        for seed in sel["seed"]:
            mine = by_key.get((row["target"], seed, row["budget"], row["method"], row["source"]))
            ref = by_key.get((row["target"], seed, row["budget"], reference,
                              row["source"] if "source" in join else None))
            if mine is None or ref is None:
                break
            db, dc = _discordant(mine, ref)
            b, c = b + db, c + dc
        else:
            if len(sel):
                out[idx] = (b, c)
    return out


def _reasons(values) -> str:
    return "; ".join(sorted({str(v) for v in values if isinstance(v, str) and v}))


def _seed_order(seeds: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(seeds, errors="coerce")
    return numeric if numeric.notna().all() else seeds.astype(str).rank(method="dense")


def _diff_matrix(paired: pd.DataFrame, table: pd.DataFrame, column: str = "diff") -> np.ndarray:
    """Paired differences (or another per-seed ``column``) ``(rows of table, seeds)`` in seed order, NaN-padded."""
    if paired.empty:
        return np.full((len(table), 1), np.nan)
    keyed = table[CELL_KEYS].reset_index(drop=True).reset_index().rename(columns={"index": "_row"})
    p = paired.merge(keyed, on=CELL_KEYS, how="inner").assign(_order=lambda x: _seed_order(x["seed"]))
    p = p.sort_values(["_row", "_order"], kind="mergesort")
    pos = p.groupby("_row").cumcount().to_numpy()
    out = np.full((len(table), max(1, int(pos.max()) + 1 if len(pos) else 1)), np.nan)
    out[p["_row"].to_numpy(), pos] = p[column].to_numpy(float)
    return out


def _paired_table(treated: pd.DataFrame, reference: pd.DataFrame, join: list[str], reference_name: str,
                  *, alpha: float, confidence: float, test: str, min_effect, outcomes, families,
                  low: str, high: str, seeds=None) -> pd.DataFrame:
    """One row of statistics per ``CELL_KEYS`` group of ``treated`` (see the module docstring)."""
    if test not in TESTS:
        raise TransferlabError(f"test must be one of {list(TESTS)}, got {test!r}")
    design = seed_design(seeds)
    treated = _judged_level(treated, CELL_KEYS)
    reference = reference.assign(_steps=_steps(reference))
    join = [*join, "_steps"]
    ref = _per_seed(reference, [k for k in join if k != "seed"]).rename(
        columns={"accuracy": "ref", "converged": "ref_converged", "reason": "ref_reason"})
    mine = _per_seed(treated, [*CELL_KEYS, "_steps"])
    merged = mine.merge(ref[join + ["ref", "ref_converged", "ref_reason"]], on=join, how="left")
    merged["diff"] = merged["accuracy"] - merged["ref"]
    # one seed's binomial test-sampling variance of its paired difference (the prior's trend covariate)
    merged["test_var"] = (merged["accuracy"] * (1 - merged["accuracy"]) + merged["ref"] * (1 - merged["ref"])) \
        / merged["n_test"]
    paired = merged[np.isfinite(merged["ref"])]

    base = mine.groupby(CELL_KEYS, dropna=False, sort=True).agg(
        mean_accuracy=("accuracy", "mean"), n_test=("n_test", "mean"), steps=("_steps", "max")).reset_index()
    stats_ = paired.groupby(CELL_KEYS, dropna=False, sort=True).agg(
        n_seeds=("diff", "count"), mean_reference=("ref", "mean"), paired_accuracy=("accuracy", "mean"),
        converged=("converged", "all"), ref_converged=("ref_converged", "all")).reset_index()
    t = base.merge(stats_, on=CELL_KEYS, how="left")
    t["steps"] = t["steps"].where(t["steps"] >= 0, np.nan)
    t["n_seeds"] = t["n_seeds"].fillna(0).astype(int)
    t["mean_accuracy"] = t["paired_accuracy"].where(t["n_seeds"] > 0, t["mean_accuracy"])
    t["min_effect"] = _min_effect(t, min_effect)
    t["baseline"] = reference_name
    t["family"] = families(t)
    diffs = _diff_matrix(paired, t)
    test_var = _diff_matrix(paired, t, "test_var")

    t["flag"] = "inconclusive"
    t["untested"] = ""
    t["reason"] = ""
    t["note"] = ""
    t["convergence_reason"] = None
    no_base = t["n_seeds"] == 0
    t.loc[no_base, ["flag", "untested"]] = ["untested", "no-baseline"]
    t.loc[no_base, "reason"] = f"no baseline: no `{reference_name}` run on the same seeds and steps"
    t.loc[no_base, "note"] = f"no `{reference_name}` run on the same seeds"
    conv = t["converged"].fillna(True).astype(bool)
    ref_conv = t["ref_converged"].fillna(True).astype(bool)
    unconv = ~no_base & ~(conv & ref_conv)
    if unconv.any():  # say which arm, on how many seeds, and why (the first seed's reason)
        for i in np.flatnonzero(unconv.to_numpy()):
            seeds_ = paired
            for k in CELL_KEYS:
                seeds_ = seeds_[seeds_[k] == t[k].iloc[i]]
            parts = []
            for arm, flag_col, why_col in ((t["method"].iloc[i], "converged", "reason"),
                                           (reference_name, "ref_converged", "ref_reason")):
                bad = seeds_[~seeds_[flag_col].astype(bool)]
                if len(bad):
                    first = next((r for r in bad[why_col] if isinstance(r, str) and r), "not converged")
                    parts.append(f"{arm}: {len(bad)} of {len(seeds_)} seeds, e.g. seed {bad['seed'].iloc[0]}: "
                                 f"{first.split('; ')[0]}")
            why = "; ".join(parts)
            steps = t["steps"].iloc[i]
            at = f" at {int(steps)} steps" if np.isfinite(steps) else ""
            t.loc[t.index[i], ["convergence_reason", "reason"]] = [why, f"unconverged{at}: {why}"]
        t.loc[unconv.to_numpy(), ["flag", "untested"]] = ["untested", "unconverged"]

    names = ("p_value", "q_value", "ci_low", "ci_high", "t", "df", "mde", "seeds_needed", "p_exact",
             "s_moderated", "prior_sd", "prior_df", "p_two_sided", "p_equivalence", "q_equivalence", "gain",
             "var")
    cols = {k: np.full(len(t), np.nan) for k in names}
    no_harm = np.zeros(len(t), dtype=bool)
    looks = None if design is None else seed_looks(design["min"], design["max"])
    for fam in [f for f in pd.unique(t["family"]) if f is not None]:
        # The prior sees every row with paired data; only the testable ones get a verdict and count in BH.
        sel = np.flatnonzero((t["family"] == fam).to_numpy())
        part = t.iloc[sel]
        testable = (part["flag"] == "inconclusive").to_numpy()
        n_now = part["n_seeds"].to_numpy()
        _, _, var_now = _row_moments(diffs[sel])
        degenerate = testable & ((n_now < 2) | ~(var_now > 0))
        exact = _exact_degenerate(part[degenerate], paired, outcomes, join, reference_name)
        p_exact = [np.array([binom_one_sided(*exact[k], side) if k in exact else np.nan for k in part.index])
                   for side in ("loss", "gain")]
        r = decide(diffs[sel], part["min_effect"].to_numpy(float), resolution=1.0 / part["n_test"].to_numpy(float),
                   tested=testable, alpha=alpha, test=test, confidence=confidence, looks=looks,
                   max_seeds=None if design is None else design["max"], p_exact=p_exact,
                   test_variance=test_var[sel])
        for j in np.flatnonzero(degenerate):
            what = "one seed" if n_now[j] < 2 else "zero variance across seeds"
            if part.index[j] in exact:
                b, c = exact[part.index[j]]
                note = f"{what}: exact McNemar on {b + c} discordant test examples (b={b}, c={c})"
            elif test == "t":
                note = f"{what}: no t-test (needs per-example outcomes for an exact test)"
            else:
                note = f"{what}: variance from the matrix prior"
            t.loc[part.index[j], "note"] = note
        for name, key in (("gain", "gain"), ("var", "var"), ("ci_low", "ci_low"), ("ci_high", "ci_high"),
                          ("t", "t"), ("df", "df"), ("mde", "mde"), ("s_moderated", "s")):
            cols[name][sel] = r[key]
        for name, key in (("p_value", "p"), ("q_value", "q"), ("p_two_sided", "p_two_sided"),
                          ("p_equivalence", "p_equivalence"), ("q_equivalence", "q_equivalence")):
            cols[name][sel] = np.where(testable, r[key], np.nan)
        for name in ("ci_low", "ci_high", "t", "df", "mde", "s_moderated"):
            cols[name][sel] = np.where(testable, cols[name][sel], np.nan)
        cols["prior_sd"][sel[testable]] = np.broadcast_to(r["prior_sd"], testable.shape)[testable]
        cols["prior_df"][sel[testable]] = r["prior_df"]
        cols["p_exact"][sel] = np.where(r["direction"] < 0, p_exact[0], p_exact[1])
        names_ = {"negative": low, "positive": high, "no-effect": "no-effect", "inconclusive": "inconclusive"}
        flags = np.array([names_.get(f, "") for f in r["flag"]], dtype=object)
        t.loc[part.index[testable], "flag"] = flags[testable]
        no_harm[sel] = (np.nan_to_num(r["q_no_harm"], nan=1.0) < alpha) & (flags != low) & testable
        for j in np.flatnonzero(testable & (flags == "inconclusive")):
            eff = abs(r["gain"][j]) - part["min_effect"].iloc[j]
            cols["seeds_needed"][sel[j]] = _seeds_needed(eff, r["s"][j], r["prior_df"], alpha)
    for name, values in cols.items():
        t[name] = values
    t["var"] = t["var"].where(t["n_seeds"] > 1, np.nan)
    t["std"] = np.sqrt(t["var"])
    t["no_harm"] = no_harm
    t["test"] = test
    t["design"] = "fixed" if design is None else f"adaptive {design['min']}-{design['max']}"
    return t


def _min_effect(t: pd.DataFrame, min_effect) -> np.ndarray:
    """Per-row margin (a fraction): the practical default, one test example, or a given number."""
    n = t["n_test"].to_numpy(float)
    known = np.isfinite(n) & (n > 0)
    example = np.where(known, 1.0 / np.where(known, n, 1.0), 0.0)
    if min_effect is None or (isinstance(min_effect, str) and min_effect == "practical"):
        return np.maximum(DEFAULT_MARGIN_POINTS / 100.0, DEFAULT_MARGIN_EXAMPLES * example)
    if isinstance(min_effect, str) and min_effect == "one-example":
        return example
    try:
        value = float(min_effect)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 <= value < 1):
        raise TransferlabError(f"min_effect: expected a fraction of accuracy in [0, 1), 'practical' or "
                               f"'one-example', got {min_effect!r}")
    return np.full(len(t), value)


# --------------------------------------------------------------------------------------------- public
NT_COLUMNS = [*CELL_KEYS, "gain", "ci_low", "ci_high", "p_value", "q_value", "flag", "n_seeds",
              "mean_accuracy"]
DETAIL_COLUMNS = ["std", "t", "df", "baseline", "min_effect", "mde", "seeds_needed", "no_harm", "note",
                  "untested", "reason", "convergence_reason", "p_two_sided", "p_equivalence", "q_equivalence",
                  "p_exact", "s_moderated", "prior_sd", "prior_df", "test", "design", "steps", "n_test"]


def negative_transfer(df: pd.DataFrame, alpha: float = 0.05, baseline: str = "scratch",
                      confidence: float = 0.95, *, test: str = "moderated", min_effect=None,
                      outcomes: pd.DataFrame | None = None, seeds=None) -> pd.DataFrame:
    """Gain of each transfer method over a target-only baseline: one verdict per row, FDR control.

    The module docstring gives the model, the tests, the sequential design and the flags.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per trained cell with at least ``source, target, method, seed, budget, accuracy, status``
        (e.g. :func:`analysis.load_results`); optional ``n_test`` (for the default ``min_effect``),
        ``converged``, ``convergence_reason`` and ``train.steps``. Rows counted: :func:`ok_rows`. Baseline
        rows are joined on ``(target, seed, budget, train.steps)``, whatever their ``source``.
    alpha : float
        FDR level of each verdict's family.
    baseline : str
        ``"scratch"`` (transfer vs training from nothing) or ``"target-only"`` (the source's effect: same
        initial weights, target labels only), or any other method name.
    confidence : float
        Level of the confidence interval (at the row's current seeds).
    test : {"moderated", "t"}
        Empirical-Bayes moderated t (default) or the plain paired t (``scipy.stats.ttest_rel``).
    min_effect : float, "practical", "one-example" or None
        Margin in accuracy (fraction). Default (``None`` = ``"practical"``): ``max(1 pt, 2 test examples)``
        per row; ``"one-example"``: ``1 / n_test``.
    outcomes : pandas.DataFrame, optional
        :func:`analysis.load_outcomes` of the run: exact per-example tests for degenerate rows.
    seeds : int, list or {"min": a, "max": b}, optional
        The seed design (:func:`seed_design`); default ``df.attrs.get("seeds")`` (what the run's config said).
        Adaptive: the group-sequential test; otherwise the fixed one.

    Returns
    -------
    pandas.DataFrame
        One row per ``(source, target, method ∉ {scratch, target-only, baseline}, budget > 0)``, sorted by
        those keys, with columns ``source, target, method, budget, gain, ci_low, ci_high, p_value, q_value,
        flag, n_seeds, mean_accuracy, mean_scratch`` (the baseline's mean accuracy on the paired seeds,
        whichever baseline), then ``std, t, df, baseline, min_effect, mde, seeds_needed, no_harm, note,
        untested`` (``unconverged`` / ``no-baseline`` / ``""``), ``reason`` (why untested), ``convergence_reason,
        p_two_sided, p_equivalence, q_equivalence, p_exact, s_moderated, prior_sd, prior_df, test, design,
        steps`` (the judged ``train.steps`` level, NaN when records do not say), ``n_test``. ``flag`` is one of
        ``negative, positive, no-effect, inconclusive, untested``. Budget-0 rows: :func:`budget_zero`.
    """
    ok = _checked(df)
    if seeds is None:
        seeds = df.attrs.get("seeds")
    methods = ok["method"].astype(str)
    is_base = methods == baseline
    if not is_base.any():
        warnings.warn(f"negative_transfer: no 'ok' rows of baseline method {baseline!r}; "
                      f"methods present: {sorted(methods.unique())}", stacklevel=2)
    budgets = pd.to_numeric(ok["budget"], errors="coerce")
    treated = ok[~methods.isin([baseline, *BASELINES]) & (budgets > 0)]
    out = _paired_table(treated, ok[is_base], ["target", "seed", "budget"], baseline, alpha=alpha,
                        confidence=confidence, test=test, min_effect=min_effect, outcomes=outcomes,
                        families=lambda t: np.full(len(t), "budget>0", dtype=object),
                        low="negative", high="positive", seeds=seeds)
    out = out.rename(columns={"mean_reference": "mean_scratch"})
    return out[[*NT_COLUMNS, "mean_scratch", *DETAIL_COLUMNS]].reset_index(drop=True)


def more_seeds(frame: pd.DataFrame, max_seeds: int = 10, **test_options: Any) -> pd.DataFrame:
    """The stopping rule of the adaptive design: which rows need more seeds, and how many in total.

    Runs :func:`negative_transfer` on ``frame`` with the adaptive design ``{min, max_seeds}`` (``min`` from
    ``frame.attrs["seeds"]`` when it is adaptive, else ``DEFAULT_SEEDS["min"]``) and returns every row still
    ``inconclusive`` with fewer than ``max_seeds`` paired seeds, with ``seeds`` = the next planned total
    (:func:`seed_looks`) above its current count. Decided rows (``negative``, ``positive``, ``no-effect``)
    stop; ``untested`` rows are the runner's (train longer, or run the baseline), not more seeds'. The runner
    calls it once per baseline after each stage and trains the union, both arms on the new seeds.

    Parameters
    ----------
    frame : pandas.DataFrame
        Results as :func:`analysis.load_results` returns them.
    max_seeds : int
        The design's maximum seeds per row.
    **test_options
        :func:`negative_transfer`'s options (``baseline``, ``alpha``, ``min_effect``, ``test``, ``outcomes``).

    Returns
    -------
    pandas.DataFrame
        Columns exactly ``source, target, method, budget, seeds``; empty (with these columns) when every row is
        decided, untested or at ``max_seeds``.
    """
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, (int, np.integer)) or max_seeds < 1:
        raise TransferlabError(f"more_seeds: max_seeds must be a positive integer, got {max_seeds!r}")
    if "seeds" in test_options:
        raise TransferlabError("more_seeds: the design comes from frame.attrs['seeds'] and max_seeds, not seeds=")
    given = seed_design(frame.attrs.get("seeds")) if isinstance(frame, pd.DataFrame) else None
    lo = min((given or DEFAULT_SEEDS)["min"], int(max_seeds))
    design = {"min": lo, "max": int(max_seeds)}
    table = negative_transfer(frame, seeds=design, **test_options)
    looks = seed_looks(lo, int(max_seeds))
    open_ = table[(table["flag"] == "inconclusive") & (table["n_seeds"] < max_seeds)]
    if open_.empty:
        return pd.DataFrame({c: pd.Series(dtype=table[c].dtype if c in table else "int64")
                             for c in MORE_SEEDS_COLUMNS})
    nxt = [next(k for k in looks if k > n) if n < looks[-1] else int(max_seeds) for n in open_["n_seeds"]]
    out = open_[CELL_KEYS].copy()
    out["seeds"] = np.asarray(nxt, dtype="int64")
    return out.reset_index(drop=True)


def verdict_counts(frame: pd.DataFrame, baseline: str = "scratch", **test_options: Any) -> dict[str, Any]:
    """How many rows each verdict got, against one baseline: the run's closing line and the report's opening.

    ``frame`` is either a results frame (:func:`analysis.load_results`; :func:`negative_transfer` runs on it
    with ``test_options``) or a table :func:`negative_transfer` returned (a ``flag`` column).

    Returns
    -------
    dict
        ``baseline, rows, decided, negative, positive, no-effect, inconclusive, untested`` (ints),
        ``untested_reasons`` ({``unconverged``: n, ``no-baseline``: n}, only the kinds present) and ``line``,
        e.g. ``"vs scratch: 36 rows — 30 decided (8 negative, 3 positive, 19 no-effect), 4 inconclusive,
        2 untested (2 unconverged)"``.
    """
    table = frame if "flag" in frame.columns else negative_transfer(frame, baseline=baseline, **test_options)
    if "baseline" in table.columns and len(table):
        baseline = str(table["baseline"].iloc[0])
    flags = table["flag"].astype(str)
    counts = {f: int((flags == f).sum()) for f in FLAGS}
    kinds = table["untested"].astype(str) if "untested" in table.columns else pd.Series("", index=table.index)
    reasons = {k: int(((flags == "untested") & (kinds == k)).sum()) for k in UNTESTED_KINDS}
    other = counts["untested"] - sum(reasons.values())
    if other:
        reasons["other"] = other
    reasons = {k: v for k, v in reasons.items() if v}
    decided = sum(counts[f] for f in DECIDED)
    parts = ", ".join(f"{counts[f]} {f}" for f in DECIDED)
    line = f"vs {baseline}: {len(table)} rows — {decided} decided ({parts}), {counts['inconclusive']} inconclusive"
    line += f", {counts['untested']} untested"
    if reasons:
        line += " (" + ", ".join(f"{v} {k}" for k, v in reasons.items()) + ")"
    return {"baseline": baseline, "rows": int(len(table)), "decided": decided, **counts,
            "untested_reasons": reasons, "line": line}


def da_harm(df: pd.DataFrame, reference: str = "finetune", alpha: float = 0.05,
            exclude: Sequence[str] = BASELINES, confidence: float = 0.95, *, test: str = "moderated",
            min_effect=None, outcomes: pd.DataFrame | None = None, seeds=None) -> pd.DataFrame:
    """Does a domain-adaptation method help or harm compared with plain fine-tuning on the same pair?

    The statistics of :func:`negative_transfer` with the ``reference`` method's run of the same ``(source,
    target, seed, budget, train.steps)`` as the baseline: ``gain = accuracy(method) − accuracy(reference)``.
    Two FDR families, each with its own variance prior: budget 0 and budget > 0. Flags ``harm`` / ``help`` /
    ``no-effect`` / ``inconclusive`` / ``untested``.

    Returns
    -------
    pandas.DataFrame
        As :func:`negative_transfer`, with ``mean_reference`` for ``mean_scratch`` and ``reference`` last.
    """
    ok = _checked(df)
    if seeds is None:
        seeds = df.attrs.get("seeds")
    methods = ok["method"].astype(str)
    if not (methods == reference).any():
        raise TransferlabError(f"da_harm: no 'ok' rows of reference method {reference!r}; "
                               f"methods present: {sorted(methods.unique())}")
    treated = ok[~methods.isin([reference, *exclude])]
    out = _paired_table(treated, ok[methods == reference], ["source", "target", "seed", "budget"], reference,
                        alpha=alpha, confidence=confidence, test=test, min_effect=min_effect,
                        outcomes=outcomes,
                        families=lambda t: np.where(t["budget"].astype(float) > 0, "budget>0", "budget=0"),
                        low="harm", high="help", seeds=seeds)
    out["reference"] = reference
    cols = [*NT_COLUMNS, "mean_reference", *[c for c in DETAIL_COLUMNS if c != "baseline"], "reference"]
    return out[cols].reset_index(drop=True)


def budget_zero(df: pd.DataFrame, alpha: float = 0.05, reference: str = "finetune",
                outcomes: pd.DataFrame | None = None, confidence: float = 0.95) -> pd.DataFrame:
    r"""Budget-0 rows (no target labels): accuracy against chance with exact tests, its own FDR family.

    Per ``(source, target, method)`` at budget 0, the test counts are pooled over seeds:
    :math:`k = \sum_s \mathrm{round}(acc_s \cdot n_{test,s})` correct of :math:`N = \sum_s n_{test,s}`.
    ``ci_low, ci_high``: the exact Clopper–Pearson interval of :math:`k/N`. One-sided exact binomial tests
    against chance :math:`1/K`: ``p_above`` (:math:`H_1`: accuracy > 1/K — the model learnt something) and
    ``p_below`` (:math:`H_1`: accuracy < 1/K — systematically wrong, e.g. permuted classes). Pooling
    treats the :math:`N` test predictions as independent trials: it ignores seed-to-seed variation, so it
    answers "is this model family above chance on these test sets", not a between-seed question.
    Against the source-only model (``reference``, plain fine-tuning at budget 0) on the same seeds, with
    per-example ``outcomes``: the exact McNemar test pooled over seeds (``gain_vs_reference``,
    ``p_vs_reference``). All p-values of the table form one BH family (never mixed with budget > 0 rows).
    ``flag``: ``below-chance`` / ``above-chance`` when that side's q < alpha, else ``at-chance``;
    ``flag_vs_reference``: ``harm`` / ``help`` / ``inconclusive``, or ``unconverged`` when a seed of either
    model had not converged (empty for the reference itself or without outcomes). ``converged``: every
    seed of the row's model converged (the accuracy-vs-chance test describes the model as trained either
    way).

    Returns
    -------
    pandas.DataFrame
        ``source, target, method, n_seeds, accuracy, ci_low, ci_high, chance, correct, n, p_above, q_above,
        p_below, q_below, flag, gain_vs_reference, p_vs_reference, q_vs_reference, flag_vs_reference,
        converged``.
    """
    from scipy.stats import binomtest

    cols = ["source", "target", "method", "n_seeds", "accuracy", "ci_low", "ci_high", "chance", "correct",
            "n", "p_above", "q_above", "p_below", "q_below", "flag", "gain_vs_reference", "p_vs_reference",
            "q_vs_reference", "flag_vs_reference", "converged"]
    ok = _checked(df)
    ok = ok[pd.to_numeric(ok["budget"], errors="coerce") == 0]
    ok = ok[~ok["method"].astype(str).isin(BASELINES)]
    ok = _judged_level(ok, ["source", "target", "method"]) if not ok.empty else ok
    if ok.empty:
        return pd.DataFrame(columns=cols)
    seeds = _per_seed(ok, ["source", "target", "method"])
    rows = []
    for (s, tgt, meth), g in seeds.groupby(["source", "target", "method"], dropna=False, sort=True):
        n_test = g["n_test"].to_numpy(float)
        k_cls = g["n_classes"].max()
        row = {"source": s, "target": tgt, "method": meth, "n_seeds": len(g),
               "accuracy": float(g["accuracy"].mean()), "chance": 1.0 / k_cls if k_cls > 0 else np.nan,
               "converged": bool(g["converged"].all())}
        if np.all(np.isfinite(n_test)) and len(n_test):
            correct = int(np.round(g["accuracy"].to_numpy() * n_test).sum())
            total = int(n_test.sum())
            ci = binomtest(correct, total).proportion_ci(confidence, method="exact")
            row.update(correct=correct, n=total, accuracy=correct / total, ci_low=ci.low, ci_high=ci.high)
            if np.isfinite(row["chance"]):
                row["p_above"] = binomtest(correct, total, row["chance"], alternative="greater").pvalue
                row["p_below"] = binomtest(correct, total, row["chance"], alternative="less").pvalue
        if meth != reference and outcomes is not None and not outcomes.empty:
            mine = outcomes[(outcomes["source"] == s) & (outcomes["target"] == tgt)
                            & (outcomes["method"] == meth) & (outcomes["budget"] == 0)]
            ref = outcomes[(outcomes["source"] == s) & (outcomes["target"] == tgt)
                           & (outcomes["method"] == reference) & (outcomes["budget"] == 0)]
            b = c = 0
            n_right = n_ref_right = total_ex = 0
            for o in mine.itertuples(index=False):
                r = ref[ref["seed"] == o.seed]
                if r.empty:
                    continue
                r = r.iloc[0]
                rm = pd.Series(o.pred == o.label, index=o.test_index)
                rr = pd.Series(r["pred"] == r["label"], index=r["test_index"])
                both = rm.index.intersection(rr.index)
                x, y = rm.loc[both].to_numpy(), rr.loc[both].to_numpy()
                b += int((x & ~y).sum())
                c += int((~x & y).sum())
                n_right, n_ref_right = n_right + int(x.sum()), n_ref_right + int(y.sum())
                total_ex += len(both)
            if total_ex:
                row["gain_vs_reference"] = (n_right - n_ref_right) / total_ex
                row["p_vs_reference"] = mcnemar_exact(b, c)
                row["_dir"] = -1 if c > b else 1
        rows.append(row)
    out = pd.DataFrame(rows)
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    family = np.concatenate([out["p_above"].to_numpy(float), out["p_below"].to_numpy(float),
                             out["p_vs_reference"].to_numpy(float)])
    q = benjamini_hochberg(family)
    n = len(out)
    out["q_above"], out["q_below"], out["q_vs_reference"] = q[:n], q[n:2 * n], q[2 * n:]
    above = np.where(np.nan_to_num(out["q_above"], nan=1) < alpha, "above-chance", "at-chance")
    out["flag"] = np.where(np.nan_to_num(out["q_below"], nan=1) < alpha, "below-chance", above)
    direction = out["_dir"] if "_dir" in out else pd.Series(np.nan, index=out.index)
    sig = np.nan_to_num(out["q_vs_reference"], nan=1) < alpha
    out["flag_vs_reference"] = np.where(out["p_vs_reference"].isna(), "",
                                        np.where(sig & (direction < 0), "harm",
                                                 np.where(sig & (direction > 0), "help", "inconclusive")))
    # A comparison with an arm that had not converged is reported, not decided (as in negative_transfer).
    ref_conv = out.set_index(["source", "target", "method"])["converged"].to_dict()
    arm_unconverged = [not (c and ref_conv.get((s, t, reference), True))
                       for s, t, c in zip(out["source"], out["target"], out["converged"])]
    out["flag_vs_reference"] = np.where(np.array(arm_unconverged) & (out["flag_vs_reference"] != ""),
                                        "unconverged", out["flag_vs_reference"])
    return out[cols].reset_index(drop=True)


def budget_crossover(df: pd.DataFrame, baseline: str = "scratch", n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> pd.DataFrame:
    """Per ``(source, target, method)``: the label budget from which the target-only baseline wins.

    ``crossover_budget`` is the smallest budget ``b`` such that the mean gain (:func:`negative_transfer`)
    is below 0 at ``b`` and at every larger budget evaluated — "from ``b`` on, the baseline beats transfer"
    (Wang et al. 2019 observe negative transfer growing with the label budget); NaN when the gain at the
    largest budget is ``>= 0``. Needs two budgets or more: rows with one budget are left out. A point
    estimate from a few seeds is not a finding, so with the raw results ``df`` the seed-paired differences
    are resampled (a bootstrap over seeds within each budget, ``n_boot`` draws, seeded): ``support`` is the
    fraction of draws with any crossover, ``ci_low, ci_high`` the percentile interval of the crossover budget
    over the draws (a draw without crossover counts as beyond the largest budget: ``inf``).
    ``confirmed``: the row's gain at the largest budget is flagged ``negative`` by :func:`negative_transfer`.
    Given a :func:`negative_transfer` table instead (a ``gain`` column), only the point estimates are
    available (``support`` and the interval NaN).

    Returns
    -------
    pandas.DataFrame
        ``source, target, method, crossover_budget, ci_low, ci_high, support, confirmed,
        first_negative_budget, n_budgets``.
    """
    keys = ["source", "target", "method"]
    cols = [*keys, "crossover_budget", "ci_low", "ci_high", "support", "confirmed", "first_negative_budget",
            "n_budgets"]
    raw = "gain" not in df.columns
    table = negative_transfer(df, baseline=baseline) if raw else df
    missing = [c for c in (*CELL_KEYS, "gain") if c not in table.columns]
    if missing:
        raise TransferlabError(f"budget_crossover: table is missing column(s) {missing}")
    diffs = {}
    if raw:
        ok = _checked(df)
        methods = ok["method"].astype(str)
        ref = _per_seed(ok[methods == baseline], ["target", "budget"]).rename(columns={"accuracy": "ref"})
        mine = _per_seed(ok[~methods.isin([baseline, *BASELINES])], CELL_KEYS)
        m = mine.merge(ref[["target", "budget", "seed", "ref"]], on=["target", "budget", "seed"], how="inner")
        for key, g in m.groupby(CELL_KEYS, dropna=False, sort=True):
            diffs[key] = (g["accuracy"] - g["ref"]).to_numpy(float)
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in table[np.isfinite(table["gain"])].groupby(keys, dropna=False, sort=True):
        g = g.sort_values("budget")
        if len(g) < 2:
            continue
        budgets, gains = g["budget"].to_numpy(float), g["gain"].to_numpy(float)
        point = _crossover(budgets, gains[None, :])[0]
        neg = gains < 0
        row = {**dict(zip(keys, key)), "crossover_budget": point, "ci_low": np.nan, "ci_high": np.nan,
               "support": np.nan,
               "confirmed": bool("flag" in g and g["flag"].iloc[-1] == "negative"),
               "first_negative_budget": budgets[neg][0] if neg.any() else np.nan, "n_budgets": len(g)}
        per_budget = [diffs.get((*key, b)) for b in g["budget"]]
        if raw and all(d is not None and len(d) for d in per_budget):
            draws = np.stack([d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1) for d in per_budget],
                             axis=1)
            cross = _crossover(budgets, draws)
            row["support"] = float(np.isfinite(cross).mean())
            filled = np.where(np.isfinite(cross), cross, np.inf)
            lo, hi = np.quantile(filled, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
            row["ci_low"], row["ci_high"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _crossover(budgets: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Per row of ``gains`` (draws × budgets): the first budget of the all-negative suffix, NaN if none."""
    negative = gains < 0
    tail = np.flip(np.logical_and.accumulate(np.flip(negative, axis=1), axis=1), axis=1)
    first = np.argmax(tail, axis=1)
    return np.where(tail.any(axis=1), budgets[first], np.nan)
