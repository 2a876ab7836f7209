"""analysis.report.build_report on synthetic run folders (records written directly, no training): the files,
the sections, embedded images, and the awkward runs — some methods only, one budget, failed cells, no
scratch, budget 0 only."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from transferlab.config import parse_config
from adapt.errors import TransferlabError
from analysis.report import build_report

DOMAINS = ["original", "rotated", "inverted"]
SECTIONS = ["## Decision per target", "## Contents", "## Findings", "## Gain vs scratch", "## Target accuracy",
            "## Failed cells", "# Appendix: per-row detail", "## Run", "## Worst pairs", "## Negative transfer",
            "## Budget 0 (no target labels)", "## DA harm", "## Budget crossover", "## Distances vs gain",
            "## Label-budget curves", "## Training curves", "## Reproduce"]


def make_run(root: Path, methods=("finetune", "dann", "scratch"), budgets=(0, 5), seeds=3, failed=(),
             n_classes=True, name="synthetic", boost=None) -> Path:
    """A run folder as ``transferlab run`` writes it: ``run.json`` and ``cells/<key>.json`` records.

    Accuracies are drawn around 0.6; transfer methods lose 35 points on rotated -> original (negative
    transfer), and dann loses 5 more everywhere (DA harm). ``failed`` holds (source, target, method) triples
    whose records fail; ``boost`` maps (source, target, method) to an accuracy added on every seed.
    """
    raw = {"name": name, "data": {"kind": "digits", "names": DOMAINS}, "domains": DOMAINS, "pairs": "all",
           "methods": list(methods), "budgets": list(budgets), "seeds": seeds,
           "model": {"backbone": "mlp", "hidden": [16]}, "train": {"steps": 40, "eval_every": 10}}
    config = parse_config(raw)
    rng = np.random.default_rng(0)
    cells_dir = root / "cells"
    cells_dir.mkdir(parents=True)
    cells = []
    for s in DOMAINS:
        for t in DOMAINS:
            if s == t:
                continue
            for m in methods:
                for b in budgets:
                    if m in ("scratch", "target-only") and b == 0:
                        continue
                    for seed in range(seeds):
                        key = f"{s[:3]}{t[:3]}{m}{b}s{seed}"
                        acc = 0.6 + 0.03 * b + rng.normal(0, 0.01)
                        if m != "scratch" and (s, t) == ("rotated", "original"):
                            acc -= 0.35
                        if m == "dann":
                            acc -= 0.05
                        acc += (boost or {}).get((s, t, m), 0.0)
                        bad = (s, t, m) in failed
                        steps = [10, 20, 30, 40]
                        record = {
                            "key": key, "compute_key": key, "source": s, "target": t, "method": m,
                            "method_name": m, "seed": seed, "budget": b,
                            "status": "failed" if bad else "ok",
                            "reason": "diverged at step 20 (loss_domain=nan)" if bad else None,
                            "accuracy": None if bad else float(np.clip(acc, 0, 1)),
                            "source_accuracy": None if m == "scratch" else 0.9,
                            "wall_time": 0.5, "device": "cpu", "n_test": 90,
                            "curves": {"step": steps, "loss_cls": [2.0, 1.2, 0.8, 0.6],
                                       "loss_domain": [0.69, 0.68, 0.7, 0.69] if m == "dann" else [None] * 4,
                                       "target_labelled_acc": [0.2, 0.4, 0.6, 0.7] if b else [None] * 4,
                                       "lr": [1e-3] * 4},
                            "finished_at": "2026-01-01T00:00:00Z",
                        }
                        if n_classes:
                            record["n_classes"] = 10
                        (cells_dir / f"{key}.json").write_text(json.dumps(record))
                        cells.append({"key": key, "source": s, "target": t, "method": m, "seed": seed,
                                      "budget": b})
    run = {"name": name, "config": config.to_dict(), "config_path": None, "domains": DOMAINS,
           "pairs": [[s, t] for s in DOMAINS for t in DOMAINS if s != t], "cells": cells,
           "git": {"commit": "0123456789abcdef", "dirty": False}}
    (root / "run.json").write_text(json.dumps(run))
    return root


def images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def section(md: str, title: str) -> str:
    start = md.index(f"## {title}\n")
    end = re.search(r"\n#{1,2} ", md[start + 1:])
    return md[start:start + 1 + end.start() if end else None]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    from transferlab.distances import ensure_run_distances

    run = make_run(tmp_path_factory.mktemp("full"))
    # distances are computed where the data is (transferlab), then read by the report
    assert "wrote" in ensure_run_distances(run, which=("coral", "mmd2_linear"))
    md_path = build_report(run)
    return run, md_path, md_path.read_text()


# ---------------------------------------------------------------------------------------------- full run
def test_report_files_sections_and_embedded_images(full):
    run, md_path, md = full
    assert md_path == run / "report.md"
    html = (run / "report.html").read_text()
    positions = [md.index(s + "\n") for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    linked = images(md)
    assert 5 <= len(linked) <= 12  # panels, not one image per method and budget
    for rel in linked:
        assert rel.startswith("figures/") and (run / rel).is_file()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(embedded) == len(linked)
    assert all(base64.b64decode(e[:24])[:8] == b"\x89PNG\r\n\x1a\n" for e in embedded)
    assert 'src="figures/' not in html  # self-contained
    assert "<table>" in html and "<h2" in html
    assert "unavailable" not in md.lower() and "could not" not in md.lower()


def test_report_flags_the_negative_transfer_pair_first(full):
    _, _, md = full
    worst = section(md, "Worst pairs")
    first_row = next(line for line in worst.splitlines() if line.startswith("| 1 |"))
    assert "rotated → original" in first_row and "negative" in first_row
    header = next(line for line in worst.splitlines() if line.startswith("| rank |"))
    assert "coral" in header and "mmd2_linear" in header  # distance columns
    findings = section(md, "Findings")
    assert "NT: rotated → original" in findings
    assert "DA harm:" in findings


def test_report_gain_heatmaps_per_method_and_budget(full):
    _, _, md = full
    gains = section(md, "Gain vs scratch")
    assert images(gains) == ["figures/gain_b5.png"]  # one figure, a panel per method
    assert "Gain vs scratch of finetune, dann, 5 target labels per class" in gains
    assert "chance" not in gains  # budget 0 has its own section, never a silent chance baseline
    acc = section(md, "Target accuracy")
    assert images(acc) == ["figures/accuracy_b0.png", "figures/accuracy_b5.png"]
    assert "finetune, dann, scratch, 5 target labels" in acc


def test_report_tables_and_training_curves(full):
    run, _, md = full
    assert "| rotated → original | dann | 5 |" in section(md, "Negative transfer")
    harm = section(md, "DA harm")
    assert "harm" in harm and "| rotated → original | dann |" in harm
    assert "two or more budgets" in section(md, "Budget crossover")  # budget 0 has no gain to cross
    dist = section(md, "Distances vs gain")
    assert "Spearman" in dist and "figures/distance_gain_b5.png" in images(dist)
    assert (run / "distances.csv").is_file()
    training = section(md, "Training curves")
    assert "rotated → original, dann, budget 5" in training and "worst flagged cell" in training
    assert len(images(training)) == 1
    curves = section(md, "Label-budget curves")
    assert "figures/budget_rotated_original.png" in images(curves)
    assert section(md, "Failed cells").strip().endswith("None.")


def test_report_takes_a_cell_and_an_out_folder(tmp_path):
    run = make_run(tmp_path / "run", methods=("finetune", "scratch"), budgets=(5,), seeds=2)
    out = tmp_path / "elsewhere"
    md = build_report(run, cell=("original", "rotated", "finetune", 5), out=out, distances=()).read_text()
    assert "original → rotated, finetune, budget 5: the cell asked for" in section(md, "Training curves")
    assert (out / "report.html").is_file() and (out / "figures").is_dir()
    assert not (run / "report.md").exists()
    md = build_report(run, cell="oriinvfinetune5s1", out=out, distances=()).read_text()
    assert "original → inverted, finetune, budget 5, seed 1" in section(md, "Training curves")
    md = build_report(run, cell={"target": "original", "seed": 0}, out=out, distances=()).read_text()
    assert "seed 0" in section(md, "Training curves")
    with pytest.raises(TransferlabError, match="no cell record"):
        build_report(run, cell="nope", out=out, distances=())
    with pytest.raises(TransferlabError, match="cell filters"):
        build_report(run, cell={"colour": "red"}, out=out, distances=())


# ---------------------------------------------------------------------------------------------- awkward runs
def test_report_some_methods_one_budget(tmp_path):
    run = make_run(tmp_path / "run", methods=("finetune", "scratch"), budgets=(5,), seeds=2)
    md = build_report(run, distances=()).read_text()
    assert images(section(md, "Gain vs scratch")) == ["figures/gain_b5.png"]
    assert "DA harm needs `finetune` and at least one other" in section(md, "DA harm")
    assert "needs gains at two or more budgets" in section(md, "Budget crossover")
    assert "single budget" in section(md, "Label-budget curves")
    assert "not computed" in section(md, "Distances vs gain")


def test_report_failed_cells(tmp_path):
    failed = {("original", "rotated", "dann"), ("inverted", "original", "finetune")}
    run = make_run(tmp_path / "run", failed=failed, seeds=2)
    md = build_report(run, distances=()).read_text()
    fails = section(md, "Failed cells")
    assert "8 cells failed" in fails and "diverged at step 20" in fails  # 2 triples x 2 budgets x 2 seeds
    assert "8 failed" in section(md, "Run")
    nt = section(md, "Negative transfer")
    assert "| original → rotated | dann |" not in nt  # no finished seed, no statistic
    assert (run / "report.html").is_file()


def test_report_without_scratch_says_gains_unavailable(tmp_path):
    run = make_run(tmp_path / "run", methods=("finetune", "dann"), budgets=(5,), seeds=2)
    md = build_report(run, distances=()).read_text()
    assert "Gains vs scratch are unavailable" in section(md, "Gain vs scratch")
    assert images(section(md, "Gain vs scratch")) == []
    assert len(images(section(md, "Target accuracy"))) == 1  # one budget, both methods as panels
    assert "lowest mean accuracy" in section(md, "Training curves")
    assert "harm" in section(md, "DA harm")


@pytest.mark.parametrize("n_classes", [True, False])
def test_report_budget_zero_only(tmp_path, n_classes):
    run = make_run(tmp_path / "run", methods=("finetune", "coral"), budgets=(0,), seeds=2,
                   n_classes=n_classes)
    md = build_report(run, distances=()).read_text()
    gains = section(md, "Gain vs scratch")
    assert "unavailable" in gains and images(gains) == []  # no baseline can train without labels
    zero = section(md, "Budget 0 (no target labels)")
    assert "| original → rotated | finetune |" in zero and "Clopper–Pearson" in zero
    if n_classes:
        assert "above-chance" in zero  # ~60 % accuracy with 10 classes
    else:
        assert "at-chance" in zero and "n/a" in zero  # no class count: no test, no claim
    assert len(images(section(md, "Training curves"))) == 1


def _edit_records(run: Path, edit) -> None:
    for path in (run / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        if edit(record):
            path.write_text(json.dumps(record))


def test_report_unconverged_source_effect_and_zero_variance(tmp_path):
    run = make_run(tmp_path / "run", methods=("finetune", "scratch", "target-only"), budgets=(5,), seeds=3)

    def unconverged(rec):
        if (rec["source"], rec["target"], rec["method"]) == ("original", "rotated", "finetune"):
            rec["converged"], rec["convergence_reason"] = False, "phase 'target': training loss still falling"
            return True
        return False

    scratch = {}
    _edit_records(run, lambda rec: scratch.setdefault((rec["target"], rec["seed"]), []).append(rec["accuracy"])
                  if rec["method"] == "scratch" else None)

    def deterministic(rec):  # 10 points below scratch on every seed: zero variance across seeds
        if (rec["source"], rec["target"], rec["method"]) == ("rotated", "inverted", "finetune"):
            rec["accuracy"] = float(np.mean(scratch[rec["target"], rec["seed"]])) - 0.1
            return True
        return False

    _edit_records(run, unconverged)
    _edit_records(run, deterministic)
    md = build_report(run, distances=()).read_text()
    unconv = section(md, "Unconverged rows")
    assert "| original → rotated | finetune | 5 | scratch |" in unconv and "train.steps" in unconv
    assert "unconv." in section(md, "Gain vs target-only")  # decisions and heatmaps: vs target-only
    nt = section(md, "Negative transfer")
    assert "Baseline: **`scratch`**" in nt and "| original → rotated | finetune |" not in nt
    flat = next(line for line in nt.splitlines() if line.startswith("| rotated → inverted | finetune |"))
    cells = [c.strip() for c in flat.split("|")]
    assert cells[6] not in ("0", "n/a") and float(cells[6]) > 0  # p of a zero-variance row
    assert "zero variance" in flat
    source = section(md, "Source effect (vs target-only)")
    assert "Baseline: **`target-only`**" in source and "| rotated → original | finetune | 5 |" in source
    assert "rows against `target-only`" in section(md, "Findings")


def test_report_reads_distances_and_explains_a_negative_mmd2(tmp_path):
    import pandas as pd

    run = make_run(tmp_path / "run")
    md = build_report(run).read_text()
    assert "not computed: no `distances.csv`" in section(md, "Distances vs gain")   # nothing loaded here
    pairs = json.loads((run / "run.json").read_text())["pairs"]
    pd.DataFrame([{"source": s, "target": t, "mmd2": -0.002 if (s, t) == ("original", "rotated") else 0.3,
                   "coral": 1.0 + i} for i, (s, t) in enumerate(pairs)]).to_csv(run / "distances.csv", index=False)
    text = section(build_report(run).read_text(), "Distances vs gain")
    assert "read from" in text
    assert "`mmd2` is below 0 for original → rotated" in text and "Read a negative value as 0" in text


def test_cli_report_calls_build_report(full, capsys):
    from transferlab.cli import main

    run, _, _ = full
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"report: {run / 'report.md'}" in out and f"report: {run / 'report.html'}" in out
    assert "built in" in out
    # The rebuild reads the distances the first build wrote instead of recomputing them.
    assert "read from" in section((run / "report.md").read_text(), "Distances vs gain")


# ---------------------------------------------------------------------------------------------- decisions
def _csv(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def test_report_decision_per_target_recommends_the_significant_best_and_its_runner_up(tmp_path):
    # On target inverted: original+finetune +12 points, rotated+finetune +6 (both clearly positive), dann on
    # original +30 but unconverged (never recommended: not tested). Every other target: nothing helps.
    boost = {("original", "inverted", "finetune"): 0.12, ("rotated", "inverted", "finetune"): 0.06,
             ("original", "inverted", "dann"): 0.35}
    run = make_run(tmp_path / "run", methods=("finetune", "dann", "scratch", "target-only"), budgets=(5,),
                   seeds=4, boost=boost)
    _edit_records(run, lambda rec: rec.update(converged=False, convergence_reason="loss still falling") or True
                  if (rec["source"], rec["target"], rec["method"]) == ("original", "inverted", "dann") else False)
    md = build_report(run, distances=()).read_text()
    rec = _csv(run / "recommendations.csv").set_index("target")
    assert list(rec.index) == sorted(DOMAINS)
    inv = rec.loc["inverted"]
    assert inv["choice"] == "original + finetune" and inv["verdict"] == "positive"
    assert inv["runner_up"] == "rotated + finetune" and inv["runner_up_verdict"] == "positive"
    assert inv["baseline"] == "target-only"
    # the gain is the seed-paired mean difference to target-only, computed here from the records
    records = [json.loads(p.read_text()) for p in (run / "cells").glob("*.json")]
    acc = {(r["source"], r["method"], r["seed"]): r["accuracy"] for r in records if r["target"] == "inverted"}
    base = {seed: np.mean([a for (s, m, sd), a in acc.items() if m == "target-only" and sd == seed])
            for seed in range(4)}  # the baseline's records of one (target, seed), averaged
    diffs = [a - base[seed] for (s, m, seed), a in acc.items() if (s, m) == ("original", "finetune")]
    assert inv["gain"] == pytest.approx(np.mean(diffs), abs=1e-9)
    assert inv["ci_low"] > 0
    for target in ("rotated",):  # (original's target-only arms include make_run's -35 points on one source)
        assert rec.loc[target, "choice"] == "the target alone"
        assert rec.loc[target, "verdict"] == "no transfer row significantly better"
    # the table comes first, before any figure, and names the choice
    decision = section(md, "Decision per target")
    assert md.index("## Decision per target") < md.index("![")
    assert "| inverted | original + finetune |" in decision and "rotated + finetune" in decision
    assert "| rotated | the target alone |" in decision


def test_report_verdict_counts_are_one_set_of_numbers(tmp_path):
    run = make_run(tmp_path / "run", methods=("finetune", "dann", "scratch", "target-only"), budgets=(5,),
                   seeds=3, boost={("original", "inverted", "finetune"): 0.12})
    md = build_report(run, distances=()).read_text()
    import analysis

    table = analysis.negative_transfer(analysis.load_results(run), baseline="target-only")
    flags = table["flag"].replace({"unconverged": "untested", "no-baseline": "untested"}).value_counts()
    sentence = re.search(r"Verdicts of the (\d+) .*?: (.*?)\.", section(md, "Decision per target"))
    assert int(sentence.group(1)) == len(table)
    shown = {k: int(v) for v, k in re.findall(r"\*\*(\d+)\*\* ([a-z-]+)", sentence.group(2))}
    assert {k: v for k, v in shown.items() if v} == {k: int(v) for k, v in flags.items()}
    assert sentence.group(0) in section(md, "Findings")  # the same sentence, the same numbers


def test_report_recommends_the_target_alone_when_every_row_is_untested(tmp_path):
    run = make_run(tmp_path / "run", methods=("finetune", "scratch", "target-only"), budgets=(5,), seeds=3,
                   boost={("original", "inverted", "finetune"): 0.3})
    _edit_records(run, lambda rec: rec.update(converged=False) or True if rec["method"] == "finetune" else False)
    build_report(run, distances=())
    rec = _csv(run / "recommendations.csv")
    assert set(rec["choice"]) == {"the target alone"}
    assert set(rec["verdict"]) == {"no transfer row could be tested"}
