"""What a run folder holds, without loading any data: its ``run.json``'s expected cells against its records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapt.errors import TransferlabError
from .store import STATUS_OK, RunStore


@dataclass
class RunStatus:
    run_dir: Path
    info: dict
    expected: list[dict]
    done: list[dict]        # ok records of expected cells
    failed: list[dict]      # failed records of expected cells
    missing: list[dict]     # expected cells without a record
    extra: int              # records of cells not in run.json's config (an older config of this folder)
    unreadable: list[str]


def run_status(run_dir: str | Path) -> RunStatus:
    """Compare a run folder's records with the cells its ``run.json`` expects (no data is loaded)."""
    store = RunStore(run_dir)
    if not store.root.is_dir():
        raise TransferlabError(f"{store.root}: no such run folder")
    info = store.read_run()
    if info is None:
        raise TransferlabError(f"{store.root}: not a run folder (no {store.run_file.name}); "
                               f"'transferlab run CONFIG' creates one")
    expected = info.get("cells")
    if not isinstance(expected, list):
        raise TransferlabError(f"{store.run_file}: has no 'cells' list (not written by transferlab run?)")
    scan = store.scan()
    done, failed, missing = [], [], []
    keys = set()
    for cell in expected:
        keys.add(cell.get("key"))
        rec = scan.records.get(cell.get("key"))
        if rec is None:
            missing.append(cell)
        elif rec.get("status") == STATUS_OK:
            done.append(rec)
        else:
            failed.append(rec)
    extra = sum(1 for k in scan.records if k not in keys)
    return RunStatus(run_dir=store.root, info=info, expected=expected, done=done, failed=failed,
                     missing=missing, extra=extra, unreadable=scan.unreadable)


def status_rows(status: RunStatus) -> list[dict]:
    """Per (method, budget): expected, done, failed, missing, mean accuracy of the done cells."""
    rows: dict[tuple, dict] = {}
    for cell in status.expected:
        k = (cell.get("method"), cell.get("budget"))
        rows.setdefault(k, {"method": k[0], "budget": k[1], "expected": 0, "done": 0, "failed": 0,
                            "missing": 0, "_accs": []})
        rows[k]["expected"] += 1
    for rec in status.done:
        row = rows.get((rec.get("method"), rec.get("budget")))
        if row is not None:
            row["done"] += 1
            if rec.get("accuracy") is not None:
                row["_accs"].append(float(rec["accuracy"]))
    for rec in status.failed:
        row = rows.get((rec.get("method"), rec.get("budget")))
        if row is not None:
            row["failed"] += 1
    for cell in status.missing:
        rows[(cell.get("method"), cell.get("budget"))]["missing"] += 1
    out = []
    for row in rows.values():
        accs = row.pop("_accs")
        row["mean_accuracy"] = sum(accs) / len(accs) if accs else None
        out.append(row)
    return out
