"""The results store: one JSON record per finished cell, written atomically, read back to resume.

A run folder (``results/<name>/`` by default) holds::

    run.json            the resolved config, the expected cells, the domains' fingerprints, versions, git commit,
                        machine, invocations, and the history of the folder's earlier configs
    cells/<key>.json    one record per finished cell (``key`` = :attr:`adapt.cells.Cell.key`)
    results.parquet     the flat table of every record (an export; the records are the source of truth)

A record is plain JSON (never pickle). Fields every record has:

========================= ===================================================================================
``key``, ``compute_key``  the cell's hashes; records of cells with one ``compute_key`` hold one computation
``source``, ``target``    domain names
``method``                the label (``method_name`` is the registered method; ``method_params`` its params)
``seed``, ``budget``      seed and target labels per class
``model``, ``train``,     the cell's settings (what its ``key`` hashes)
``data``
``status``                ``"ok"`` or ``"failed"``; a failed record has a one-line ``reason``
                          (``"ExceptionType: message"``) and, for exceptions, the ``traceback``
``accuracy``              target test accuracy (``None`` when failed)
``source_accuracy``       source test accuracy (``None`` for cells that never read the source, e.g. scratch)
``wall_time``, ``device`` seconds and device of the computation
``curves``, ``params``    what the trainer reports (training curves as lists; trainable parameter count…)
``outcomes``              per test example: target index, predicted and true label (``adapt.outcomes``;
                          compact; absent in records written before it existed)
``converged``             whether every training phase ended on a plateau (``True`` for closed-form fits);
``convergence_reason``    ``None`` or why not, e.g. "phase 'target': training loss still falling (−18% …)";
``convergence``           per phase ``rel_drop, loss_falling, acc_from, acc_to, acc_climbing, converged, …``
                          (:mod:`adapt.convergence`)
``data_fingerprints``     ``{"source": ..., "target": ...}``: content hashes of the domains the cell read
                          (part of ``key``; ``run.json``'s ``fingerprints`` has every domain's)
``target_labels``         labelled target samples the budget gave (less than budget × classes only under
                          ``budget_policy: cap``)
``shared_from``           key of the cell whose computation this record reuses (``None`` if its own)
``finished_at``           UTC ISO timestamp; ``worker`` says which host/process computed it
========================= ===================================================================================

Writing is crash-safe: a record goes to a uniquely named temporary file in ``cells/`` (a dot file, never
read as a record), is flushed and fsynced, then ``os.replace``-d onto its final name, so readers see either no
record or a whole one, and two writers never clobber each other's temporary files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapt.errors import TransferlabError

RUN_FILE = "run.json"
CELLS_DIR = "cells"
PARQUET_FILE = "results.parquet"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
_TMP_SUFFIX = ".tmp"

# Column order of the flat table; any further scalar fields of the records follow.
TABLE_COLUMNS = (
    "source", "target", "method", "method_name", "seed", "budget", "status", "reason", "accuracy",
    "source_accuracy", "wall_time", "device", "key", "compute_key", "shared_from", "finished_at",
)


# ---------------------------------------------------------------------------------------------- JSON
def to_jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: numpy scalars/arrays → numbers/lists, tuples → lists, paths → strings,
    NaN/inf → ``None`` (strict JSON has no NaN), unknown objects → ``str``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist):
        return to_jsonable(tolist())
    item = getattr(obj, "item", None)
    if callable(item):
        return to_jsonable(item())
    return str(obj)


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, never a part.

    The temporary file is created next to ``path`` (same filesystem, so ``os.replace`` is atomic) with a
    unique name (``mkstemp``), so concurrent writers of one path never write into each other's file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (dumps(obj) + "\n").encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable (POSIX); not possible on every platform, hence best-effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------- store
@dataclass
class Scan:
    """What ``cells/`` holds: readable records by key, and files that are not valid records."""

    records: dict[str, dict] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def ok(self) -> dict[str, dict]:
        return {k: r for k, r in self.records.items() if r.get("status") == STATUS_OK}

    def failed(self) -> dict[str, dict]:
        return {k: r for k, r in self.records.items() if r.get("status") != STATUS_OK}


class RunStore:
    """A run folder: ``run.json``, ``cells/<key>.json`` records and the ``results.parquet`` export."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def cells_dir(self) -> Path:
        return self.root / CELLS_DIR

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def parquet_file(self) -> Path:
        return self.root / PARQUET_FILE

    def record_path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.json"

    def create(self) -> None:
        """Make the folder and ``cells/``, and prove both writable (a temporary file is created and removed),
        so an unwritable folder is one clear error before any training."""
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
            for folder in (self.root, self.cells_dir):
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=_TMP_SUFFIX)
                os.close(fd)
                os.unlink(probe)
        except OSError as err:
            raise TransferlabError(f"{self.root}: cannot write to the output folder ({err.strerror}); "
                                   f"choose another --out or fix its permissions") from None

    # ------------------------------------------------------------------ records
    def write_record(self, record: Mapping) -> Path:
        """Atomically write one record (it must carry its ``key``); replaces an older record of that key."""
        key = record.get("key")
        if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
            raise ValueError(f"a record needs a plain string 'key', got {key!r}")
        path = self.record_path(key)
        atomic_write_json(path, record)
        return path

    def weights_path(self, key: str) -> Path:
        """``cells/<key>.pt``: the cell's final weights (``train.save_models``, :mod:`adapt.saved`)."""
        from adapt.saved import weights_name

        return self.cells_dir / weights_name(key)

    def write_weights(self, key: str, data: bytes) -> str:
        """Atomically write a cell's serialised ``state_dict``; returns the file name its record names."""
        path = self.weights_path(key)
        atomic_write_bytes(path, data)
        return path.name

    def read_record(self, key: str) -> dict | None:
        try:
            return _read_json(self.record_path(key))
        except (OSError, ValueError):
            return None

    def scan(self) -> Scan:
        """Read every record in ``cells/``. Temporary files are skipped; a file that is not a valid record
        (hand-edited, or from a foreign tool) is listed in ``unreadable`` and its cell counts as not done."""
        out = Scan()
        if not self.cells_dir.is_dir():
            return out
        for path in sorted(self.cells_dir.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                rec = _read_json(path)
            except (OSError, ValueError):
                out.unreadable.append(path.name)
                continue
            if not isinstance(rec, dict) or rec.get("key") != path.stem:
                out.unreadable.append(path.name)
                continue
            out.records[path.stem] = rec
        return out

    def records(self) -> list[dict]:
        return list(self.scan().records.values())

    def clean_temporary(self, older_than_s: float = 600.0) -> int:
        """Remove temporary files left by killed writers (only old ones: a live writer may own a new one)."""
        removed = 0
        now = time.time()
        for folder in (self.root, self.cells_dir):
            if not folder.is_dir():
                continue
            for path in folder.glob(f".*{_TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > older_than_s:
                        path.unlink()
                        removed += 1
        return removed

    # ------------------------------------------------------------------ run.json
    def read_run(self) -> dict | None:
        if not self.run_file.is_file():
            return None
        try:
            info = _read_json(self.run_file)
        except (OSError, ValueError) as err:
            raise TransferlabError(f"{self.run_file}: not a readable run file ({err})") from None
        if not isinstance(info, dict):
            raise TransferlabError(f"{self.run_file}: not a run file (expected a JSON object)")
        return info

    def write_run(self, info: Mapping) -> None:
        try:
            atomic_write_json(self.run_file, info)
        except PermissionError as err:
            raise TransferlabError(f"{self.run_file}: cannot write ({err.strerror})") from None

    # ------------------------------------------------------------------ the flat table
    def table(self, records: Iterable[Mapping] | None = None):
        """The records as a flat ``pandas.DataFrame`` (one row per record; see :func:`flatten_record`)."""
        import pandas as pd

        rows = [flatten_record(r) for r in (self.records() if records is None else records)]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=list(TABLE_COLUMNS))
        first = [c for c in TABLE_COLUMNS if c in df.columns]
        df = df[first + sorted(c for c in df.columns if c not in first)]
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = _uniform_column(df[col])
        sort = [c for c in ("source", "target", "method", "budget", "seed") if c in df.columns]
        return df.sort_values(sort, kind="stable").reset_index(drop=True)

    def export_parquet(self, records: Iterable[Mapping] | None = None) -> Path:
        """Rewrite ``results.parquet`` (atomically) from the records."""
        import io

        buf = io.BytesIO()
        self.table(records).to_parquet(buf, index=False)
        atomic_write_bytes(self.parquet_file, buf.getvalue())
        return self.parquet_file


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def flatten_record(record: Mapping) -> dict:
    """One flat row of a record: nested mappings become ``a.b`` columns, lists become JSON strings, and
    the bulky fields (``curves``, ``traceback``, ``outcomes``) are left out (they stay in the record files)."""
    row: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            row[prefix] = json.dumps(to_jsonable(value))
        else:
            row[prefix] = to_jsonable(value)

    for k, v in record.items():
        if k in ("curves", "traceback", "outcomes"):
            continue
        put(str(k), v)
    return row


def _uniform_column(col):
    """Parquet columns need one type: a column mixing strings with numbers/bools becomes all strings."""
    kinds = {type(v) for v in col if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if len(kinds) <= 1 or kinds <= {int, float}:
        return col
    return col.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
