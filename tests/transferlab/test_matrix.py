"""The matrix runner: resume, compute-key sharing, failures and retries, status, run.json, executors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import adapt.train
from transferlab.config import load_config
from transferlab.matrix import run_matrix
from transferlab.plan import plan_matrix
from transferlab.status import run_status, status_rows
from transferlab.store import RunStore
from conftest import write_tiny_config

write_config = write_tiny_config


@pytest.fixture
def counted(monkeypatch):
    """Count run_cell calls (in-process executor) and optionally fail chosen cells."""
    calls: list = []
    fail_when = {"pred": lambda cell: False}
    real = adapt.train.run_cell

    def run_cell(cell, source, target, device=None):
        calls.append(cell)
        if fail_when["pred"](cell):
            raise RuntimeError(f"injected failure for {cell.method} seed {cell.seed}\nsecond line")
        return real(cell, source, target, device=device)

    monkeypatch.setattr(adapt.train, "run_cell", run_cell)
    return calls, fail_when


def test_runs_every_cell_once_and_shares_scratch(tmp_path, counted):
    calls, _ = counted
    config = load_config(write_config(tmp_path))
    out = tmp_path / "run"
    result = run_matrix(config, out, workers=1, threads=1, progress="none")
    # 6 pairs x (finetune 2 budgets + scratch 1 budget) x 2 seeds = 36 cells; scratch ignores the source, so
    # it is computed once per (target, seed): 3 x 2 = 6 computations for its 12 cells.
    assert result.total == 36 and result.computed_cells == 36 and result.failed_now == 0
    assert result.computations == len(calls) == 24 + 6
    records = RunStore(out).scan().records
    assert len(records) == 36 and all(r["status"] == "ok" for r in records.values())
    scratch = [r for r in records.values() if r["method"] == "scratch"]
    by_compute: dict = {}
    for r in scratch:
        by_compute.setdefault(r["compute_key"], []).append(r)
    assert len(by_compute) == 6
    for group in by_compute.values():
        assert len(group) == 2 and len({r["source"] for r in group}) == 2
        assert len({r["accuracy"] for r in group}) == 1
        assert sorted(r["shared_from"] is None for r in group) == [False, True]
        assert all(r["source_accuracy"] is None for r in group)
    for r in records.values():  # identity and settings are the cell's own
        assert r["key"] != "" and r["train"]["steps"] == 20 and r["data"]["kind"] == "shift"
        assert {"accuracy", "source_accuracy", "wall_time", "device", "curves", "params"} <= set(r)


def test_rerun_resumes_without_recomputing(tmp_path, counted):
    calls, _ = counted
    path = write_config(tmp_path)
    out = tmp_path / "run"
    run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    # lose a third of the records, as if the run had been killed
    lost = sorted(stamps)[::3]
    for name in lost:
        (out / "cells" / name).unlink()
    calls.clear()
    result = run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    assert result.already_done + result.reused + result.computed_cells == 36
    assert result.computed_cells + result.reused == len(lost)
    assert len(calls) == result.computations <= len(lost)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    assert set(after) == set(stamps)
    assert all(after[n] == stamps[n] for n in stamps if n not in lost)
    calls.clear()
    again = run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    assert again.already_done == 36 and again.computed_cells == 0 and calls == []


def test_scratch_record_reused_when_a_pair_is_added(tmp_path, counted):
    calls, _ = counted
    out = tmp_path / "run"
    run_matrix(load_config(write_config(tmp_path, pairs=[["a", "c"]], methods=["scratch"], budgets=[2])), out,
               workers=1, threads=1, progress="none")
    assert len(calls) == 2
    calls.clear()
    bigger = write_config(tmp_path, pairs=[["a", "c"], ["b", "c"]], methods=["scratch"], budgets=[2])
    result = run_matrix(load_config(bigger), out, workers=1, threads=1, progress="none")
    assert calls == [] and result.reused == 2 and result.already_done == 2


def test_failed_cell_recorded_matrix_goes_on_and_retry_reruns_only_it(tmp_path, counted):
    calls, fail_when = counted
    path = write_config(tmp_path)
    out = tmp_path / "run"
    fail_when["pred"] = lambda cell: (cell.method, cell.seed, cell.budget, cell.source, cell.target) == (
        "finetune", 1, 2, "a", "b")
    result = run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    assert result.computed_cells == 36 and result.failed_now == 1 and result.failed_total == 1
    failed = [r for r in result.records if r["status"] == "failed"]
    assert len(failed) == 1
    rec = failed[0]
    assert rec["reason"] == "RuntimeError: injected failure for finetune seed 1"
    assert rec["accuracy"] is None and "Traceback" in rec["traceback"]
    assert {"curves", "params", "wall_time", "device", "source_accuracy", "compute_key"} <= set(rec)
    assert (rec["source"], rec["target"], rec["method"], rec["seed"], rec["budget"]) == (
        "a", "b", "finetune", 1, 2)

    st = run_status(out)
    assert (len(st.done), len(st.failed), len(st.missing)) == (35, 1, 0)

    # without --retry-failed the failure is kept and nothing runs
    calls.clear()
    fail_when["pred"] = lambda cell: False
    kept = run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    assert calls == [] and kept.kept_failed == 1 and kept.failed_total == 1
    # with it, exactly that cell runs again
    retried = run_matrix(load_config(path), out, workers=1, threads=1, retry_failed=True, progress="none")
    assert [c.key for c in calls] == [rec["key"]]
    assert retried.computed_cells == 1 and retried.failed_total == 0
    assert RunStore(out).read_record(rec["key"])["status"] == "ok"


def test_trainer_reported_failure_and_bad_returns(tmp_path, monkeypatch):
    def run_cell(cell, source, target, device=None):
        if cell.seed == 0:
            return {"status": "failed", "reason": "diverged: loss is nan at step 7", "accuracy": None}
        return {"accuracy": float("nan")}

    monkeypatch.setattr(adapt.train, "run_cell", run_cell)
    config = load_config(write_config(tmp_path, methods=["finetune"], budgets=[0], pairs=[["a", "b"]]))
    result = run_matrix(config, tmp_path / "run", workers=1, threads=1, progress="none")
    reasons = sorted(r["reason"] for r in result.records)
    assert reasons == ["diverged: loss is nan at step 7", "run_cell returned no finite accuracy (got nan)"]
    assert all(r["status"] == "failed" for r in result.records)


def test_run_json_records_provenance_and_cells(tmp_path):
    path = write_config(tmp_path, methods=["finetune"], budgets=[0], seeds=1)
    out = tmp_path / "run"
    run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    info = json.loads((out / "run.json").read_text())
    assert info["name"] == "tiny" and info["config"] == load_config(path).to_dict()
    assert info["config_path"] == str(path.resolve())
    assert {"python", "torch", "numpy", "transferlab"} <= set(info["versions"])
    assert info["machine"]["cpus"] >= 1 and info["machine"]["host"]
    assert info["git"] is None or len(info["git"]["commit"]) == 40
    assert info["domains"] == ["a", "b", "c"] and len(info["pairs"]) == 6 and len(info["cells"]) == 6
    inv = info["invocations"][-1]
    assert inv["status"] == "finished" and inv["computed_cells"] == 6
    assert inv["executor"]["executor"] == "local"
    assert (out / "results.parquet").is_file()


def test_status_rows_per_method(tmp_path):
    path = write_config(tmp_path)
    out = tmp_path / "run"
    run_matrix(load_config(path), out, workers=1, threads=1, progress="none")
    for p in sorted((out / "cells").iterdir())[:5]:
        p.unlink()
    st = run_status(out)
    rows = {(r["method"], r["budget"]): r for r in status_rows(st)}
    assert set(rows) == {("finetune", 0), ("finetune", 2), ("scratch", 2)}
    assert sum(r["missing"] for r in rows.values()) == 5 == len(st.missing)
    assert all(r["expected"] == 12 and r["done"] + r["missing"] == 12 for r in rows.values())


def test_ray_executor_gives_the_same_records_as_local(tmp_path):
    ray = pytest.importorskip("ray")
    path = write_config(tmp_path, methods=["finetune", "dann", "scratch"], budgets=[0, 2], seeds=1,
                        pairs=[["a", "b"], ["c", "b"]])
    local = run_matrix(load_config(path), tmp_path / "local", workers=2, threads=1, progress="log")
    assert local.executor["workers"] == 2 and local.executor["threads_per_worker"] == 1
    assert os.getpid() not in {r["worker"]["pid"] for r in local.records}  # computed in pool workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_matrix(load_config(path), tmp_path / "ray", executor="ray", progress="none")
    finally:
        ray.shutdown()
    assert remote.executor["executor"] == "ray" and remote.executor["device"] == "cpu"
    assert local.failed_total == remote.failed_total == 0
    assert remote.computations == local.computations == 9  # scratch shared across the two sources
    acc_local = {r["key"]: (r["accuracy"], r["source_accuracy"]) for r in local.records}
    acc_ray = {r["key"]: (r["accuracy"], r["source_accuracy"]) for r in remote.records}
    assert acc_local == acc_ray and len(acc_local) == 10


def test_plan_matrix_expands_demo_config():
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")
    plan = plan_matrix(config)
    assert len(plan.names) >= 4 and len(plan.pairs) == len(plan.names) * (len(plan.names) - 1)
    methods = {c.method for c in plan.cells}
    assert {"finetune", "dann", "coral", "scratch"} <= methods
    assert {c.budget for c in plan.cells} == {0, 5} and {c.seed for c in plan.cells} == {0, 1, 2}


def _deadly_task(cell, device):
    """A pool task (module level, so it pickles by reference) whose worker dies on one cell."""
    import os

    if (cell.source, cell.target, cell.seed) == ("a", "b", 1):
        os._exit(3)
    return {"status": "ok", "accuracy": 0.5, "wall_time": 0.0}


def test_a_worker_that_dies_fails_only_its_own_cell(tmp_path):
    from transferlab.executors import LocalExecutor

    config = load_config(write_config(tmp_path, methods=["finetune"], budgets=[0], seeds=3,
                                      pairs=[["a", "b"], ["b", "c"]]))
    plan = plan_matrix(config)
    results = {}

    def on_result(cell, result):
        assert cell.key not in results
        results[cell.key] = result

    LocalExecutor(plan.domains, config.data, config.base_dir, workers=2, threads=1,
                  task=_deadly_task).run(plan.cells, on_result)
    assert set(results) == {c.key for c in plan.cells}
    failed = {c.key for c in plan.cells if (c.source, c.target, c.seed) == ("a", "b", 1)}
    assert len(failed) == 1 and len(plan.cells) == 6
    for key, result in results.items():
        if key in failed:
            assert result["status"] == "failed" and "worker process died" in result["reason"]
        else:
            assert result["status"] == "ok", result
