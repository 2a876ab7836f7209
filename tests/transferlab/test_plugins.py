"""Plugins (adapt.plugins): the README's example method and backbone run in a matrix from a file beside the
config; entry points from an installed package; the plugin's code is in its cells' keys; bad paths are one
line, exit 2."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from transferlab.config import load_config
from conftest import REPO, TINY_SHIFTS
from transferlab.cli import main

DATA = {"kind": "shift", "n_samples": 90, "n_features": 6, "n_classes": 3, "shifts": TINY_SHIFTS}
TRAIN = {"steps": 20, "batch_size": 16, "eval_every": 10}


def _readme_example() -> tuple[str, dict]:
    """The README's plugin file and the config lines that use it, exactly as printed there."""
    text = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(# mymethods\.py.*?)```", text, re.S).group(1)
    after = text[text.index(code):]
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", after, re.S).group(1))
    return code, config


def _write(tmp_path, name, **cfg):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "data": DATA, "budgets": [2], "seeds": 1,
                                    "pairs": [["a", "b"]], "train": TRAIN, **cfg}))
    return path


def _records(run_dir):
    return [json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json")]


def test_readme_example_method_and_backbone_run_in_a_matrix(tmp_path):
    code, lines = _readme_example()
    assert 20 <= len(code.splitlines()) <= 40
    (tmp_path / "mymethods.py").write_text(code)
    cfg = _write(tmp_path, "plug", **lines)
    out = tmp_path / "run"
    # two worker processes: they import the plugin module themselves
    assert main(["run", str(cfg), "--out", str(out), "--workers", "2", "--threads", "1", "--progress", "none"]) == 0
    records = {r["method"]: r for r in _records(out)}
    assert set(records) == {"finetune", "minent", "scratch"}
    assert all(r["status"] == "ok" for r in records.values())
    minent = records["minent"]
    assert minent["params"] == {"weight": 0.3}
    assert any(v is not None for v in minent["curves"]["loss_entropy"])
    assert minent["code"]["method"]["qualname"] == "MinEnt" and minent["code"]["method"]["module"] == "mymethods"
    assert minent["model_info"]["feature_dim"] == 32 and minent["model_info"]["plugin"]
    assert "method" not in records["finetune"]["code"] and records["finetune"]["code"]["backbone"]


def test_an_edited_plugin_is_a_different_cell(tmp_path, capsys):
    code, _ = _readme_example()
    plugin = tmp_path / "mymethods.py"
    plugin.write_text(code)
    cfg = _write(tmp_path, "edit", methods=["finetune", {"name": "minent", "class": "mymethods:MinEnt"}])
    from transferlab.plan import expand_cells

    def keys():
        config = load_config(cfg)
        return {c.method: c.key for c in expand_cells(config, [("a", "b")])}

    before = keys()
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--progress", "none"]) == 0
    plugin.write_text(code.replace("weight * H(p(y|x_t))", "weight * H(p(y | x_t))"))  # a one-character edit
    import importlib
    import sys

    sys.modules.pop("mymethods", None)
    importlib.invalidate_caches()
    after = keys()
    assert after["minent"] != before["minent"]
    assert after["finetune"] == before["finetune"]  # a built-in on a built-in backbone is untouched
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--progress", "none"]) == 2
    assert "plugin code of methods[minent] (its source changed)" in capsys.readouterr().err
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--progress", "none", "--supersede"]) == 0
    assert "1 computed now" in capsys.readouterr().out  # only the edited plugin's cell; finetune's is kept


def test_a_plugin_edited_after_planning_fails_its_cell(tmp_path):
    import dataclasses

    from transferlab.plan import expand_cells
    from adapt.domains import load_domains
    from transferlab.executors import compute_cell

    code, _ = _readme_example()
    (tmp_path / "mymethods.py").write_text(code)
    config = load_config(_write(tmp_path, "late", methods=[{"name": "minent", "class": "mymethods:MinEnt"}]))
    cell = expand_cells(config, [("a", "b")])[0]
    domains = load_domains(DATA)
    assert compute_cell(cell, domains["a"], domains["b"])["status"] == "ok"
    stale = dict(cell.code["method"], sha256="0" * 64)
    result = compute_cell(dataclasses.replace(cell, code={"method": stale}), domains["a"], domains["b"])
    assert result["status"] == "failed" and "changed since the run was planned" in result["reason"]


@pytest.mark.parametrize("method, model, message", [
    ({"name": "minent", "class": "mymethods:Nope"}, None, "methods[0].class"),
    ({"name": "minent", "class": "no_such_module_xyz:MinEnt"}, None, "cannot import module 'no_such_module_xyz'"),
    ({"name": "minent", "class": "mymethods:make_net"}, None, "not a subclass of adapt.methods.Method"),
    ({"name": "minent", "class": "MinEnt"}, None, "expected 'module.path:Name'"),
    ({"name": "dann", "class": "mymethods:MinEnt"}, None, "'dann' is a built-in method"),
    ({"name": "minent", "class": "mymethods:MinEnt", "weight": -1}, None, "param 'weight'"),
    ({"name": "minent", "class": "mymethods:MinEnt", "wieght": 1}, None, "unknown param 'wieght'"),
    ("not-installed-method", None, "unknown method 'not-installed-method'"),
    ("finetune", {"backbone": "mymethods:missing_net"}, "config field 'model.backbone'"),
    ("finetune", {"backbone": "my-unknown-net"}, "unknown backbone 'my-unknown-net'"),
    ("finetune", {"backbone": "mlp", "options": {"width": 3}}, "only a plugin backbone reads options"),
])
def test_bad_plugins_are_one_line_exit_2(tmp_path, capsys, method, model, message):
    code, _ = _readme_example()
    (tmp_path / "mymethods.py").write_text(code)
    cfg = _write(tmp_path, "bad", methods=[method], **({"model": model} if model else {}))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


PACKAGE = '''from torch import nn
from adapt.methods import Finetune


class ShortSource(Finetune):
    """finetune with a quarter-length source phase (a built-in subclassed)"""

    def phases(self, steps, budget, train_cfg):
        return super().phases(steps, budget, {**train_cfg, "source_fraction": 0.25})


def wide_net(input_shape, width=12):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], width), nn.ReLU())
'''


def test_entry_points_of_an_installed_package(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "tlplug").mkdir(parents=True)
    (site / "tlplug" / "__init__.py").write_text(PACKAGE)
    info = site / "tlplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tlplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[transferlab.methods]\nshort-source = tlplug:ShortSource\n\n"
                                           "[transferlab.backbones]\nwide = tlplug:wide_net\n")
    monkeypatch.syspath_prepend(str(site))
    cfg = _write(tmp_path, "ep", methods=["short-source", "finetune"], model={"backbone": "wide"})
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--progress", "none"]) == 0
    records = {r["method"]: r for r in _records(out)}
    assert records["short-source"]["status"] == "ok" and records["finetune"]["status"] == "ok"
    assert records["short-source"]["code"]["method"]["entry_point"] == "short-source"
    assert records["finetune"]["model_info"]["feature_dim"] == 12  # out_features found by a forward pass
    assert {p["name"]: p["steps"] for p in records["short-source"]["phases"]} == {"source": 5, "target": 20}
    assert {p["name"]: p["steps"] for p in records["finetune"]["phases"]} == {"source": 20, "target": 20}
