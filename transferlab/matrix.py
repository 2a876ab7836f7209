"""The transfer matrix: config → plan (pre-flight, identity) → executor → records (resumable).

:func:`run_matrix` plans the config (:mod:`transferlab.plan`: domains loaded and fingerprinted, every checkable
problem refused before training), checks that the run folder asks the same question
(:mod:`transferlab.identity`), skips cells whose record is already there, groups the rest by ``compute_key`` (cells
with equal results are computed once), runs one cell per group on an executor (:mod:`transferlab.executors`), and
writes one record per cell as results arrive. Rerunning the same command resumes; a config that only adds
cells extends the run. Nothing is written to the run folder before every check has passed.

The pieces live in small modules — :mod:`transferlab.plan`, :mod:`transferlab.preflight`,
:mod:`transferlab.identity`, :mod:`transferlab.progress`, :mod:`transferlab.runinfo`, :mod:`transferlab.status`,
:mod:`transferlab.tables`; import their names from there.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapt.cells import Cell
from .config import Config
from adapt.errors import TransferlabError
from .executors import EXECUTORS, LocalExecutor, RayExecutor, resolve_device
from .identity import check_same_question
from .plan import Plan, default_run_dir, plan_matrix
from .progress import Progress
from adapt.saved import WEIGHTS_FIELD
from .runinfo import now, start_run_info
from .store import STATUS_OK, RunStore, to_jsonable


def cell_record(cell: Cell, result: Mapping, shared_from: str | None = None) -> dict:
    """The record of ``cell`` from a computation's ``result`` (which may be another cell's, see
    ``compute_key``): the cell's identity and settings always win over what the result says."""
    record = {k: v for k, v in result.items() if k not in _IDENTITY}
    if cell.compute_key != cell.key:
        # The computation never read this cell's source, so a source accuracy would describe another domain.
        record["source_accuracy"] = None
    record.setdefault("status", STATUS_OK)
    record.setdefault("reason", None)
    record.setdefault("accuracy", None)
    record.setdefault("source_accuracy", None)
    record.setdefault("wall_time", None)
    record.setdefault("device", None)
    record.setdefault("curves", {})
    record.setdefault("params", dict(cell.method_params))
    return {
        "key": cell.key,
        "compute_key": cell.compute_key,
        "source": cell.source,
        "target": cell.target,
        "method": cell.method,
        "method_name": cell.method_name,
        "seed": cell.seed,
        "budget": cell.budget,
        **record,
        "method_params": dict(cell.method_params),
        "model": dict(cell.model),
        "train": dict(cell.train),
        "data": dict(cell.data),
        "data_fingerprints": {"source": cell.source_fingerprint or None, "target": cell.target_fingerprint or None},
        "target_labels": cell.target_labels,
        **({"code": dict(cell.code)} if cell.code else {}),  # plugin code identity (adapt.plugins)
        # a sweep's configuration (analysis.selection groups by ``sweep`` and marks the chosen one)
        **({"sweep": cell.sweep, "grid": dict(cell.grid), "grid_index": cell.grid_index} if cell.sweep else {}),
        **({"selection_protocol": dict(cell.selection)} if cell.selection else {}),
        "shared_from": shared_from,
        "finished_at": result.get("finished_at") or now(),
    }


_IDENTITY = {"key", "compute_key", "source", "target", "method", "method_name", "seed", "budget",
             "method_params", "model", "train", "data", "data_fingerprints", "target_labels", "code", "shared_from",
             "finished_at", "sweep", "grid", "grid_index", "selection_protocol"}


@dataclass
class RunResult:
    """What one ``run_matrix`` call did, and the records of the config's cells afterwards."""

    run_dir: Path
    total: int
    already_done: int          # ok records found and kept
    kept_failed: int           # failed records found and kept (not rerun without retry_failed)
    reused: int                # cells filled from an existing record with the same compute_key
    computed_cells: int        # cells whose record this call computed (ok or failed)
    computations: int          # run_cell calls (a compute_key group counts once)
    failed_now: int            # cells this call computed that failed
    elapsed: float
    records: list[dict] = field(default_factory=list)
    executor: dict = field(default_factory=dict)

    @property
    def failed_total(self) -> int:
        return sum(1 for r in self.records if r.get("status") != STATUS_OK)


