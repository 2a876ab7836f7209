"""Domain distances where the data is: computed from the config's domains and stored in the run folder as
``distances.csv``, which ``analysis.report`` reads (analysis never loads data through ``adapt``/``transferlab``).

Two entry points: ``transferlab distances CONFIG [--out FILE|RUN_DIR]`` (:func:`distance_rows` on the config's
pairs) and ``transferlab report RUN_DIR``, which fills a missing ``distances.csv`` from the run's own recorded
config (:func:`ensure_run_distances`: the run's data, checked against its fingerprints) before it builds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

DISTANCES_FILE = "distances.csv"


def distance_rows(domains: Mapping, pairs: Sequence[tuple[str, str]], which: Sequence[str] | None = None,
                  seed: int = 0, labels: bool = True, log=None) -> list[dict]:
    """One row ``{source, target, <distance>: value}`` per pair, on the inputs as the config loads them (after
    its preprocessing; images flattened). Text domains have no input-space distance: a one-line error."""
    from analysis.distances import domain_distances

    rows = []
    for source, target in pairs:
        s, t = domains[source], domains[target]
        for dom in (s, t):
            if dom.kind == "text":
                raise TransferlabError(f"domain {dom.name!r} holds text; distances need vector or image "
                                       f"inputs (encode it first)")
        xs = np.asarray(s.X, dtype=np.float64).reshape(len(s.X), -1)
        xt = np.asarray(t.X, dtype=np.float64).reshape(len(t.X), -1)
        if log is not None:
            log(f"{source} -> {target} ...")
        given = {"ys": s.y, "yt": t.y} if labels else {}
        values = domain_distances(xs, xt, which=list(which) if which is not None else None, seed=seed, **given)
        rows.append({"source": source, "target": target, **{k: float(v) for k, v in values.items()}})
    return rows


def write_table(rows: list[dict], path: Path) -> None:
    from transferlab.store import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, pd.DataFrame(rows).to_csv(index=False).encode())
    except OSError as err:
        raise TransferlabError(f"{path}: cannot write ({err.strerror})") from None


def covers(path: Path, pairs: Sequence[tuple[str, str]]) -> bool:
    """Whether ``path`` is a readable distance table holding every pair."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError):
        return False
    if not {"source", "target"} <= set(table.columns):
        return False
    return set(map(tuple, pairs)) <= set(zip(table["source"].astype(str), table["target"].astype(str)))


def ensure_run_distances(run_dir: str | Path, which: Sequence[str] | None = None) -> str:
    """Make sure ``run_dir/distances.csv`` covers the run's pairs, computing it from the run's recorded config
    when it does not; returns a sentence saying what happened (never raises for data it cannot load: a report
    without distances is still a report)."""
    run_dir = Path(run_dir)
    path = run_dir / DISTANCES_FILE
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"distances: not computed ({run_dir / 'run.json'} unreadable: {err})"
    pairs = [tuple(p) for p in info.get("pairs") or [] if len(p) == 2 and p[0] != p[1]]
    if not pairs:
        return "distances: not computed (run.json lists no pairs)"
    if covers(path, pairs):
        return f"distances: read {path}"
    try:
        from analysis.report import REPORT_DISTANCES

        domains = run_domains(info, run_dir)
        rows = distance_rows(domains, pairs, which=which or REPORT_DISTANCES)
    except Exception as err:  # noqa: BLE001 - said in one line, and the report goes on without them
        return f"distances: not computed ({type(err).__name__}: {err})"
    write_table(rows, path)
    return f"distances: computed on the run's data and wrote {path}"


def run_domains(run_info: Mapping, run_dir: Path) -> dict:
    """The run's domains from its recorded config (the config's folder, the working directory or the run folder
    resolves a relative data path), checked against the fingerprints the run recorded."""
    from adapt.domains import load_domains
    from transferlab.config import parse_config
    from transferlab.identity import verify_fingerprints

    raw = run_info.get("config")
    if not isinstance(raw, Mapping):
        raise TransferlabError("run.json holds no config")
    cfg = parse_config(dict(raw), source=f"{run_dir / 'run.json'} (config)")
    candidates = [Path(run_info["config_path"]).parent] if run_info.get("config_path") else []
    candidates += [Path.cwd(), run_dir]
    last: Exception | None = None
    for base in candidates:
        try:
            domains = load_domains(cfg.data, base)
        except TransferlabError as err:  # a relative data path that does not resolve from here
            last = err
            continue
        verify_fingerprints(domains, run_info.get("fingerprints"), str(run_dir),
                            "distances would describe other data than the records")
        return domains
    raise last if last is not None else TransferlabError("no folder to resolve the data path from")
