"""Experiment tracking: every cell of a run as one MLflow run (``transferlab run CONFIG --track mlflow``).

``--track mlflow`` logs into ``RUN_DIR/mlruns``, a local MLflow file store; ``--track mlflow:URI`` into any
tracking URI MLflow accepts (``http://host:5000``, ``sqlite:///runs.db`` — a database store needs the full
``mlflow`` package, the ``transferlab[mlflow]`` extra installs ``mlflow-skinny``, which writes file stores and
talks to servers). The experiment is named after the config (``name:``). Per cell:

- params: the cell's key fields — ``source, target, method, method_name, seed, budget``, ``method_params.*``,
  ``model.*``, ``train.*``, ``data.*`` and the domains' content fingerprints — plus ``key`` (the record file);
- metrics: ``accuracy`` and ``source_accuracy``, and every training curve of the record (``loss_cls``,
  ``loss_domain``, ``lr``, ``target_labelled_acc``…) at its steps;
- tags: ``transferlab.key``, ``status`` (and ``reason``), and once ``transferlab report`` has a verdict for the
  cell's row, ``verdict`` (the negative-transfer flag against ``scratch``: negative, positive, inconclusive,
  unconverged, no-baseline; at budget 0 the flag against ``finetune``), ``verdict_gain`` and
  ``verdict_q_value``.

Logging is idempotent by cell key: a resumed or extended run logs only cells that have no MLflow run yet in
the experiment, so rerunning never duplicates. ``RUN_DIR/tracking.json`` remembers the URI and experiment so
that ``transferlab report RUN_DIR`` can update the verdict tags.

MLflow 3 keeps its file store in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``;
for the store transferlab writes that is set for this process (the file store is what the issue asked for:
no database, nothing to serve). Open it with ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri
RUN_DIR/mlruns`` (the UI is in the full ``mlflow`` package).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from adapt.errors import TransferlabError

TRACKING_FILE = "tracking.json"
KEY_TAG = "transferlab.key"
MLFLOW_PIN = "mlflow-skinny==3.17.2"
# Per MLflow's log_batch limits (1000 metrics, 100 params per call).
_METRIC_BATCH, _PARAM_BATCH = 1000, 100
_PARAM_VALUE_MAX = 6000


@dataclass(frozen=True)
class TrackSpec:
    """Where to log: ``kind`` (only ``mlflow``) and ``uri`` (``None``: ``RUN_DIR/mlruns``)."""

    kind: str
    uri: str | None = None

    def resolve_uri(self, run_dir: Path) -> str:
        return self.uri or (Path(run_dir).resolve() / "mlruns").as_uri()


def parse_track(text: str) -> TrackSpec:
    """``mlflow`` or ``mlflow:URI`` (``--track``); anything else is a ``TransferlabError``."""
    kind, colon, uri = text.partition(":")
    if kind != "mlflow":
        raise TransferlabError(f"--track: expected 'mlflow' or 'mlflow:URI', got {text!r}")
    if colon and not uri:
        raise TransferlabError("--track mlflow:URI: the URI after 'mlflow:' is empty")
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:  # refused before the run, not after it
        raise TransferlabError(f"--track mlflow needs MLflow: pip install 'transferlab[mlflow]' (or {MLFLOW_PIN})")
    return TrackSpec("mlflow", uri or None)


def _client(uri: str):
    if uri.startswith("file:") or "://" not in uri:
        # our own local store (see the module docstring): MLflow 3 refuses file stores without this opt-in
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TransferlabError(f"--track mlflow needs MLflow: pip install 'transferlab[mlflow]' "
                               f"(or {MLFLOW_PIN})") from None
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage != "active":
            raise TransferlabError(f"MLflow experiment {name!r} is deleted; restore it or use another URI")
        return exp.experiment_id
    return client.create_experiment(name)


def logged_keys(client, experiment_id: str) -> set[str]:
    """Cell keys that already have an MLflow run in the experiment."""
    keys: set[str] = set()
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        keys.update(r.data.tags[KEY_TAG] for r in page if KEY_TAG in r.data.tags)
        token = page.token
        if not token:
            return keys


def _flat(value, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
        return
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    out[prefix] = text[:_PARAM_VALUE_MAX]


def cell_params(record: Mapping) -> dict[str, str]:
    """The record's key fields, flattened to MLflow params (``train.steps``, ``method_params.trade_off``…)."""
    out: dict[str, str] = {}
    for name in ("key", "source", "target", "method", "method_name", "seed", "budget"):
        _flat(record.get(name), name, out)
    for section in ("method_params", "model", "train", "data", "data_fingerprints", "code"):
        if record.get(section):
            _flat(record[section], section, out)
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def cell_metrics(record: Mapping) -> list[tuple[str, float, int]]:
    """``(name, value, step)`` for the accuracies (at the last step) and every curve point of the record."""
    curves = record.get("curves") or {}
    steps = curves.get("step") or []
    last = int(record.get("steps") or (steps[-1] if steps else 0))
    out = [(name, float(record[name]), last) for name in ("accuracy", "source_accuracy") if _finite(record.get(name))]
    for name, values in curves.items():
        if name == "step" or not isinstance(values, list):
            continue
        out.extend((name, float(v), int(s)) for s, v in zip(steps, values) if _finite(v))
    return out


