"""transferlab.predict: forecasts for every pair of a config, then scored against the finished matrix."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from transferlab.config import parse_config
from transferlab.matrix import run_matrix
from transferlab.plan import plan_distances
from transferlab.predict import EVALUATION_FILE, PREDICTIONS_FILE, SUMMARY_FILE, predict_matrix

CONFIG = {
    "name": "predict",
    "data": {"kind": "shift", "n_samples": 300, "seed": 4,
             "shifts": {"base": {}, "null": {}, "concept": {"concept": 1.0}, "label": {"label": 0.8}}},
    "methods": ["dann", "scratch"],
    "budgets": [5],
    "seeds": 3,
    "model": {"backbone": "mlp", "hidden": [32]},
    "train": {"steps": 100, "eval_every": 50, "device": "cpu"},
}


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    config = parse_config(CONFIG)
    domains, pairs = plan_distances(config)
    before = predict_matrix(config, domains, pairs, out)
    run_matrix(config, out, workers=1, threads=1, progress="none", log=lambda msg: None)
    after = predict_matrix(config, domains, pairs, out)
    return out, before, after


def test_predictions_cover_every_pair_and_rank_sources(predicted):
    out, before, _ = predicted
    table = pd.read_csv(out / PREDICTIONS_FILE, keep_default_na=False)   # a domain is called "null"
    assert len(table) == 12 and set(table.budget) == {5} and set(table.n_seeds) == {3}
    for target, g in table.groupby("target"):
        assert g["rank"].min() == 1 and g["rank"].max() == 3, target
    by_pair = table.set_index(["source", "target"])
    # the pair's own test sees the renamed classes; the verdict, read after the matrix, is checked on it
    assert by_pair.loc[("concept", "base"), "evidence"] == "hurt"
    assert by_pair.loc[("base", "concept"), "evidence"] == "hurt"
    assert by_pair.loc[("null", "base"), "evidence"] != "hurt"
    assert by_pair.loc[("concept", "base"), "rank"] == 3
    assert before["evaluation_table"] is None          # no matrix yet: nothing to score against
    assert before["seconds"]["total"] > 0
    # before any measured row nothing checks the predictor: no hurt/help verdict, and it says why
    assert set(before["table"].verdict) == {"unsure"}
    assert before["table"].verdict_reason.str.startswith("not checked").all()
    assert "verdicts" not in before


def test_evaluation_against_the_finished_matrix(predicted):
    out, _, after = predicted
    table = pd.read_csv(out / EVALUATION_FILE).set_index("predictor")
    assert {"source_model_acc", "leep", "mmd2", "knn_source_acc", "target_only_acc"} <= set(table.index)
    assert (table.n_rows == 12).all()
    # the source model's accuracy on the labelled target orders the sources like the measured dann gain
    # (dann, not finetune: under the fair protocol finetune's full target phase recovers from the renamed
    # classes of "concept", so only joint training on contradicting labels leaves negative rows to score)
    assert table.loc["source_model_acc", "mean_tau_w"] > 0.2
    assert table.loc["source_model_acc", "auroc"] > 0.5
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["matrix_seconds"] > summary["seconds"]["total"]
    assert {"auroc_null_low", "auroc_null_high", "beats_trivial"} <= set(table.columns)


def test_verdicts_after_the_matrix_are_checked_and_counted(predicted):
    out, _, after = predicted
    table = pd.read_csv(out / PREDICTIONS_FILE, keep_default_na=False).set_index(["source", "target"])
    verdicts = after["verdicts"]
    assert verdicts["baseline"] == "scratch" and verdicts["rows"] == 12
    # every hurt call has a threshold and the counts it was checked on; pairs without one are unsure
    hurt = table[table.verdict == "hurt"]
    assert (hurt.checked_calls >= 3).all() and (hurt.checked_right <= hurt.checked_calls).all()
    assert set(table.verdict) <= {"hurt", "help", "unsure"}
    assert verdicts["hurt"]["pairs"] == len(hurt)
    assert verdicts["hurt"]["pairs"] + verdicts["help"]["pairs"] + verdicts["unsure_pairs"] == 12
    # the planted harm: a source whose classes are renamed measured below scratch, and predict says so
    if len(hurt):
        assert verdicts["hurt"]["right"] / verdicts["hurt"]["rows"] >= 0.8


def test_cli_predict_scores_and_explain_writes_evidence(predicted, tmp_path, capsys):
    import yaml

    from transferlab.cli import main
    from transferlab.explain import EXPLANATIONS_FILE

    out, _, _ = predicted
    path = tmp_path / "predict.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    assert main(["predict", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "AUROC (negative)" in printed and "knn_source_acc" in printed
    assert main(["explain", str(out)]) == 0
    saved = json.loads((out / EXPLANATIONS_FILE).read_text())
    assert all(row["cause"] == "concept shift" for row in saved["rows"] if "concept" in (row["source"], row["target"]))
    from analysis.report import build_report

    report = build_report(out, distances=()).read_text()
    assert "## What would have predicted this" in report and "knn_source_acc" in report
    assert ("## Why the flagged rows hurt" in report) == bool(saved["rows"])


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    import yaml

    from transferlab.cli import main

    assert main(["explain", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    path = tmp_path / "zero.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "budgets": [0]}))
    assert main(["predict", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "budget > 0" in err
    assert not (tmp_path / "out").exists()
