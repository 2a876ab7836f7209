"""Read the records a run wrote: ``<run_dir>/cells/*.json``, one JSON object per finished cell.

A record holds at least ``source, target, method, seed, budget, accuracy, source_accuracy, status``
(``"ok"`` or ``"failed"``), ``reason``, ``wall_time``, ``device``, plus nested ``curves`` (a dict of
lists, per training step) and ``params`` (a dict); ``transferlab.store`` documents every field and writes them
atomically (dot-named temporary files are never read here). :func:`load_results` gives the flat table
that every analysis starts from; :func:`load_curves` gives the curves in long form, :func:`load_outcomes`
the per-example predictions on the test split.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError
from transferlab.store import flatten_record

from .selection import DEFAULT_RULE, RULES, select

KEY_COLUMNS = ("source", "target", "method", "seed", "budget", "accuracy", "status")
CONVERGENCE_COLUMNS = ("converged", "convergence_reason")
SORT_COLUMNS = ["source", "target", "method", "budget", "seed", "cell_id"]


def _record_files(run_dir: str | Path) -> tuple[Path, list[Path]]:
    root = Path(run_dir)
    if not root.is_dir():
        raise TransferlabError(f"no run folder at {root}")
    files = sorted(p for p in (root / "cells").glob("*.json") if not p.name.startswith("."))
    if not files:
        raise TransferlabError(f"no cell records in {root / 'cells'} (expected cells/*.json written by a run)")
    return root, files


def _records(run_dir: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(cell_id, record)`` for every readable record; unreadable files are skipped with a warning."""
    root, files = _record_files(run_dir)
    found = False
    for path in files:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            warnings.warn(f"skipping unreadable record {path}: {err}", stacklevel=3)
            continue
        if not isinstance(record, dict):
            warnings.warn(f"skipping record {path}: expected a JSON object, got {type(record).__name__}",
                          stacklevel=3)
            continue
        found = True
        yield path.stem, record
    if not found:
        raise TransferlabError(f"no readable cell records in {root / 'cells'}")


