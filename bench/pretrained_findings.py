"""Findings tables of a ``configs/pretrained_digits.yaml`` run folder (bench/RESULTS.md section 4.2).

Accuracy per strategy × budget over seeds (with the records' convergence check), then paired-by-seed
differences answering "which strategy?", "does the source help on top?" and "does pretraining help?".

    .venv/bin/python bench/pretrained_findings.py results/pretrained_digits
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import load_results  # noqa: E402

ORDER = ["probe", "partial", "full", "full-lowlr", "target-only", "scratch"]
COMPARISONS = [
    ("full-lowlr", "full", "which strategy? backbone lr 0.1x vs the same lr"),
    ("partial", "probe", "which strategy? partial vs probe"),
    ("probe", "full-lowlr", "which strategy? probe vs full-lowlr"),
    ("full", "target-only", "does the source help on top? (full fine-tuning)"),
    ("target-only", "scratch", "does pretraining help? (same arm, ImageNet vs random init)"),
]


def main(run_dir: str) -> None:
    df = load_results(run_dir)
    df = df[df.status == "ok"]
    print("| budget (labels/class) | strategy | accuracy mean | sd | per seed | converged | mean wall s/cell |")
    print("|---|---|---|---|---|---|---|")
    for budget in sorted(df.budget.unique()):
        for method in ORDER:
            s = df[(df.method == method) & (df.budget == budget)].sort_values("seed")
            if len(s):
                conv = int(sum(bool(c) for c in s.converged)) if "converged" in s else "?"
                per = ", ".join(f"{a:.3f}" for a in s.accuracy)
                print(f"| {budget} | {method} | {s.accuracy.mean():.3f} | {s.accuracy.std(ddof=1):.3f} | {per} | "
                      f"{conv}/{len(s)} | {s.wall_time.mean():.1f} |")
    print("\n| budget | comparison (paired by seed) | mean diff | min | max | n |")
    print("|---|---|---|---|---|---|")
    for budget in sorted(df.budget.unique()):
        for a, b, question in COMPARISONS:
            x = df[(df.method == a) & (df.budget == budget)].set_index("seed").accuracy
            y = df[(df.method == b) & (df.budget == budget)].set_index("seed").accuracy
            d = (x - y).dropna()
            if len(d):
                print(f"| {budget} | {a} − {b}: {question} | {d.mean():+.3f} | {d.min():+.3f} | {d.max():+.3f} | "
                      f"{len(d)} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/pretrained_digits")
