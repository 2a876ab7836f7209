r"""Simulated transfer matrices: results frames like :func:`analysis.load_results` returns, with known truth.

What the statistics are calibrated and powered on (``tests/analysis/test_adaptive_calibration.py``,
``bench/stats_calibration.py``), and what a user can size a study with before training anything.

A :class:`Matrix` is a config's rows ``(source, target, method, budget)`` over targets with their test-split
sizes, every ordered pair of distinct targets, a few transfer methods and one ``scratch`` baseline per
``(target, seed)`` (shared by every row into that target, as the runner trains it; its records repeat under
each source, as the runner writes them). :func:`draw` fixes one matrix's truth and draws every seed's
accuracies up front (``max_seeds`` of them), so a procedure that adds seeds sees the same seeds whatever it
asks for; :meth:`Draw.frame` gives the records of the first ``n`` seeds of each row.

**Noise.** Each seed has its own test split (``Domain.split(seed)``), shared by the arms of that seed: a
split effect :math:`N(0, \sigma_\text{split}^2)` common to every arm on the target (cancels in the paired
difference). Then per arm and seed, one of

- ``"gaussian"``: the accuracy :math:`p + N(0, \sigma_c^2)` with :math:`\sigma_c = 1.7` points times a
  log-normal cell factor (spread 0.25), rounded to whole test examples — the noise the suite's calibration
  used so far (issue #11 measured about this on the project's matrices);
- ``"binomial"``: a trained model whose true accuracy is :math:`p + N(0, \sigma_\text{train}^2)`
  (:math:`\sigma_\text{train} = 1` point, seed-to-seed training spread), scored on :math:`n` test examples
  independently: :math:`k \sim \mathrm{Bin}(n, p)`. Whole counts and *heteroscedastic*: the paired
  difference has variance :math:`\approx 2\sigma^2_\text{train} + (p_a(1-p_a) + p_b(1-p_b))/n` — 9.5 points
  of standard deviation per seed on a 47-example split, 3.8 on 287. Independent arms are the pessimistic case:
  two models scored on the same examples agree on most of them, which shrinks the difference's variance.
  ``discordance`` :math:`\varepsilon < 1` simulates that per example: each test example of a transfer arm
  repeats the baseline's outcome on it with probability :math:`1 - \varepsilon`, else it is drawn afresh (with
  the probability that keeps the arm's accuracy), so the arms disagree on :math:`\varepsilon` times the
  examples independent arms would. Measured on the demo's outcomes (``results/demo_adaptive`` of the runner's
  branch, 291 transfer-vs-scratch seed pairs, 90 test examples each): the arms disagree on 0.40 × (median)
  what independence predicts (``REAL_DISCORDANCE``).

The baseline's true accuracy per target is uniform in ``accuracy`` (default [0.5, 0.85]); a row's transfer
arm has the baseline's accuracy plus its planted gain (0 under the null).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NOISES = ("gaussian", "binomial")
# Office-Caltech10 SURF at the default test_fraction 0.3 (domain sizes 958, 1123, 157, 295).
OFFICE_CALTECH_TEST = {"amazon": 287, "caltech": 337, "dslr": 47, "webcam": 89}
METHODS = ("finetune", "dann", "coral")
BASELINE = "scratch"
REAL_DISCORDANCE = 0.4


@dataclass(frozen=True)
class Matrix:
    """The rows of a simulated config: every ordered pair of ``targets`` × ``methods`` at one ``budget``."""

    targets: Mapping[str, int] = field(default_factory=lambda: dict(OFFICE_CALTECH_TEST))
    methods: Sequence[str] = METHODS
    budget: int = 3
    noise: str = "binomial"
    accuracy: tuple[float, float] = (0.5, 0.85)
    split_sd: float = 0.02
    gaussian_sd: float = 0.017
    gaussian_spread: float = 0.25
    train_sd: float = 0.01
    discordance: float = 1.0

    def __post_init__(self):
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")

    @property
    def rows(self) -> pd.DataFrame:
        """``source, target, method, budget, n_test`` per row, in :func:`analysis.negative_transfer`'s order."""
        names = list(self.targets)
        out = [dict(source=s, target=t, method=m, budget=self.budget, n_test=int(self.targets[t]))
               for s in names for t in names if s != t for m in self.methods]
        return pd.DataFrame(out).sort_values(["source", "target", "method", "budget"]).reset_index(drop=True)