def _millis(stamp) -> int | None:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def log_records(run_dir: str | Path, experiment: str, records: Iterable[Mapping], spec: TrackSpec) -> int:
    """Log each record without an MLflow run yet (by ``key``) as one run; returns how many were logged.

    Writes ``RUN_DIR/tracking.json`` (URI and experiment) for :func:`update_verdicts`.
    """
    from mlflow.entities import Metric, Param, RunStatus

    run_dir = Path(run_dir)
    uri = spec.resolve_uri(run_dir)
    client = _client(uri)
    exp_id = _experiment_id(client, experiment)
    done = logged_keys(client, exp_id)
    logged = 0
    for rec in records:
        key = rec.get("key")
        if not key or key in done:
            continue
        when = _millis(rec.get("finished_at"))
        wall = rec.get("wall_time")
        start = when - int(1000 * wall) if when is not None and _finite(wall) else when
        tags = {KEY_TAG: key, "status": str(rec.get("status")), "mlflow.runName": _run_name(rec)}
        if rec.get("reason"):
            tags["reason"] = str(rec["reason"])[:5000]
        run = client.create_run(exp_id, start_time=start, tags=tags, run_name=_run_name(rec))
        rid = run.info.run_id
        params = [Param(k, v) for k, v in cell_params(rec).items()]
        stamp = when or 0
        metrics = [Metric(n, v, stamp, s) for n, v, s in cell_metrics(rec)]
        for i in range(0, len(params), _PARAM_BATCH):
            client.log_batch(rid, params=params[i:i + _PARAM_BATCH])
        for i in range(0, len(metrics), _METRIC_BATCH):
            client.log_batch(rid, metrics=metrics[i:i + _METRIC_BATCH])
        status = RunStatus.to_string(RunStatus.FINISHED if rec.get("status") == "ok" else RunStatus.FAILED)
        client.set_terminated(rid, status=status, end_time=when)
        done.add(key)
        logged += 1
    (run_dir / TRACKING_FILE).write_text(json.dumps({"kind": spec.kind, "uri": uri, "experiment": experiment},
                                                    indent=2) + "\n")
    return logged


def _run_name(rec: Mapping) -> str:
    return f"{rec.get('source')}->{rec.get('target')} {rec.get('method')} budget={rec.get('budget')} " \
           f"seed={rec.get('seed')}"


def read_tracking(run_dir: str | Path) -> dict | None:
    """``RUN_DIR/tracking.json`` (where the run was tracked), or ``None``."""
    path = Path(run_dir) / TRACKING_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except ValueError:
        raise TransferlabError(f"{path}: not valid JSON; delete it or rerun with --track") from None
    if not isinstance(info, Mapping) or not {"uri", "experiment"} <= set(info):
        raise TransferlabError(f"{path}: expected {{kind, uri, experiment}}; delete it or rerun with --track")
    return dict(info)


def row_verdicts(run_dir: str | Path, alpha: float = 0.05) -> dict[tuple, dict]:
    """``(source, target, method, budget) -> {verdict, gain, q_value}``: the report's flags (its calls, its
    alpha): :func:`analysis.negative_transfer` against scratch at budgets > 0, :func:`analysis.budget_zero`
    against finetune at budget 0."""
    import warnings

    from analysis import negative
    from analysis.results import load_outcomes, load_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_results(run_dir)
        try:
            outcomes = load_outcomes(run_dir)
        except TransferlabError:
            outcomes = None
        tables = []
        if (df["method"] == "scratch").any():
            tables.append(negative.negative_transfer(df, alpha=alpha, outcomes=outcomes))
        if (df["budget"] == 0).any() and (df["method"] == "finetune").any():
            tables.append(negative.budget_zero(df, alpha=alpha, outcomes=outcomes))
    out: dict[tuple, dict] = {}
    for table in tables:
        for row in table.to_dict("records"):
            key = (row["source"], row["target"], row["method"], int(row["budget"]))
            out[key] = {"verdict": str(row.get("flag")), "gain": row.get("gain"), "q_value": row.get("q_value")}
    return out


def update_verdicts(run_dir: str | Path, alpha: float = 0.05) -> int | None:
    """Tag every tracked cell run with its row's verdict; ``None`` when the run was not tracked. Returns the
    number of runs tagged."""
    from mlflow.entities import RunTag

    info = read_tracking(run_dir)
    if info is None:
        return None
    client = _client(info["uri"])
    exp = client.get_experiment_by_name(info["experiment"])
    if exp is None:
        return 0
    verdicts = row_verdicts(run_dir, alpha)
    tagged = 0
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        for run in page:
            p = run.data.params
            try:
                row = (p["source"], p["target"], p["method"], int(p["budget"]))
            except (KeyError, ValueError):
                continue
            v = verdicts.get(row)
            if v is None:
                continue
            tags = [RunTag("verdict", v["verdict"])]
            tags += [RunTag(f"verdict_{k}", f"{v[k]:.6g}") for k in ("gain", "q_value") if _finite(v.get(k))]
            client.log_batch(run.info.run_id, tags=tags)
            tagged += 1
        token = page.token
        if not token:
            return tagged
