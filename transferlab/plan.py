"""Config → plan: load the domains, fingerprint them, run the pre-flight checks, expand the cells.

Nothing here trains or writes: a :class:`Plan` is what a run will do, checked (:mod:`transferlab.preflight`) and
identified (each cell's key includes its domains' content fingerprints, :mod:`adapt.cells`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapt.cells import SOURCE_FREE_METHODS, Cell

from .config import Config, resolve_domains


@dataclass
class Plan:
    """What a config asks for: the loaded domains, the resolved domains and pairs, every cell, and the
    content fingerprint of each domain used."""

    config: Config
    domains: dict
    names: list[str]
    pairs: list[tuple[str, str]]
    cells: list[Cell]
    fingerprints: dict[str, str] = field(default_factory=dict)


def plan_matrix(config: Config) -> Plan:
    """Load the config's domains, check everything checkable before training, and expand its cells
    (raises ConfigError/DataError with a one-line message on bad input)."""
    from adapt.domains import load_domains
    from .preflight import preflight

    domains = load_domains(config.data, config.base_dir)
    names, pairs = resolve_domains(config, domains)
    used = list(dict.fromkeys([*names, *(d for p in pairs for d in p)]))
    target_labels = preflight(config, domains, used, pairs)
    fingerprints = {n: domains[n].fingerprint() for n in used}
    cells = expand_cells(config, pairs, fingerprints, target_labels)
    return Plan(config=config, domains=domains, names=names, pairs=pairs, cells=cells, fingerprints=fingerprints)


def plan_distances(config: Config) -> tuple[dict, list[tuple[str, str]]]:
    """The loaded domains and the config's (source, target) pairs, for distance tables."""
    from adapt.domains import load_domains

    domains = load_domains(config.data, config.base_dir)
    _, pairs = resolve_domains(config, domains)
    return domains, pairs


def default_run_dir(config: Config) -> Path:
    return Path("results") / config.name


def expand_cells(config: Config, pairs: list[tuple[str, str]], fingerprints: Mapping[str, str] | None = None,
                 target_labels: Mapping[tuple[str, int, int], int] | None = None) -> list[Cell]:
    """Every cell of the matrix: pairs × methods × budgets × seeds, in a stable order.

    ``fingerprints`` maps domain name → content fingerprint (``transferlab.plan`` passes the loaded domains'; a
    cell without them is keyed by the config alone). ``target_labels`` maps (target, seed, budget) → the
    labelled target samples that budget gives. ``scratch`` and ``target-only``
    need target labels, so they have no cell at budget 0.
    """
    data_identity = {k: v for k, v in config.data.items()}
    fingerprints = fingerprints or {}
    target_labels = target_labels or {}
    selection = config.selection_protocol()
    cells = []
    for source, target in pairs:
        for spec in config.methods:
            for budget in config.budgets:
                if spec.name in SOURCE_FREE_METHODS and budget == 0:
                    continue
                for seed in config.seeds:
                    cells.append(Cell(
                        source=source, target=target, method=spec.label, method_name=spec.name, seed=seed,
                        budget=budget, method_params=dict(spec.params), model=dict(config.model),
                        train=config.cell_train(spec), data=data_identity,
                        source_fingerprint=fingerprints.get(source, ""),
                        target_fingerprint=fingerprints.get(target, ""),
                        target_labels=target_labels.get((target, seed, budget)),
                        code=config.plugin_code(spec), sweep=spec.sweep, grid=dict(spec.grid),
                        grid_index=spec.grid_index,
                        selection=dict(selection)))
    return cells