@dataclass
class Draw:
    """One simulated matrix: every seed's counts drawn up front.

    ``method_counts`` ``(rows, max_seeds)``: correct test examples of each row's transfer arm per seed;
    ``base_counts`` ``(targets, max_seeds)``: the scratch baseline's; ``gain`` the planted gain per row.
    """

    matrix: Matrix
    rows: pd.DataFrame
    gain: np.ndarray
    method_counts: np.ndarray
    base_counts: np.ndarray
    target_index: np.ndarray

    @property
    def n_test(self) -> np.ndarray:
        return self.rows["n_test"].to_numpy()

    def diffs(self, seeds: int | np.ndarray) -> np.ndarray:
        """Paired differences ``(rows, max)`` of each row's first ``seeds`` seeds (NaN after), as fractions."""
        n = np.broadcast_to(np.asarray(seeds), (len(self.rows),))
        d = (self.method_counts - self.base_counts[self.target_index]) / self.n_test[:, None]
        width = int(n.max())
        return np.where(np.arange(width)[None, :] < n[:, None], d[:, :width], np.nan)

    def test_variance(self, seeds: int | np.ndarray) -> np.ndarray:
        """Per seed, the binomial test-sampling variance :math:`(a(1-a) + b(1-b))/n` of each row's paired
        difference (what :func:`analysis.negative_transfer` passes :func:`analysis.negative.decide`), NaN-padded
        like :meth:`diffs`."""
        n = np.broadcast_to(np.asarray(seeds), (len(self.rows),))
        a = self.method_counts / self.n_test[:, None]
        b = self.base_counts[self.target_index] / self.n_test[:, None]
        c = (a * (1 - a) + b * (1 - b)) / self.n_test[:, None]
        width = int(n.max())
        return np.where(np.arange(width)[None, :] < n[:, None], c[:, :width], np.nan)

    def frame(self, seeds: int | np.ndarray, design=None) -> pd.DataFrame:
        """Records of each row's first ``seeds`` seeds (an int or one per row) and their baselines, as
        :func:`analysis.load_results` gives them (``attrs["seeds"] = design``)."""
        n = np.broadcast_to(np.asarray(seeds), (len(self.rows),)).astype(int)
        r = self.rows
        steps = 300
        parts = []
        seed_idx = np.concatenate([np.arange(k) for k in n])
        row_idx = np.repeat(np.arange(len(r)), n)
        acc = self.method_counts[row_idx, seed_idx] / self.n_test[row_idx]
        parts.append(pd.DataFrame({"source": r["source"].to_numpy()[row_idx], "target": r["target"].to_numpy()[row_idx],
                                   "method": r["method"].to_numpy()[row_idx], "seed": seed_idx,
                                   "budget": r["budget"].to_numpy()[row_idx], "accuracy": acc}))
        # Baselines: per (source, target) pair, the seeds its rows reached (the runner trains the row's arms
        # on seeds 0..n-1, the baseline's record written under the pair's source).
        pairs = r.assign(n=n).groupby(["source", "target"], sort=False).agg(n=("n", "max"),
                                                                             budget=("budget", "first"))
        t_of = {t: i for i, t in enumerate(self.matrix.targets)}
        for (s, t), g in pairs.iterrows():
            k = np.arange(int(g["n"]))
            parts.append(pd.DataFrame({"source": s, "target": t, "method": BASELINE, "seed": k,
                                       "budget": g["budget"],
                                       "accuracy": self.base_counts[t_of[t], k] / self.matrix.targets[t]}))
        out = pd.concat(parts, ignore_index=True)
        out["status"] = "ok"
        out["cell_id"] = (out["source"] + "-" + out["target"] + "-" + out["method"] + "-"
                          + out["budget"].astype(str) + "-" + out["seed"].astype(str))
        out["n_test"] = out["target"].map(self.matrix.targets).astype(int)
        out["n_classes"] = 10
        out["converged"] = True
        out["convergence_reason"] = None
        out["train.steps"] = steps
        out = out.sort_values(["source", "target", "method", "budget", "seed", "cell_id"],
                              kind="mergesort").reset_index(drop=True)
        out.attrs["other_records"] = 0
        out.attrs["seeds"] = design
        return out