def _sorted(frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    cols = [c for c in (*SORT_COLUMNS, *extra) if c in frame.columns]
    try:
        out = frame.sort_values(cols, na_position="last", kind="mergesort")
    except TypeError:  # mixed types in a key column: order by its text
        out = frame.sort_values(cols, na_position="last", kind="mergesort", key=lambda s: s.astype(str))
    return out.reset_index(drop=True)


def current_cell_keys(run_dir: str | Path) -> set[str] | None:
    """The keys of the cells the folder's current config asks for (``run.json``'s ``cells``), or ``None``
    when the folder has no readable ``run.json`` with a cell list (then every record counts as current)."""
    path = Path(run_dir) / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    cells = info.get("cells") if isinstance(info, dict) else None
    if not isinstance(cells, list):
        return None
    return {c.get("key") for c in cells if isinstance(c, dict)}


def load_results(run_dir: str | Path, *, cells: str = "current", selection: str | None = None) -> pd.DataFrame:
    """The run's records as a flat table, one row per cell record.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (``results/<name>``) holding ``cells/*.json``.
    cells : {"current", "all"}
        ``"current"`` (default): only the records of the cells the folder's current config asks for
        (``run.json``'s ``cells``); records left by an earlier question of the folder (``--supersede``) or by
        cells a later config dropped are left out, counted in ``frame.attrs["other_records"]`` and named in a
        warning. ``"all"``: every record in ``cells/``.
    selection : str, optional
        A sweep's label-free selection rule (:data:`analysis.selection.RULES`); default the run's
        (``run.json``'s ``config.selection.rule``; :data:`analysis.selection.DEFAULT_RULE` for records of a sweep
        without one). Another rule re-selects from the same records (every rule's evidence is recorded at train
        time, ``target-cv``'s only where the run's rule was ``target-cv``).

    Returns
    -------
    pandas.DataFrame
        Columns ``source, target, method, seed, budget, accuracy, status`` first (NaN where a record lacks
        one), then ``cell_id`` (the record's file name without ``.json``, i.e. its ``key``) and every other
        field, flattened as ``transferlab.store.flatten_record`` does for ``results.parquet``: nested dicts become
        dotted names (``params.lr``), lists JSON text; ``curves`` and ``traceback`` are left out (see
        :func:`load_curves`). Rows sorted by ``source, target, method, budget, seed, cell_id``.
        ``converged`` (bool) and ``convergence_reason`` (str or None) are always present: records written
        before convergence was measured count as converged with no reason; the per-phase measurements are
        the ``convergence.<phase>.<field>`` columns (``rel_drop``, ``acc_climbing``, … see
        :mod:`adapt.convergence`).
        A run with a sweep (or a ``selection:`` section) adds ``selected`` (bool): the configuration the rule
        picks in each (source, target, sweep, budget, seed) group, from the ``selection_evidence.*`` columns only
        (:func:`analysis.selection.select`), with ``sweep``, ``grid_index``, ``selection_rule`` and
        ``selection_score``. Statistics (:func:`analysis.ok_rows`) then use the selected rows, under the sweep's
        label; :func:`analysis.selection.oracle_gap` compares them with the best configuration on the test split.

    Raises
    ------
    TransferlabError
        The folder does not exist or holds no readable record. Unreadable files are skipped with a warning
        naming them.
    """
    if cells not in ("current", "all"):
        raise TransferlabError(f"load_results: cells must be 'current' or 'all', got {cells!r}")
    records = list(_records(run_dir))
    keep = current_cell_keys(run_dir) if cells == "current" else None
    others = 0
    if keep is not None:
        others = sum(1 for cell_id, _ in records if cell_id not in keep)
        records = [(cell_id, r) for cell_id, r in records if cell_id in keep]
        if others:
            warnings.warn(f"{run_dir}: {others} record(s) in cells/ belong to cells the current config does not "
                          f"ask for (an earlier question of this folder); left out — "
                          f"load_results(run_dir, cells='all') includes them", stacklevel=2)
        if not records:
            raise TransferlabError(f"no records of the current config's cells in {Path(run_dir) / 'cells'} "
                                   f"({others} of other configs; load_results(run_dir, cells='all') reads them)")
    rows = [{"cell_id": cell_id, **flatten_record(record)} for cell_id, record in records]
    frame = pd.DataFrame(rows)
    for col in KEY_COLUMNS:
        if col not in frame.columns:
            frame[col] = np.nan
    if "converged" not in frame.columns:
        frame["converged"] = True
    frame["converged"] = frame["converged"].map(lambda v: True if v is None or v != v else bool(v)).astype(bool)
    if "convergence_reason" not in frame.columns:
        frame["convergence_reason"] = None
    frame["convergence_reason"] = frame["convergence_reason"].astype(object).where(
        frame["convergence_reason"].notna(), None)
    rest = [c for c in frame.columns if c not in KEY_COLUMNS and c != "cell_id"]
    out = _sorted(frame[[*KEY_COLUMNS, "cell_id", *rest]])
    rule = selection or _config_selection_rule(run_dir)
    if rule is None and "sweep" in out.columns and out["sweep"].notna().any():
        rule = DEFAULT_RULE
    if rule is not None:
        if rule not in RULES:
            raise TransferlabError(f"load_results: unknown selection rule {rule!r}; expected one of {list(RULES)}")
        out = select(out, rule)
    out.attrs["other_records"] = others
    out.attrs["seeds"] = _config_seeds(run_dir)
    out.attrs["selection"] = rule
    return out


def _config_selection_rule(run_dir: str | Path) -> str | None:
    """The rule of the run's ``selection:`` section (``run.json``'s ``config.selection.rule``), ``None`` without."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    config = info.get("config") if isinstance(info, dict) else None
    section = config.get("selection") if isinstance(config, dict) else None
    rule = section.get("rule") if isinstance(section, dict) else None
    return rule if isinstance(rule, str) else None


def _config_seeds(run_dir: str | Path) -> Any:
    """What the run's config said about ``seeds`` (``run.json``'s ``config.seeds``: an int, a list or
    ``{min, max}``), ``None`` without one; :func:`analysis.negative_transfer` reads the design from it."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    config = info.get("config") if isinstance(info, dict) else None
    return config.get("seeds") if isinstance(config, dict) else None


