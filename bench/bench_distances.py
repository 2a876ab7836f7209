"""Cost of each domain distance as the sample size grows; prints a markdown table.

Usage (from the repository root)::

    timeout 900 .venv/bin/python bench/bench_distances.py                 # n = 1k..20k per domain, d = 256
    # on a shared machine, one BLAS/torch thread avoids oversubscription (10-90x slower eigh/SVD seen):
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 timeout 900 .venv/bin/python bench/bench_distances.py
    .venv/bin/python bench/bench_distances.py --sizes 500 1000 --dim 64  # a quick look

Data: two domains of the synthetic ``shift`` family (``base`` and ``covariate``), 10 classes, ``n`` samples
each. Each cell is the wall time / CPU time of one call (after a warm-up call on tiny inputs); on a shared
machine the wall time includes waiting for cores (the header prints the load average). Methods with a
``max_samples`` cap subsample each domain to it (the cell then says ``n=<cap>``); a method whose time,
extrapolated quadratically from the previous size, would pass ``--max-seconds`` is skipped (``skipped``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapt.domains.shift import make_shift_domain  # noqa: E402
from analysis import distances as D  # noqa: E402


def _methods(seed: int) -> dict[str, tuple[Callable, int | None]]:
    """name -> (call(xs, ys, xt, yt), cap on samples per domain or None)."""
    return {
        "proxy_a (logistic, 5-fold)": (lambda xs, ys, xt, yt: D.proxy_a_distance(xs, xt, seed=seed), 5000),
        "mmd2 (unbiased, median σ)": (lambda xs, ys, xt, yt: D.mmd2(xs, xt), None),
        "mmd2_linear": (lambda xs, ys, xt, yt: D.mmd2_linear(xs, xt), None),
        "mmd_permutation_test (500 perm.)": (
            lambda xs, ys, xt, yt: D.mmd_permutation_test(xs, xt, n_permutations=500, seed=seed), 2000),
        "coral": (lambda xs, ys, xt, yt: D.coral_distance(xs, xt), None),
        "wasserstein (exact EMD, W2²)": (lambda xs, ys, xt, yt: D.wasserstein_distance(xs, xt, seed=seed), 2000),
        "wasserstein (Sinkhorn, reg=5% mean cost)": (_sinkhorn(seed, 5000), 5000),
        "otdd (Gaussian labels, EMD)": (lambda xs, ys, xt, yt: D.otdd_distance(xs, ys, xt, yt, seed=seed), 2000),
        "class_w2": (lambda xs, ys, xt, yt: D.class_gaussian_w2(xs, ys, xt, yt), None),
    }


def _sinkhorn(seed: int, cap: int) -> Callable:
    def run(xs, ys, xt, yt):
        # reg scaled to the data: 5 % of the mean squared distance between the domains (a pilot estimate).
        pilot = ((xs[:200, None, :] - xt[None, :200, :]) ** 2).sum(-1).mean()
        return D.wasserstein_distance(xs, xt, reg=0.05 * float(pilot), max_samples=cap, seed=seed)
    return run


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    dev = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (float64)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                       if k in os.environ)
    return (f"{cpu}; {os.cpu_count()} cores; {threads or 'default BLAS threads'}; "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"device {dev}; load average at start {load:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=200.0,
                        help="skip a method at a size where its extrapolated time exceeds this")
    args = parser.parse_args(argv)

    methods = _methods(args.seed)
    print(f"# bench_distances — {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {_machine()}")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}\n", flush=True)
    warm = make_shift_domain("base", n_samples=50, n_features=args.dim, n_classes=10, seed=args.seed)
    for call, _ in methods.values():
        call(warm.X, warm.y, warm.X + 1.0, warm.y)

    times: dict[str, dict[int, str]] = {name: {} for name in methods}
    last: dict[str, tuple[int, float]] = {}
    total = time.perf_counter()
    for n in args.sizes:
        src = make_shift_domain("base", n_samples=n, n_features=args.dim, n_classes=10, seed=args.seed)
        tgt = make_shift_domain("covariate", covariate=1.0, n_samples=n, n_features=args.dim, n_classes=10,
                                seed=args.seed)
        for name, (call, cap) in methods.items():
            eff = n if cap is None else min(n, cap)
            if name in last:
                n0, t0 = last[name]
                if t0 * (eff / n0) ** 2 > args.max_seconds:
                    times[name][n] = "skipped"
                    continue
            start, cpu = time.perf_counter(), time.process_time()
            call(src.X, src.y, tgt.X, tgt.y)
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            last[name] = (eff, took)
            times[name][n] = f"{took:.2f} s / {cpu:.1f}" + ("" if eff == n else f" (n={eff})")
            print(f"  {name:42s} n={n:>6d}: {times[name][n]}", file=sys.stderr, flush=True)

    header = "| method | " + " | ".join(f"n={n:,}" for n in args.sizes) + " |"
    print(header)
    print("|" + "---|" * (len(args.sizes) + 1))
    for name, row in times.items():
        print(f"| {name} | " + " | ".join(row.get(n, "") for n in args.sizes) + " |")
    print(f"\nCells: wall time / CPU seconds of the process; d = {args.dim}, 10 classes, n samples per domain; "
          f"'(n=k)': subsampled to k per domain (the function's max_samples cap). "
          f"Total {time.perf_counter() - total:.0f} s; load average at the end {os.getloadavg()[0]:.1f}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