def draw(matrix: Matrix, rng: np.random.Generator, max_seeds: int = 10,
         gain: float | np.ndarray = 0.0) -> Draw:
    """One matrix's truth and every seed's whole-count accuracies (see the module docstring).

    ``gain``: the planted gain per row (a fraction; a scalar for every row), e.g. ``-0.05`` in some rows.
    """
    rows = matrix.rows
    targets = list(matrix.targets)
    t_idx = rows["target"].map({t: i for i, t in enumerate(targets)}).to_numpy()
    n_t = np.array([matrix.targets[t] for t in targets])[:, None]
    n_r = rows["n_test"].to_numpy()[:, None]
    g = np.broadcast_to(np.asarray(gain, dtype=float), (len(rows),)).copy()
    p_base = rng.uniform(*matrix.accuracy, len(targets))
    split = rng.normal(0.0, matrix.split_sd, (len(targets), max_seeds))
    mean_base = p_base[:, None] + split
    mean_method = mean_base[t_idx] + g[:, None]
    if matrix.noise == "gaussian":
        sd_t = matrix.gaussian_sd * np.exp(rng.normal(0.0, matrix.gaussian_spread, len(targets)))[:, None]
        sd_r = matrix.gaussian_sd * np.exp(rng.normal(0.0, matrix.gaussian_spread, len(rows)))[:, None]
        base = np.round(np.clip(mean_base + sd_t * rng.normal(size=mean_base.shape), 0, 1) * n_t)
        method = np.round(np.clip(mean_method + sd_r * rng.normal(size=mean_method.shape), 0, 1) * n_r)
    else:
        def trained(mean):
            return np.clip(mean + matrix.train_sd * rng.normal(size=mean.shape), 0.0, 1.0)

        p_b, p_a = trained(mean_base), trained(mean_method)
        if matrix.discordance >= 1:
            base = rng.binomial(np.broadcast_to(n_t, mean_base.shape), p_b).astype(float)
            method = rng.binomial(np.broadcast_to(n_r, mean_method.shape), p_a).astype(float)
        else:  # per example: the baseline's outcomes, each transfer example a copy with probability 1 - eps
            eps, width = float(matrix.discordance), int(n_t.max())
            real = np.arange(width)[None, None, :] < n_t[:, :, None]
            right_b = (rng.random((len(targets), max_seeds, width)) < p_b[:, :, None]) & real
            base = right_b.sum(2).astype(float)
            pb_r = p_b[t_idx]
            fresh = np.clip((p_a - (1 - eps) * pb_r) / eps, 0.0, 1.0)  # keeps the arm's mean accuracy
            copy = rng.random((len(rows), max_seeds, width)) >= eps
            own = rng.random((len(rows), max_seeds, width)) < fresh[:, :, None]
            right_a = np.where(copy, right_b[t_idx], own) & real[t_idx]
            method = right_a.sum(2).astype(float)
    return Draw(matrix=matrix, rows=rows, gain=g, method_counts=method, base_counts=base, target_index=t_idx)


