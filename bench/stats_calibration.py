"""False flags and power of the negative-transfer verdicts, fixed and adaptive seeds, Gaussian and binomial noise.

Prints the table of ``bench/RESULTS.md`` §7 (and of README's statistics paragraph):

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/stats_calibration.py [--draws 1000] [--json FILE]

Matrices from :mod:`analysis.simulate` (its docstring gives the noise): **office** — Office-Caltech10 SURF's 4
targets with their test splits at ``test_fraction`` 0.3 (amazon 287, caltech 337, dslr 47, webcam 89 examples),
12 pairs × finetune/dann/coral = 36 rows against scratch; **digits** — 4 targets with the test splits of the
suite's digit data (sklearn digits 1797 → 539, USPS 1800 → 540, MNIST 2000 → 600: sizes 600, 540, 600, 540),
36 rows. Noise (:mod:`analysis.simulate`): ``gaussian`` (1.7 points per arm, rounded to whole examples),
``binomial`` (independent arms on each split: the pessimistic case), ``binomial paired 0.4`` (the arms disagree
on 0.40 × the examples independent arms would, as measured on the demo's per-example outcomes). Planted −5 points: the 6 ``dann`` rows into amazon and caltech (office; dslr's margin is 4.3 points,
so a −5-point loss there is 0.7 points past it) or into the first two targets (digits). Rates over ``--draws``
null matrices and ``--draws / 2`` planted ones (same seeds as in ``tests/analysis/test_adaptive_calibration.py``
but many more draws), each ± its Monte-Carlo standard error. ``adaptive`` is the procedure the runner follows
(every row at 3 seeds, :func:`analysis.more_seeds` asks, 3 → 5 → 8 → 10), run on arrays by
:func:`analysis.simulate.adaptive_arrays` (the tests check it takes the frame procedure's very steps).
``constant prior``: the same test with the variance prior of before issue 20 item 5 (no test-sampling term).
``oracle``: the known per-row variance, a z-test at 10 seeds with BH — the power no test on these data can beat
(binomial noise; for the Gaussian one the matrix's mean variance, a guide only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from analysis import simulate as S
from analysis.stats import benjamini_hochberg

OFFICE = dict(S.OFFICE_CALTECH_TEST)
DIGITS = {"digits-a": 600, "digits-b": 540, "digits-c": 600, "digits-d": 540}
EFFECT = -0.05
NOISES = {"gaussian": dict(noise="gaussian"), "binomial": dict(noise="binomial"),
          "binomial paired 0.4": dict(noise="binomial", discordance=S.REAL_DISCORDANCE)}


def planted_rows(matrix: S.Matrix) -> np.ndarray:
    rows = matrix.rows
    first_two = list(matrix.targets)[:2] if "amazon" not in matrix.targets else ["amazon", "caltech"]
    return ((rows["method"] == "dann") & rows["target"].isin(first_two)).to_numpy()


def oracle_found(sim: S.Draw, planted: np.ndarray, seeds: int = 10, alpha: float = 0.05) -> np.ndarray:
    """BH on one-sided z-tests of the first ``seeds`` seeds with each row's true variance."""
    m = sim.matrix
    p_base = sim.base_counts.mean(1) / np.array(list(m.targets.values()))  # close to the true one
    pb = p_base[sim.target_index]
    pa = np.clip(pb + sim.gain, 0, 1)
    n = sim.n_test
    if m.noise == "binomial":
        var = 2 * m.train_sd ** 2 + min(1.0, m.discordance) * (pa * (1 - pa) + pb * (1 - pb)) / n
    else:
        var = 2 * m.gaussian_sd ** 2 * np.exp(2 * m.gaussian_spread ** 2) + 1 / (6 * n ** 2)
    from scipy.special import ndtr

    d = sim.diffs(seeds)
    z = (np.nanmean(d, 1) + S.practical_margin(n)) / np.sqrt(var / seeds)
    return (benjamini_hochberg(ndtr(z)) < alpha)[planted]


