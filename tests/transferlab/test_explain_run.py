"""transferlab.explain: every explained row names its planted cause and the classes that lose, from outcomes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import analysis
from transferlab.config import parse_config
from transferlab.matrix import run_matrix
from transferlab.plan import plan_distances
from transferlab.explain import EXPLANATIONS_FILE, explain_rows, explain_run

CONFIG = {
    "name": "explain",
    "data": {"kind": "shift", "n_samples": 300, "seed": 5,
             "shifts": {"base": {}, "concept": {"concept": 1.0}, "label": {"label": 0.8},
                        "covariate": {"covariate": 1.0}}},
    "pairs": [["concept", "base"], ["label", "base"], ["covariate", "base"]],
    "methods": ["dann", "scratch"],
    "budgets": [5],
    "seeds": 2,
    "model": {"backbone": "mlp", "hidden": [32]},
    "train": {"steps": 200, "eval_every": 50, "device": "cpu"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    config = parse_config(CONFIG)
    run_matrix(config, out, workers=1, threads=1, progress="none", log=lambda msg: None)
    domains, _ = plan_distances(config)
    return out, config, domains


def test_each_planted_pair_gets_its_cause(run):
    out, config, domains = run
    rows = pd.DataFrame([{"source": s, "target": t, "method": "dann", "budget": 5} for s, t in CONFIG["pairs"]])
    entries = {e["source"]: e for e in explain_rows(rows, out, config, domains)}
    assert entries["concept"]["cause"] == "concept shift"
    assert entries["label"]["cause"] == "label shift"
    assert "dann aligned marginals across different class priors" in entries["label"]["reading"]
    assert entries["covariate"]["cause"] == "covariate shift"
    # after adaptation: the flagged cell retrained (seed 0) through the public run_cell(return_model=True)
    for entry in entries.values():
        assert 0.0 <= entry["evidence"]["discriminator_after"] <= 1.0
        assert entry["evidence"]["class_w2_after"] >= 0.0
    # per-class change from the per-example outcomes of dann and scratch on the same seeds and test examples
    concept = pd.DataFrame(entries["concept"]["per_class"])
    records = analysis.load_results(out).query("source == 'concept' and method == 'dann'")
    assert len(concept) == 4 and concept.n.sum() == records.n_test.sum()   # every test example of both seeds
    assert (concept.change < 0).all()                           # renamed classes: every class loses


def test_explain_run_writes_exactly_the_flagged_rows(run, tmp_path):
    import shutil

    from transferlab.predict import measured_flags

    out, config, domains = run
    # Every DANN arm of this short run is still learning (unconverged), so nothing is flagged; to have flagged
    # rows to explain, mark every record converged in a copy of the run.
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    for path in (copy / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        record["converged"] = True
        path.write_text(json.dumps(record))
    entries = explain_run(copy, config, domains)
    flagged = measured_flags(copy).query("flag == 'negative'")
    assert len(flagged) >= 1
    assert sorted((e["source"], e["method"], e["budget"]) for e in entries) == sorted(
        zip(flagged.source, flagged.method, flagged.budget))
    assert {e["source"]: e["cause"] for e in entries}["concept"] == "concept shift"
    saved = json.loads((copy / EXPLANATIONS_FILE).read_text())
    assert saved["baseline"] == "scratch" and saved["rows"] == entries