def practical_margin(n_test: np.ndarray) -> np.ndarray:
    """The default ``min_effect`` of :func:`analysis.negative_transfer`: ``max(1 pt, 2 test examples)``."""
    from .negative import DEFAULT_MARGIN_EXAMPLES, DEFAULT_MARGIN_POINTS

    return np.maximum(DEFAULT_MARGIN_POINTS / 100.0, DEFAULT_MARGIN_EXAMPLES / np.asarray(n_test, dtype=float))


def decide_fixed(sim: Draw, seeds: int, trend: bool = True, **options) -> dict:
    """:func:`analysis.negative.decide` on the first ``seeds`` seeds of every row: what
    :func:`analysis.negative_transfer` computes for a fixed design (``options`` go to ``decide``).
    ``trend=False``: the constant variance prior (no test-sampling term), for comparison."""
    from .negative import decide

    return decide(sim.diffs(seeds), practical_margin(sim.n_test), resolution=1.0 / sim.n_test,
                  test_variance=sim.test_variance(seeds) if trend else None, **options)


def adaptive_arrays(sim: Draw, min_seeds: int = 3, max_seeds: int = 10, trend: bool = True,
                    **options) -> tuple[dict, np.ndarray, int]:
    """:func:`run_adaptive` on arrays: the same statistics (:func:`analysis.negative.decide` with the design's
    looks, as :func:`analysis.more_seeds` calls it through :func:`analysis.negative_transfer`) and the same
    stopping rule (a row stays open while ``inconclusive`` below ``max_seeds``, and goes to the next planned
    total), without building frames — fast enough for thousands of matrices. The tests check that it takes
    the very steps and flags the frame procedure does. Returns the last stage's ``decide`` output, the seeds
    per row and the stages run. ``trend=False``: the constant variance prior, for comparison."""
    from .negative import decide, seed_looks

    looks = seed_looks(min_seeds, max_seeds)
    n = np.full(len(sim.rows), int(min_seeds))
    margin, resolution = practical_margin(sim.n_test), 1.0 / sim.n_test
    for stage in range(1, len(looks) + 2):
        r = decide(sim.diffs(n), margin, resolution=resolution, looks=looks, max_seeds=max_seeds,
                   test_variance=sim.test_variance(n) if trend else None, **options)
        open_ = (r["flag"] == "inconclusive") & (n < max_seeds)
        if not open_.any():
            return r, n, stage
        n = np.where(open_, [next((k for k in looks if k > x), max_seeds) for x in n], n)
    raise AssertionError("the adaptive design did not stop")


def run_adaptive(sim: Draw, rule: Callable[..., pd.DataFrame], min_seeds: int = 3, max_seeds: int = 10,
                 stages: int = 100, **options) -> tuple[np.ndarray, int]:
    """Drive the adaptive procedure as ``transferlab.adaptive`` does: every row at ``min_seeds``; ask ``rule``
    (:func:`analysis.more_seeds`) which rows need more seeds; give those rows (and their baselines) seeds
    ``0 … n−1``; repeat until it asks for nothing. Returns the seeds each row ended with and the stages run.

    A row the rule asks to *shrink* or to exceed ``max_seeds`` is an error (the runner never does either).
    """
    n = np.full(len(sim.rows), int(min_seeds))
    design = {"min": int(min_seeds), "max": int(max_seeds)}
    key = {k: i for i, k in enumerate(zip(sim.rows["source"], sim.rows["target"], sim.rows["method"],
                                           sim.rows["budget"]))}
    for stage in range(1, stages + 1):
        asked = rule(sim.frame(n, design), max_seeds=max_seeds, **options)
        if asked.empty:
            return n, stage
        for rec in asked.itertuples(index=False):
            i = key[(rec.source, rec.target, rec.method, rec.budget)]
            want = int(rec.seeds)
            if want <= n[i] or want > max_seeds:
                raise AssertionError(f"rule asked row {rec[:4]} for {want} seeds at {n[i]} (max {max_seeds})")
            n[i] = want
    raise AssertionError(f"rule still asked for seeds after {stages} stages")