def rate(flags) -> tuple[float, float]:
    x = np.asarray(flags, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def null_rates(matrix: S.Matrix, draws: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("fixed 2", "fixed 3", "fixed 5", "adaptive", "adaptive seeds",
                                            "fixed 2 constant prior", "adaptive constant prior")}
    for _ in range(draws):
        sim = S.draw(matrix, rng)
        for k in (2, 3, 5):
            out[f"fixed {k}"].append(S.decide_fixed(sim, k)["negative"].any())
        out["fixed 2 constant prior"].append(S.decide_fixed(sim, 2, trend=False)["negative"].any())
        r, n, _ = S.adaptive_arrays(sim)
        out["adaptive"].append(r["negative"].any())
        out["adaptive seeds"].append(n.mean())
        out["adaptive constant prior"].append(S.adaptive_arrays(sim, trend=False)[0]["negative"].any())
    return {k: rate(v) for k, v in out.items()}


def power(matrix: S.Matrix, draws: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    planted = planted_rows(matrix)
    gain = np.where(planted, EFFECT, 0.0)
    out: dict[str, list] = {k: [] for k in ("fixed 3", "adaptive", "adaptive constant prior", "oracle 10",
                                            "false in null rows")}
    by_target: dict[str, list] = {}
    targets = matrix.rows["target"].to_numpy()[planted]
    for _ in range(draws):
        sim = S.draw(matrix, rng, gain=gain)
        out["fixed 3"].append(S.decide_fixed(sim, 3)["negative"][planted].mean())
        r, _, _ = S.adaptive_arrays(sim)
        out["adaptive"].append(r["negative"][planted].mean())
        out["false in null rows"].append(r["negative"][~planted].any())
        for t in np.unique(targets):
            by_target.setdefault(t, []).append(r["negative"][planted][targets == t].mean())
        out["adaptive constant prior"].append(S.adaptive_arrays(sim, trend=False)[0]["negative"][planted].mean())
        out["oracle 10"].append(oracle_found(sim, planted).mean())
    res = {k: rate(v) for k, v in out.items()}
    res.update({f"adaptive, into {t} ({matrix.targets[t]})": rate(v) for t, v in by_target.items()})
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    started = time.time()
    results = {}
    for noise in NOISES:
        for name, targets in (("office", OFFICE), ("digits", DIGITS)):
            m = S.Matrix(targets=targets, **NOISES[noise])
            print(f"[{noise} {name}] null ...", file=sys.stderr)
            results[f"{noise} {name} null"] = null_rates(m, args.draws, seed=1)
            print(f"[{noise} {name}] planted ...", file=sys.stderr)
            results[f"{noise} {name} planted -5"] = power(m, max(1, args.draws // 2), seed=2)
    print(f"{args.draws} null matrices and {args.draws // 2} planted ones per line; "
          f"{time.time() - started:.0f} s\n")
    print("| matrix | noise | P(any false `negative`), null: fixed 2 / 3 / 5 seeds | adaptive 3→10 (mean seeds) "
          "| constant prior: fixed 2 / adaptive |")
    print("|---|---|---|---|---|")
    for noise in NOISES:
        for name in ("office", "digits"):
            r = results[f"{noise} {name} null"]
            f = " / ".join(f"{100 * r[f'fixed {k}'][0]:.1f} ± {100 * r[f'fixed {k}'][1]:.1f} %" for k in (2, 3, 5))
            print(f"| {name} | {noise} | {f} | {100 * r['adaptive'][0]:.1f} ± {100 * r['adaptive'][1]:.1f} % "
                  f"({r['adaptive seeds'][0]:.1f}) | {100 * r['fixed 2 constant prior'][0]:.1f} / "
                  f"{100 * r['adaptive constant prior'][0]:.1f} % |")
    print("\n| matrix | noise | −5 pts found: fixed 3 | adaptive 3→10 | per target (adaptive) "
          "| constant prior, adaptive | oracle, 10 seeds | P(false `negative` among null rows) |")
    print("|---|---|---|---|---|---|---|---|")
    for noise in NOISES:
        for name in ("office", "digits"):
            r = results[f"{noise} {name} planted -5"]
            per = "; ".join(f"{k.split('into ')[1]}: {100 * v[0]:.0f} %" for k, v in r.items() if "into" in k)
            pct = {k: f"{100 * v[0]:.1f} ± {100 * v[1]:.1f} %" for k, v in r.items()}
            print(f"| {name} | {noise} | {pct['fixed 3']} | **{pct['adaptive']}** | {per} | "
                  f"{pct['adaptive constant prior']} | {pct['oracle 10']} | {pct['false in null rows']} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
