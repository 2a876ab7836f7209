"""Per-example outcomes: every finished record says which test samples it was scored on and what it predicted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferlab.config import load_config
from adapt.domains.shift import make_shift_domain
from transferlab.matrix import run_matrix
from adapt.outcomes import decode_outcomes, encode_outcomes
from analysis import load_outcomes, load_results
from conftest import write_tiny_config


def test_encoding_round_trip_and_old_records():
    idx, pred, label = np.array([5, 0, 70000, 3]), np.array([1, 2, 0, 9]), np.array([1, 1, 0, 9])
    field = encode_outcomes(idx, pred, label, given_test=True)
    json.dumps(field)  # JSON text
    back = decode_outcomes(field)
    for k, v in (("test_index", idx), ("pred", pred), ("label", label)):
        np.testing.assert_array_equal(back[k], v)
    assert back["given_test"] is True and field["n"] == 4
    assert decode_outcomes(None) is None and decode_outcomes({"n": 3}) is None
    with pytest.raises(ValueError, match="one length"):
        encode_outcomes(idx, pred[:2], label)
    with pytest.raises(ValueError, match="unknown encoding"):
        decode_outcomes({**field, "encoding": "json"})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outcomes")
    path = write_tiny_config(folder, methods=["finetune", "scratch", {"name": "coral-closed", "classifier": "logreg"}])
    run_matrix(load_config(path), folder / "run", workers=1, threads=1, progress="none")
    return folder / "run"


def test_records_hold_outcomes_matching_accuracy_and_the_split(tiny_run):
    df = load_results(tiny_run)
    out = load_outcomes(tiny_run)
    assert not any(c.startswith("outcomes") for c in df.columns)  # kept out of the flat table
    ok = df[df.status == "ok"]
    assert len(out) == len(ok) and set(out.method) == {"finetune", "scratch", "coral-closed"}
    merged = out.merge(ok[["cell_id", "accuracy", "n_test"]], on="cell_id", suffixes=("", "_record"))
    for row in merged.itertuples():
        assert (row.pred == row.label).mean() == pytest.approx(row.accuracy)  # outcomes reproduce accuracy
        assert row.n_test == row.n_test_record
        # Independent of the trainer: the split and labels the domain itself gives for this seed.
        dom = make_shift_domain(row.target, n_samples=90, n_features=6, n_classes=3,
                                **({"a": {}, "b": {"covariate": 0.5}, "c": {"label": 0.5}}[row.target]))
        split = dom.split(row.seed, 0.3)
        np.testing.assert_array_equal(row.test_index, split.test)
        np.testing.assert_array_equal(row.label, dom.y[split.test])
    size = max(len(json.dumps(json.loads(p.read_text())["outcomes"])) for p in (tiny_run / "cells").glob("*.json"))
    assert size < 1000  # compact: a few hundred bytes for ~30 test samples


def test_load_outcomes_filters_and_skips_records_without_them(tiny_run, tmp_path):
    some = load_outcomes(tiny_run, method="scratch", seed=[0])
    assert set(some.method) == {"scratch"} and set(some.seed) == {0}
    old = tmp_path / "old"
    (old / "cells").mkdir(parents=True)
    for p in (tiny_run / "cells").glob("*.json"):
        rec = json.loads(p.read_text())
        rec.pop("outcomes", None)
        (old / "cells" / p.name).write_text(json.dumps(rec))
    assert load_outcomes(old).empty and list(load_outcomes(old).columns)[:3] == ["cell_id", "source", "target"]
    assert len(load_results(old)) == len(load_results(tiny_run))
