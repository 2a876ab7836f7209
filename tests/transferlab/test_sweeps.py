"""Sweeps as an axis: a list in a method's parameters (or under ``train:``) is a grid; one configuration per
combination, its own label and cell key; bad grids are one line, exit 2; a run marks each group's selection."""

from __future__ import annotations

import pytest
import yaml

from conftest import write_tiny_config
from transferlab.cli import main
from transferlab.config import parse_config
from transferlab.plan import expand_cells

BASE = {"name": "sweep", "data": {"kind": "shift", "n_samples": 40, "n_features": 4, "n_classes": 2,
                                  "shifts": {"a": {}, "b": {"label": 0.5}}},
        "budgets": [0, 3], "seeds": 2, "train": {"steps": 5}}


def config(**over):
    return parse_config({**BASE, **over})


def test_a_method_grid_is_one_labelled_configuration_per_value():
    cfg = config(methods=["finetune", {"name": "dann", "trade_off": [0.3, 1, 3]}])
    labels = [m.label for m in cfg.methods]
    assert labels == ["finetune", "dann[trade_off=0.3]", "dann[trade_off=1]", "dann[trade_off=3]"]
    assert [m.params["trade_off"] for m in cfg.methods[1:]] == [0.3, 1.0, 3.0]
    assert {m.sweep for m in cfg.methods} == {"", "dann"}
    # every other parameter keeps its default in every configuration
    assert {m.params["disc_hidden"] for m in cfg.methods[1:]} == {32}
    assert cfg.selection["rule"] == "source-val"  # a sweep without selection: gets the default rule


def test_method_and_train_grids_cross_and_every_configuration_is_its_own_cell():
    cfg = config(methods=[{"name": "dann", "trade_off": [0.3, 3], "disc_hidden": [16, 64]}],
                 train={"steps": 5, "lr": [0.001, "3e-3"]})
    assert len(cfg.methods) == 8
    assert cfg.methods[0].label == "dann[trade_off=0.3,disc_hidden=16,lr=0.001]"
    assert cfg.methods[-1].label == "dann[trade_off=3,disc_hidden=64,lr=0.003]"
    assert [m.grid_index for m in cfg.methods] == list(range(8))
    cells = expand_cells(cfg, [("a", "b")])
    assert len(cells) == 8 * 2 * 2
    assert len({c.key for c in cells}) == len(cells)
    assert {c.train["lr"] for c in cells} == {0.001, 0.003}
    assert all(not isinstance(v, list) for c in cells for v in c.train.values())
    # the grid point's values are the cell's settings (its key), the label is only a name
    one = next(c for c in cells if c.method == "dann[trade_off=3,disc_hidden=16,lr=0.003]" and c.seed == 0
               and c.budget == 3)
    assert one.method_params["trade_off"] == 3.0 and one.method_params["disc_hidden"] == 16
    assert one.grid == {"trade_off": 3.0, "disc_hidden": 16, "lr": 0.003}


def test_a_configuration_keys_like_the_same_settings_written_without_a_grid():
    swept = config(methods=[{"name": "dann", "trade_off": [0.3, 3]}], selection=None)
    plain = config(methods=[{"name": "dann", "trade_off": 3}], selection={"rule": "source-val"})
    key = {c.seed: c.key for c in expand_cells(swept, [("a", "b")]) if c.method_params["trade_off"] == 3.0
           and c.budget == 3}
    assert key == {c.seed: c.key for c in expand_cells(plain, [("a", "b")]) if c.budget == 3}


def test_the_grid_round_trips_through_run_json():
    cfg = config(methods=["finetune", {"name": "dann", "trade_off": [0.3, 1]}], train={"steps": 5, "lr": [1e-3, 1e-2]})
    again = parse_config(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    assert [m.label for m in again.methods] == [m.label for m in cfg.methods]


def test_no_grid_no_selection_keys_unchanged():
    """A config without sweeps and without ``selection:`` trains and keys exactly as before sweeps existed."""
    cfg = config(methods=["finetune", "dann"])
    assert cfg.selection is None and not cfg.sweeps
    assert all(not c.selection and not c.sweep for c in expand_cells(cfg, [("a", "b")]))
    assert "selection" not in cfg.to_dict()


BAD = [
    ("empty-grid", {"methods": [{"name": "dann", "trade_off": []}]}, "methods[0].trade_off"),
    ("bad-value", {"methods": [{"name": "dann", "trade_off": [1, -2]}]}, "methods[0].trade_off[1]"),
    ("repeat", {"methods": [{"name": "dann", "trade_off": [1, 1.0]}]}, "value 1 twice"),
    ("unknown-param", {"methods": [{"name": "dann", "trade_offs": [1, 2]}]}, "methods[0].trade_offs"),
    ("protocol-key", {"methods": ["finetune"], "train": {"steps": [5, 10]}}, "train.steps"),
    ("bad-train-value", {"methods": ["finetune"], "train": {"steps": 5, "lr": [0.1, -1]}}, "train.lr[1]"),
    ("empty-train-grid", {"methods": ["finetune"], "train": {"steps": 5, "lr": []}}, "train.lr"),
    ("unknown-rule", {"methods": ["finetune"], "selection": {"rule": "oracle"}}, "selection.rule"),
    ("selection-key", {"methods": ["finetune"], "selection": {"rule": "dev", "holdout": 0.1}}, "selection.holdout"),
    ("cv-needs-labels", {"methods": ["finetune"], "selection": {"rule": "target-cv"}}, "selection.rule"),
    ("holdout-range", {"methods": ["finetune"], "selection": {"source_holdout": 0.9}}, "selection.source_holdout"),
    ("folds", {"methods": ["finetune"], "budgets": [3], "selection": {"rule": "target-cv", "folds": 1}},
     "selection.folds"),
]


@pytest.mark.parametrize("over,needle", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_grids_are_one_line_exit_2(tmp_path, capsys, over, needle):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**BASE, **over}))
    rc = main(["run", str(path), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transferlab: error: "), err
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_a_sweep_run_marks_one_selected_configuration_per_group_and_verdicts_use_it(tmp_path):
    import analysis

    path = write_tiny_config(tmp_path, methods=["scratch", {"name": "finetune", "backbone_lr_mult": [0.1, 1]}],
                             budgets=[2], pairs=[["a", "b"]], selection={"rule": "source-val"})
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--progress", "none", "--workers", "1"]) == 0
    df = analysis.load_results(tmp_path / "run")
    assert df.attrs["selection"] == "source-val"
    sweep = df[df["sweep"] == "finetune"]
    assert len(sweep) == 4 and sweep.groupby("seed")["selected"].sum().tolist() == [1, 1]
    # the selected one has the best recorded held-out source accuracy of its group
    for _, group in sweep.groupby("seed"):
        best = group["selection_evidence.source_val_acc"].max()
        assert group.loc[group["selected"], "selection_evidence.source_val_acc"].item() == best
    nt = analysis.negative_transfer(df)
    assert nt["method"].tolist() == ["finetune"]  # one row per sweep, under its label
    chosen = df[df["selected"] & (df["sweep"] == "finetune")]["accuracy"].mean()
    assert nt["mean_accuracy"].item() == pytest.approx(chosen)
