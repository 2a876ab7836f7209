"""run_cell(..., return_model=True): the public way to get a trained cell's network (notebook 02 uses it)."""

from __future__ import annotations

import numpy as np
import torch

from adapt.cells import Cell
from adapt.domains.shift import load_shift_domains
from adapt.outcomes import decode_outcomes
from adapt.train import run_cell


def test_the_returned_model_is_the_evaluated_one():
    doms = load_shift_domains({"n_samples": 120, "n_features": 6, "n_classes": 3,
                               "shifts": {"a": {}, "b": {"covariate": 0.5}}})
    cell = Cell("a", "b", "dann", "dann", 0, 2, model={"hidden": [8]},
                train={"steps": 20, "batch_size": 16, "eval_every": 10, "device": "cpu"})
    record, model = run_cell(cell, doms["a"], doms["b"], return_model=True)
    out = decode_outcomes(record["outcomes"])
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(doms["b"].X[out["test_index"]])).argmax(1).numpy()
    assert np.array_equal(pred, out["pred"])            # its test predictions are the record's
    assert record["accuracy"] == np.mean(pred == out["label"])
    plain = run_cell(cell, doms["a"], doms["b"])
    assert isinstance(plain, dict) and plain["accuracy"] == record["accuracy"]
