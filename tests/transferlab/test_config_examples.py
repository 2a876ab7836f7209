"""The example configs in configs/: they load, round-trip through run.json's form, expand as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlab.plan import expand_cells
from transferlab.config import load_config, parse_config
from transferlab.plan import plan_matrix

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_are_example_configs():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "shift.yaml", "office_caltech_surf.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_round_trips_through_to_dict(path):
    config = load_config(path)
    again = parse_config(config.to_dict(), path=config.path)
    assert again.to_dict() == config.to_dict()
    pairs = [("x", "y"), ("y", "x")] if config.pairs == "all" else config.pairs
    assert [c.key for c in expand_cells(again, pairs)] == [c.key for c in expand_cells(config, pairs)]


def test_demo_matrix_is_the_documented_one():
    config = load_config(CONFIGS[0].with_name("demo.yaml"))
    assert config.data["kind"] == "digits"
    plan = plan_matrix(config)
    assert len(plan.names) >= 4 and len(plan.pairs) == 12
    assert [m.name for m in config.methods] == ["finetune", "dann", "coral", "scratch", "target-only"]
    assert config.budgets == [0, 5] and config.seeds == [0, 1, 2]
    assert len(plan.cells) == 288 and len({c.compute_key for c in plan.cells}) == 240


def test_shift_example_has_the_canonical_domains():
    plan = plan_matrix(load_config(CONFIGS[0].with_name("shift.yaml")))
    assert plan.names == ["base", "null", "covariate", "label", "concept"] and len(plan.pairs) == 20


def test_office_caltech_example(shared_data):
    config = load_config(CONFIGS[0].with_name("office_caltech_surf.yaml"))
    if not (config.base_dir / config.data["path"]).is_dir():
        pytest.skip("the config's relative data path does not reach the shared data from this checkout")
    plan = plan_matrix(config)
    assert plan.names == ["amazon", "caltech", "dslr", "webcam"] and len(plan.pairs) == 12
    assert len(plan.cells) == 12 * 4 * 3
    assert {d.input_shape for d in plan.domains.values()} == {(800,)}