def run_matrix(
    config: Config,
    out_dir: str | Path | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    retry_failed: bool = False,
    ray_address: str | None = None,
    gpus_per_cell: float | None = None,
    cpus_per_cell: float = 1,
    device: str | None = None,
    threads: int | None = None,
    progress: str = "auto",
    log: Callable[[str], None] | None = None,
    plan: Plan | None = None,
    supersede: bool = False,
) -> RunResult:
    """Run (or resume, or extend) a config's transfer matrix into ``out_dir`` (default ``results/<name>``).

    Every check — config, data, pre-flight, the folder's question (:mod:`transferlab.identity`; ``supersede``
    replaces it instead of refusing) — happens before anything is written to the folder.
    """
    if executor not in EXECUTORS:
        raise TransferlabError(f"unknown executor {executor!r}; expected one of {list(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise TransferlabError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise TransferlabError(f"--threads must be >= 1, got {threads}")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    plan = plan or plan_matrix(config)
    import adapt.train  # noqa: F401 - fail here, not once per cell, when the trainer cannot be imported

    store = RunStore(out_dir if out_dir is not None else default_run_dir(config))
    previous = store.read_run() if store.run_file.is_file() else None
    superseded = check_same_question(store.root, previous, config.to_dict(), plan.fingerprints, supersede)
    if previous and "fingerprints" not in previous:
        log(f"note: {store.root} was written by an older transferlab (no data fingerprints): its records cannot "
            f"be tied to the data, so they are kept but neither reused nor reported")

    resolved_device = resolve_device(config.train.get("device"), device)
    if executor == "local" and resolved_device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            where = "--device" if device else "config field 'train.device'"
            raise TransferlabError(f"{where} asks for {resolved_device}, but this machine has no CUDA device "
                                   f"(use cpu or auto)")

    store.create()
    store.clean_temporary()
    scan = store.scan()
    if scan.unreadable:
        log(f"warning: {len(scan.unreadable)} file(s) in {store.cells_dir} are not valid records and are "
            f"ignored (their cells run again): {', '.join(scan.unreadable[:3])}")

    cells = plan.cells
    existing = scan.records
    ok_by_compute: dict[str, dict] = {}
    for rec in existing.values():
        if rec.get("status") == STATUS_OK and isinstance(rec.get("compute_key"), str):
            ok_by_compute.setdefault(rec["compute_key"], rec)

    already_done = kept_failed = reused = 0
    todo: list[Cell] = []
    for cell in cells:
        rec = existing.get(cell.key)
        if rec is not None and rec.get("status") == STATUS_OK and _lacks_weights(cell, rec, store):
            todo.append(cell)  # save_models asks for weights this cell was finished without: train it again
        elif rec is not None and rec.get("status") == STATUS_OK:
            already_done += 1
        elif rec is not None and not retry_failed:
            kept_failed += 1
        elif cell.compute_key in ok_by_compute:
            source_rec = ok_by_compute[cell.compute_key]
            record = cell_record(cell, source_rec, shared_from=source_rec.get("shared_from") or source_rec["key"])
            if source_rec.get("weights") and store.weights_path(source_rec["key"]).is_file():
                record["weights"] = store.write_weights(cell.key, store.weights_path(source_rec["key"]).read_bytes())
            store.write_record(record)
            reused += 1
        else:
            todo.append(cell)
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in todo:
        groups[cell.compute_key].append(cell)

    if executor == "ray":
        ex = RayExecutor(plan.domains, address=ray_address, workers=workers, cpus_per_cell=cpus_per_cell,
                         gpus_per_cell=gpus_per_cell, config_device=config.train.get("device", "auto"),
                         device_override=device)
    else:
        if workers and workers > 1 and resolved_device.startswith("cuda"):
            log(f"note: device {resolved_device}: the local executor runs one cell at a time on a GPU "
                f"(--workers {workers} ignored; use --executor ray to spread cells over GPUs)")
        ex = LocalExecutor(plan.domains, config.data, config.base_dir, workers=workers,
                           device=resolved_device, device_override=device, threads=threads)

    run_info = start_run_info(previous, config, plan, ex, retry_failed, superseded)
    store.write_run(run_info)
    invocation = run_info["invocations"][-1]

    n_reps = len(groups)
    n_cells_todo = len(todo)
    if todo:
        log(f"{config.name}: {len(cells)} cells — {already_done} already done"
            + (f", {kept_failed} failed kept" if kept_failed else "")
            + (f", {reused} reused" if reused else "")
            + f", {n_cells_todo} to run ({n_reps} computations) with {_describe(ex)} → {store.root}")
    counters = {"computed_cells": 0, "computations": 0, "failed_now": 0}
    progress_bar = Progress(len(cells), already_done + reused, kept_failed, mode=progress) if todo else None

    def on_result(rep: Cell, result: dict) -> None:
        members = groups[rep.compute_key]
        result = dict(result)
        weights = result.pop(WEIGHTS_FIELD, None)
        result.setdefault("finished_at", now())
        first = None
        for cell in [rep] + [c for c in members if c.key != rep.key]:
            shared_from = None if cell.key == rep.key else rep.key
            record = cell_record(cell, result, shared_from=shared_from)
            if weights is not None:  # the weights first: a record that names a file always has it
                record["weights"] = store.write_weights(cell.key, weights)
            store.write_record(record)
            first = first or record
        counters["computations"] += 1
        counters["computed_cells"] += len(members)
        if first["status"] != STATUS_OK:
            counters["failed_now"] += len(members)
        if progress_bar is not None:
            progress_bar.update(members, first)

    status = "interrupted"
    try:
        ex.run([members[0] for members in groups.values()], on_result)
        status = "finished"
    finally:
        if progress_bar is not None:
            progress_bar.close()
        invocation.update(status=status, finished_at=now(), executor=to_jsonable(ex.describe()), **counters)
        run_info["updated_at"] = invocation["finished_at"]
        store.write_run(run_info)
        final = store.scan().records
        records = [final[c.key] for c in cells if c.key in final]
        try:
            store.export_parquet(final.values())
        except Exception as exc:  # noqa: BLE001 - the export must not hide the run's own outcome
            log(f"warning: could not write {store.parquet_file}: {exc}")

    return RunResult(run_dir=store.root, total=len(cells), already_done=already_done, kept_failed=kept_failed,
                     reused=reused, elapsed=time.monotonic() - t0, records=records,
                     executor=ex.describe(), **counters)


def _lacks_weights(cell: Cell, record: Mapping, store: RunStore) -> bool:
    """``train.save_models`` is on, and the finished record has no weights decision (it was run without it)
    or names a weights file that is gone."""
    if not (cell.train or {}).get("save_models"):
        return False
    if "weights" not in record:
        return True
    return bool(record["weights"]) and not store.weights_path(cell.key).is_file()


def _describe(ex) -> str:
    info = ex.describe()
    if info["executor"] == "local":
        if info["workers"] == 1:
            return f"local executor (in-process, {info['device']})"
        return f"local executor ({info['workers']} worker processes × {info['threads_per_worker']} threads)"
    return f"ray executor ({info.get('address') or 'local instance'})"
