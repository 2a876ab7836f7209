"""The predictor table of bench/RESULTS.md: how well each no-training predictor forecast finished matrices.

Usage (each RUN_DIR a finished run on which ``transferlab predict CONFIG --out RUN_DIR`` was run after it)::

    python bench/predict_table.py results/demo results/shift results/office_caltech_surf_fewshot

Prints, per run, every predictor's AUROC for the ``negative`` flag and mean weighted Kendall τ with their
domain-permutation p-values, and the cost of prediction next to the matrix's summed cell time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from analysis.forecast import EVALUATION_FILE, SUMMARY_FILE


def main(run_dirs: list[str]) -> None:
    for run in map(Path, run_dirs):
        table = pd.read_csv(run / EVALUATION_FILE)
        summary = json.loads((run / SUMMARY_FILE).read_text())
        cost, matrix = summary["seconds"]["total"], summary.get("matrix_seconds")
        print(f"\n### {run.name}: {int(table.n_rows.max())} rows with a budget, "
              f"{int(table.n_negative.max())} flagged negative; prediction {cost:.1f} s vs "
              f"{matrix:.0f} s of cell time ({100 * cost / matrix:.1f}%)\n")
        print("| predictor | kind | AUROC (negative) | p | mean τ_w | p |")
        print("|---|---|---|---|---|---|")
        for r in table.itertuples():
            print(f"| {r.predictor} | {r.kind} | {r.auroc:.2f} | {r.auroc_p_value:.3f} | {r.mean_tau_w:.2f} | "
                  f"{r.tau_p_value:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