def _matches(record: dict[str, Any], filters: dict[str, Any]) -> bool:
    for key, wanted in filters.items():
        options = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
        if record.get(key) not in options:
            return False
    return True


def _current_records(run_dir: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``_records`` restricted to the current config's cells (all records without a ``run.json`` cell list),
    so that curves and outcomes never come from an earlier question of the folder (see :func:`load_results`)."""
    keep = current_cell_keys(run_dir)
    for cell_id, record in _records(run_dir):
        if keep is None or cell_id in keep:
            yield cell_id, record


def load_curves(run_dir: str | Path, **filters: Any) -> pd.DataFrame:
    """Training curves of the current config's records matching ``filters``, in long form.

    Parameters
    ----------
    run_dir : str or Path
    **filters
        ``key=value`` or ``key=[values]`` on top-level record fields, e.g.
        ``load_curves(run, method="dann", seed=[0, 1])``.

    Returns
    -------
    pandas.DataFrame
        Columns ``cell_id, source, target, method, seed, budget, curve, step, value``: one row per point of
        each curve. ``step`` is the record's ``curves["step"]`` (or ``curves["steps"]``) when that list has
        the curve's length, else the index in the list. Sorted like :func:`load_results`, then by
        ``curve, step``.
    """
    rows = []
    seen_keys: set[str] = set()
    for cell_id, record in _current_records(run_dir):
        seen_keys.update(record)
        if not _matches(record, filters):
            continue
        curves = record.get("curves") or {}
        steps = curves.get("step", curves.get("steps"))
        head = {"cell_id": cell_id, **{k: record.get(k) for k in ("source", "target", "method", "seed", "budget")}}
        for name, values in curves.items():
            if name in ("step", "steps") or not isinstance(values, list):
                continue
            xs = steps if isinstance(steps, list) and len(steps) == len(values) else range(len(values))
            rows.extend({**head, "curve": name, "step": x, "value": v} for x, v in zip(xs, values))
    unknown = sorted(set(filters) - seen_keys)
    if unknown:
        raise TransferlabError(f"load_curves: no record has field(s) {unknown}")
    cols = ["cell_id", "source", "target", "method", "seed", "budget", "curve", "step", "value"]
    frame = pd.DataFrame(rows, columns=cols)
    if frame.empty:
        return frame
    return _sorted(frame, extra=("curve", "step"))


def load_outcomes(run_dir: str | Path, **filters: Any) -> pd.DataFrame:
    """Per-example outcomes of the current config's finished records matching ``filters`` (see
    :mod:`adapt.outcomes`).

    Parameters
    ----------
    run_dir : str or Path
    **filters
        As in :func:`load_curves`, e.g. ``load_outcomes(run, method=["dann", "scratch"], budget=3)``.

    Returns
    -------
    pandas.DataFrame
        One row per record that has outcomes: ``cell_id, source, target, method, seed, budget, n_test,
        given_test, test_index, pred, label`` (the last three are int64 numpy arrays aligned with each other;
        ``(pred == label).mean()`` is the record's ``accuracy``). Records without outcomes (failed cells, or
        written before outcomes existed) are left out; a run with none gives an empty frame with these
        columns.
    """
    from adapt.outcomes import decode_outcomes

    rows = []
    seen_keys: set[str] = set()
    for cell_id, record in _current_records(run_dir):
        seen_keys.update(record)
        if not _matches(record, filters) or record.get("status") != "ok":
            continue
        decoded = decode_outcomes(record.get("outcomes"))
        if decoded is None:
            continue
        rows.append({"cell_id": cell_id, **{k: record.get(k) for k in ("source", "target", "method", "seed",
                                                                       "budget")},
                     "n_test": len(decoded["pred"]), **decoded})
    unknown = sorted(set(filters) - seen_keys)
    if unknown:
        raise TransferlabError(f"load_outcomes: no record has field(s) {unknown}")
    cols = ["cell_id", "source", "target", "method", "seed", "budget", "n_test", "given_test", "test_index",
            "pred", "label"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame if frame.empty else _sorted(frame)
