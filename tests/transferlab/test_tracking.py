"""``transferlab run --track mlflow``: one MLflow run per cell, read back with MlflowClient (transferlab.tracking)."""

from __future__ import annotations

import json

import pytest

from conftest import write_tiny_config
from transferlab.cli import main

mlflow = pytest.importorskip("mlflow", reason="the transferlab[mlflow] extra is not installed")


def _runs(run_dir, experiment):
    from transferlab.tracking import _client

    client = _client((run_dir / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def _records(run_dir):
    return {r["key"]: r for r in (json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json"))}


def test_one_mlflow_run_per_cell_with_the_records_numbers(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path, seeds=1, methods=["finetune", "dann", "scratch"], budgets=[2],
                            pairs=[["a", "b"], ["b", "c"]])
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--progress", "none",
                 "--track", "mlflow"]) == 0
    records = _records(out)
    client, runs = _runs(out, "tiny")
    assert len(runs) == len(records) == 6
    by_key = {r.data.tags["transferlab.key"]: r for r in runs}
    assert set(by_key) == set(records)
    for key, rec in records.items():
        run = by_key[key]
        assert run.data.metrics["accuracy"] == pytest.approx(rec["accuracy"], abs=1e-12)
        assert run.data.params["method"] == rec["method"] and run.data.params["seed"] == str(rec["seed"])
        assert run.data.params["train.steps"] == str(rec["train"]["steps"])
        assert run.info.status == "FINISHED"
        # the loss curve, point by point at its steps
        history = client.get_metric_history(run.info.run_id, "loss_cls_target")
        curve = [(s, v) for s, v in zip(rec["curves"]["step"], rec["curves"]["loss_cls_target"]) if v is not None]
        history = sorted(history, key=lambda m: m.step)
        assert [m.step for m in history] == [s for s, _ in curve] and len(curve) >= 2
        assert [m.value for m in history] == pytest.approx([v for _, v in curve])
    dann = next(r for k, r in by_key.items() if records[k]["method"] == "dann")
    assert client.get_metric_history(dann.info.run_id, "loss_domain")

    # extending the run (a second seed) logs only the new cells: one run per cell, never twice
    cfg = write_tiny_config(tmp_path, seeds=2, methods=["finetune", "dann", "scratch"], budgets=[2],
                            pairs=[["a", "b"], ["b", "c"]])
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--progress", "none",
                 "--track", "mlflow"]) == 0
    assert "6 new cell(s) logged" in capsys.readouterr().out
    _, runs = _runs(out, "tiny")
    keys = [r.data.tags["transferlab.key"] for r in runs]
    assert len(keys) == len(set(keys)) == len(_records(out)) == 12

    # the report puts each row's verdict on its cells' runs
    assert main(["report", str(out)]) == 0
    from transferlab.tracking import row_verdicts

    verdicts = row_verdicts(out)
    _, runs = _runs(out, "tiny")
    tagged = [r for r in runs if "verdict" in r.data.tags]
    assert {r.data.params["method"] for r in tagged} == {"finetune", "dann"}
    for run in tagged:
        p = run.data.params
        assert run.data.tags["verdict"] == verdicts[(p["source"], p["target"], p["method"], int(p["budget"]))][
            "verdict"]


def test_bad_track_argument_is_a_usage_error(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--track", "wandb"]) == 2
    assert "--track: expected 'mlflow' or 'mlflow:URI'" in capsys.readouterr().err
    assert not out.exists()
