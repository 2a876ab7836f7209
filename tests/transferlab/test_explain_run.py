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
    "methods": ["dann", "finetune", "scratch"],
    "budgets": [5],
    "seeds": 2,
    "model": {"backbone": "mlp", "hidden": [32]},
    # save_models: explain reads the trained networks instead of retraining them
    "train": {"steps": 200, "eval_every": 50, "device": "cpu", "save_models": True},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    config = parse_config(CONFIG)
    run_matrix(config, out, workers=1, threads=1, progress="none", log=lambda msg: None)
    domains, _ = plan_distances(config)
    return out, config, domains


def _no_retraining(monkeypatch):
    import adapt.train

    def refuse(*args, **kwargs):
        raise AssertionError("explain retrained a cell")

    monkeypatch.setattr(adapt.train, "run_cell", refuse)


def test_each_planted_pair_gets_its_cause(run, monkeypatch):
    out, config, domains = run
    _no_retraining(monkeypatch)
    rows = pd.DataFrame([{"source": s, "target": t, "method": "dann", "budget": 5} for s, t in CONFIG["pairs"]])
    entries = {e["source"]: e for e in explain_rows(rows, out, config, domains)}
    assert entries["concept"]["cause"] == "concept shift"
    assert entries["label"]["cause"] == "label shift"
    assert "dann aligned marginals across different class priors" in entries["label"]["reading"]
    assert entries["covariate"]["cause"] == "covariate shift"
    # after adaptation: dann aligns (the registry says so), measured on the network the run kept (seed 0)
    for entry in entries.values():
        assert entry["aligns"] and entry["evidence"]["after_from"] == "the network the run kept"
        assert 0.0 <= entry["evidence"]["discriminator_after"] <= 1.0
        assert entry["evidence"]["class_w2_after"] >= 0.0
    # BBSE is read only where the label-shift test sees a shift and the inputs are not separable
    assert entries["label"]["evidence"]["label_shift_p"] < 0.05 and entries["label"]["evidence"]["prior_tv"] > 0.15
    assert entries["covariate"]["evidence"]["prior_tv"] is None
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


def test_wording_follows_the_method_and_each_row_leads_with_its_own_evidence(run, monkeypatch):
    out, config, domains = run
    _no_retraining(monkeypatch)
    nt = analysis.negative_transfer(analysis.load_results(out).assign(converged=True),
                                    outcomes=analysis.load_outcomes(out))
    rows = nt[(nt.source == "covariate") & nt.method.isin(["dann", "finetune"])]
    entries = {e["method"]: e for e in explain_rows(rows, out, config, domains)}
    fine, dann = entries["finetune"], entries["dann"]
    # finetune adapts nothing: no features "after adaptation", and the reading says it does not align
    assert not fine["aligns"] and "discriminator_after" not in fine["evidence"]
    assert "does not align" in fine["reading"] and "after" not in fine["reading"]
    assert "alignment a domain classifier on its features" in dann["reading"]
    # same pair, same cause, but each row leads with its own gain (and classes), so they read differently
    assert fine["cause"] == dann["cause"] == "covariate shift"
    for method, entry in entries.items():
        gain = float(rows.set_index("method").loc[method, "gain"])
        assert entry["reading"].startswith(f"{method} {100 * gain:+.1f} pts vs scratch")
    assert fine["lead"] != dann["lead"]


def test_explain_without_kept_weights_does_not_retrain(run, tmp_path, monkeypatch):
    import shutil

    out, config, domains = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    for weights in (copy / "cells").glob("*.pt"):
        weights.unlink()
    _no_retraining(monkeypatch)
    rows = pd.DataFrame([{"source": "covariate", "target": "base", "method": "dann", "budget": 5}])
    entry = explain_rows(rows, copy, config, domains)[0]
    assert entry["evidence"]["after_from"].startswith("not measured")
    assert entry["cause"] == "covariate shift" and "discriminator_after" not in entry["evidence"]
