"""load_results / load_curves on a run folder written here (including a corrupt and a failed record)."""

from __future__ import annotations

import json
import math

import pytest

from adapt.errors import TransferlabError
from analysis import load_curves, load_results, negative_transfer


def _record(source, method, seed, budget, accuracy, status="ok", **extra):
    return {
        "key": f"{source}-{method}-{seed}-{budget}", "source": source, "target": "t", "method": method,
        "seed": seed, "budget": budget, "accuracy": accuracy, "source_accuracy": 0.9, "status": status,
        "reason": None if status == "ok" else "RuntimeError: diverged", "wall_time": 1.5, "device": "cpu",
        "curves": {"step": [0, 10, 20], "loss": [1.0, 0.5, 0.25], "acc": [0.3, 0.6, accuracy or 0.0]},
        "params": {"lr": 0.001, "hidden": [128]}, **extra,
    }


@pytest.fixture
def run_dir(tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    records = [
        _record("b", "finetune", 1, 5, 0.71), _record("a", "scratch", 0, 5, 0.60),
        _record("a", "finetune", 1, 5, 0.70), _record("a", "finetune", 0, 5, 0.72),
        _record("a", "scratch", 1, 5, 0.61), _record("a", "dann", 0, 5, None, status="failed"),
    ]
    for rec in records:
        (cells / f"{rec['key']}.json").write_text(json.dumps(rec))
    (cells / "corrupt.json").write_text('{"source": "a", "acc')
    (cells / ".a-dann-0-5.json.123.tmp").write_text("{")  # a writer's temporary file
    (cells / "list.json").write_text("[1, 2]")
    return tmp_path


def test_load_results_flattens_sorts_and_skips_bad_files(run_dir):
    with pytest.warns(UserWarning) as caught:
        df = load_results(run_dir)
    messages = " ".join(str(w.message) for w in caught)
    assert "corrupt.json" in messages and "list.json" in messages
    assert list(df.columns[:8]) == ["source", "target", "method", "seed", "budget", "accuracy", "status", "cell_id"]
    assert "curves" not in df.columns and not any(c.startswith("curves") for c in df.columns)
    assert {"params.lr", "params.hidden", "wall_time", "device", "reason", "source_accuracy"} <= set(df.columns)
    assert json.loads(df["params.hidden"].iloc[0]) == [128]
    assert list(zip(df.source, df.method, df.seed)) == [
        ("a", "dann", 0), ("a", "finetune", 0), ("a", "finetune", 1), ("a", "scratch", 0), ("a", "scratch", 1),
        ("b", "finetune", 1)]
    failed = df[df.status == "failed"].iloc[0]
    assert math.isnan(failed.accuracy) and failed.reason.startswith("RuntimeError")
    nt = negative_transfer(df)  # the failed dann record does not count
    assert set(nt.method) == {"finetune"}


def test_load_results_errors_name_the_path(tmp_path):
    with pytest.raises(TransferlabError, match="no run folder at .*missing"):
        load_results(tmp_path / "missing")
    with pytest.raises(TransferlabError, match="no cell records in .*cells"):
        load_results(tmp_path)
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "x.json").write_text("not json")
    with pytest.warns(UserWarning, match="x.json"), pytest.raises(TransferlabError, match="no readable"):
        load_results(tmp_path)


@pytest.mark.filterwarnings("ignore:skipping")
def test_load_curves_long_form_and_filters(run_dir):
    curves = load_curves(run_dir, method="finetune", seed=[0])
    assert list(curves.columns) == ["cell_id", "source", "target", "method", "seed", "budget", "curve", "step",
                                    "value"]
    assert set(curves.source) == {"a"} and set(curves.curve) == {"acc", "loss"}
    loss = curves[curves.curve == "loss"]
    assert list(loss.step) == [0, 10, 20] and list(loss.value) == [1.0, 0.5, 0.25]
    assert len(load_curves(run_dir)) == 6 * 2 * 3
    assert load_curves(run_dir, method="nope").empty
    with pytest.raises(TransferlabError, match="colour"):
        load_curves(run_dir, colour="red")


def test_convergence_columns_old_records_count_as_converged(tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    reason = "phase 'target': training loss still falling (−18% over the last 20% of steps)"
    records = [_record("a", "finetune", 0, 5, 0.7),  # written before convergence was measured
               _record("a", "finetune", 1, 5, 0.7, converged=True, convergence_reason=None,
                       convergence={"target": {"rel_drop": 0.01, "acc_climbing": False}}),
               _record("a", "finetune", 2, 5, 0.6, converged=False, convergence_reason=reason,
                       convergence={"source": {"rel_drop": 0.02}, "target": {"rel_drop": 0.18}})]
    for rec in records:
        (cells / f"{rec['key']}.json").write_text(json.dumps(rec))
    df = load_results(tmp_path).set_index("seed")
    assert df["converged"].dtype == bool and df["converged"].tolist() == [True, True, False]
    assert df.loc[0, "convergence_reason"] is None and df.loc[2, "convergence_reason"] == reason
    assert df.loc[2, "convergence.target.rel_drop"] == 0.18


def test_run_records_carry_convergence(tmp_path):
    """A real run: every record has the fields, load_results exposes them."""
    from transferlab.cli import main
    from tests.conftest import write_tiny_config

    cfg = write_tiny_config(tmp_path, methods=["finetune", "target-only"], seeds=1)
    assert main(["run", str(cfg), "--out", str(tmp_path / "results"), "--workers", "1", "--progress", "none"]) == 0
    df = load_results(tmp_path / "results")
    assert set(df["method"]) == {"finetune", "target-only"}
    assert df["converged"].dtype == bool
    assert ((df["convergence_reason"].isna()) == df["converged"]).all()
    assert "convergence.target.rel_drop" in df.columns
