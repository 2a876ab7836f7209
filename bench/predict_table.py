"""The predictor table of bench/RESULTS.md: how well each no-training predictor forecast finished matrices.

Usage (each RUN_DIR a finished run on which ``transferlab predict CONFIG --out RUN_DIR`` was run after it)::

    python bench/predict_table.py results/demo results/office_caltech_surf_predict

Prints, per run, predict's ``hurt`` / ``help`` verdicts against what was measured (with the base rate), then every
predictor's AUROC for the ``negative`` flag and mean weighted Kendall τ with the 95 % band chance gives them
under domain relabelling, whether it beats the trivial baselines, and the cost of prediction next to the
matrix's summed cell time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from analysis.forecast import EVALUATION_FILE, SUMMARY_FILE, trivial_comparison


def main(run_dirs: list[str]) -> None:
    for run in map(Path, run_dirs):
        table = pd.read_csv(run / EVALUATION_FILE)
        summary = json.loads((run / SUMMARY_FILE).read_text())
        cost, matrix = summary["seconds"]["total"], summary.get("matrix_seconds")
        print(f"\n### {run.name}: {int(table.n_rows.max())} rows with a budget, "
              f"{int(table.n_negative.max())} flagged negative; prediction {cost:.1f} s vs "
              f"{matrix:.0f} s of cell time ({100 * cost / matrix:.1f}%)\n")
        v = summary.get("verdicts")
        if v:
            for call, side in (("hurt", "below"), ("help", "above")):
                c = v[call]
                share = f"{100 * c['right'] / c['rows']:.0f}%" if c["rows"] else "—"
                print(f"- `{call}`: {c['pairs']} pairs, {c['right']}/{c['rows']} measured rows {side} "
                      f"{v['baseline']} ({share}; {c['flagged']} flagged significantly)")
            print(f"- unsure: {v['unsure_pairs']} pairs; base rate: {v['rows_below_baseline']}/{v['rows']} rows "
                  f"below {v['baseline']}\n")
        print("| predictor | kind | AUROC (negative) | chance band | mean τ_w | chance band | beats trivial |")
        print("|---|---|---|---|---|---|---|")
        for r in table.itertuples():
            print(f"| {r.predictor} | {r.kind} | {r.auroc:.2f} | {r.auroc_null_low:.2f}–{r.auroc_null_high:.2f} | "
                  f"{r.mean_tau_w:.2f} | {r.tau_null_low:.2f}–{r.tau_null_high:.2f} | "
                  f"{'yes' if r.beats_trivial is True else 'no'} / {'yes' if r.beats_trivial_tau is True else 'no'} |")
        print()
        for line in trivial_comparison(table):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
