"""The results store: atomic records, crash leftovers, concurrent writers, JSON hygiene, the Parquet table."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transferlab.store import RunStore, atomic_write_json, flatten_record, to_jsonable


def _record(key: str, **extra) -> dict:
    return {"key": key, "compute_key": key, "source": "a", "target": "b", "method": "finetune", "seed": 0,
            "budget": 0, "status": "ok", "accuracy": 0.5, "curves": {"step": [1, 2], "loss": [0.3, 0.2]},
            **extra}


def test_write_then_scan_round_trips(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create()
    path = store.write_record(_record("k1", accuracy=np.float32(0.25), seed=np.int64(3)))
    assert path == tmp_path / "run" / "cells" / "k1.json"
    rec = json.loads(path.read_text())
    assert rec["accuracy"] == 0.25 and rec["seed"] == 3 and isinstance(rec["seed"], int)
    assert store.scan().records == {"k1": rec}
    assert list(store.cells_dir.iterdir()) == [path]  # no temporary file left behind


def test_records_are_strict_json(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    store.write_record(_record("k", accuracy=float("nan"), curves={"loss": np.array([1.0, np.inf])},
                               where=Path("/x"), pair=("a", "b")))
    text = (tmp_path / "cells" / "k.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rec = json.loads(text)
    assert rec["accuracy"] is None and rec["curves"]["loss"] == [1.0, None]
    assert rec["where"] == "/x" and rec["pair"] == ["a", "b"]


def test_to_jsonable_handles_numpy_and_torch():
    import torch

    out = to_jsonable({"a": np.arange(3), "b": torch.tensor([1.5]), "c": np.bool_(True), 1: {2}})
    assert out == {"a": [0, 1, 2], "b": [1.5], "c": True, "1": [2]}


def test_scan_ignores_temporaries_and_reports_bad_files(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    store.write_record(_record("good"))
    (store.cells_dir / ".good.json.abc.tmp").write_text('{"key": "good", "half')  # a killed writer's leftover
    (store.cells_dir / "broken.json").write_text('{"key": "broken", ')
    (store.cells_dir / "other.json").write_text(json.dumps(_record("not-other")))
    scan = store.scan()
    assert set(scan.records) == {"good"}
    assert sorted(scan.unreadable) == ["broken.json", "other.json"]


def test_clean_temporary_removes_only_old_leftovers(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    old = store.cells_dir / ".x.json.1.tmp"
    new = store.cells_dir / ".y.json.2.tmp"
    old.write_text("{")
    new.write_text("{")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert store.clean_temporary() == 1
    assert not old.exists() and new.exists()


def test_failed_write_leaves_old_record_and_no_temporary(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    store.create()
    store.write_record(_record("k", accuracy=0.1))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.write_record(_record("k", accuracy=0.9))
    monkeypatch.undo()
    assert store.read_record("k")["accuracy"] == 0.1
    assert [p.name for p in store.cells_dir.iterdir()] == ["k.json"]


def test_record_needs_a_plain_key(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    for bad in (None, "", "../x", ".hidden"):
        with pytest.raises(ValueError):
            store.write_record({"key": bad})


def _hammer(args):
    root, tag, n = args
    store = RunStore(root)
    for i in range(n):
        store.write_record(_record("shared", writer=tag, i=i, blob="x" * 20000))
    return tag


def test_concurrent_writers_never_clobber_or_tear(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        async_result = pool.map_async(_hammer, [(str(tmp_path), t, 40) for t in ("w1", "w2")])
        torn = reads = 0
        while not async_result.ready():  # read while they write: never a partial file
            try:
                text = (store.cells_dir / "shared.json").read_text()
            except FileNotFoundError:  # not written yet
                continue
            reads += 1
            try:
                json.loads(text)
            except ValueError:
                torn += 1
        assert sorted(async_result.get()) == ["w1", "w2"]
    assert torn == 0 and reads > 0
    rec = store.read_record("shared")
    assert rec["writer"] in ("w1", "w2") and rec["i"] == 39 and len(rec["blob"]) == 20000
    assert [p.name for p in store.cells_dir.iterdir()] == ["shared.json"]


def test_atomic_write_json_replaces(tmp_path):
    path = tmp_path / "run.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_flatten_record_drops_bulk_and_flattens():
    row = flatten_record({**_record("k"), "params": {"lam": 0.1, "sched": {"gamma": 10}},
                          "model": {"hidden": [64, 32]}, "traceback": "long"})
    assert "curves" not in row and "traceback" not in row
    assert row["params.lam"] == 0.1 and row["params.sched.gamma"] == 10
    assert row["model.hidden"] == "[64, 32]"


def test_parquet_export_is_one_flat_row_per_record(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    store.write_record(_record("k1", params={"lam": 1.0}))
    store.write_record(_record("k2", method="dann", status="failed", reason="FloatingPointError: nan",
                               accuracy=None, params={"lam": "auto"}))
    path = store.export_parquet()
    df = pd.read_parquet(path)
    assert len(df) == 2 and list(df.columns[:6]) == ["source", "target", "method", "seed", "budget", "status"]
    assert set(df["status"]) == {"ok", "failed"}
    assert math.isnan(df.set_index("key").loc["k2", "accuracy"])
    assert sorted(df["params.lam"].tolist()) == ["1.0", "auto"]  # a mixed column becomes text


def test_parquet_export_of_empty_store(tmp_path):
    store = RunStore(tmp_path)
    store.create()
    df = pd.read_parquet(store.export_parquet())
    assert df.empty and "accuracy" in df.columns
