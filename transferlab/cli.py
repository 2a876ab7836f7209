"""``transferlab``: run a transfer matrix, see what a run holds, measure domain distances, build a report.

::

    transferlab run CONFIG.yaml [--out DIR] [--executor local|ray] [--workers N] [--threads T]
                                [--retry-failed] [--supersede] [--device cpu|cuda|cuda:N] [--ray-address ADDR]
                                [--gpus-per-cell G] [--cpus-per-cell C] [--progress auto|bar|log|none]
                                [--track mlflow[:URI]]
    transferlab status RUN_DIR
    transferlab distances CONFIG.yaml [--out FILE.csv] [--which proxy_a,mmd2,...] [--seed S] [--unlabelled]
    transferlab report RUN_DIR
    transferlab predict CONFIG.yaml [--out DIR] [--seeds N]
    transferlab explain RUN_DIR
    transferlab export RUN_DIR --cell KEY --out model.pt [--format torchscript|onnx]

``predict`` forecasts every pair of a config without training (:mod:`transferlab.predict`) into
``results/<name>/`` (or ``--out``); run it again after ``run`` into the same folder and it also scores the
forecast against the finished matrix. ``explain`` writes measured evidence for every ``negative`` row of a
finished run (:mod:`transferlab.explain`); ``report`` shows both when they are there.

``run`` writes ``results/<name>/`` (relative to the current folder) unless ``--out`` says otherwise, and
resumes: cells already recorded there are not run again (failed ones only with ``--retry-failed``). A config
that only adds cells (seeds, methods, budgets, domains, pairs) extends the run; one that changes what the
folder's cells mean (data, model, train settings, a method's parameters, the data's content) is refused
unless ``--supersede`` (see :mod:`transferlab.identity`). Every check runs before the folder is touched.

This module sits above both packages: it drives :mod:`adapt` (config → plan → run) and :mod:`analysis`
(distances, report); neither package imports it. ``python -m transferlab`` runs it.

Ray: ``--executor ray`` starts a local Ray instance for the run; to use a cluster, start it first
(``ray start --head`` on the head node, ``ray start --address HEAD:6379`` on the others) and pass
``--ray-address auto`` on the head node (or set ``RAY_ADDRESS``). Every node needs transferlab installed
(same version); the data need not be there: the driver loads the domains and ``ray.put``-s them once.
Each cell is one task with ``--cpus-per-cell`` CPUs (its torch thread count) and ``--gpus-per-cell`` GPUs.

Exit codes: 0 success; 1 the run finished but some cells failed; 2 bad input (config, data, arguments:
one ``transferlab: error: ...`` line, no traceback; ``--debug`` adds it); 70 an internal error (a bug: one
line, ``--debug`` for the traceback); 130 interrupted (rerun the same command to resume). Output cut short
by a closed pipe (``transferlab status DIR | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from adapt.errors import TransferlabError

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("transferlab")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        from adapt import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transferlab",
        description="Domain adaptation and negative-transfer analysis: run transfer matrices, inspect runs, "
                    "measure domain distances, build reports.",
        epilog="Start with: transferlab run configs/demo.yaml",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback behind an error message")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback behind an error message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub_parser = sub.add_parser

    def add_parser(*args, **kwargs):
        return sub_parser(*args, parents=[debug], **kwargs)

    sub.add_parser = add_parser

    run = sub.add_parser("run", help="run (or resume) the transfer matrix a config describes",
                         description="Run every cell of a config's transfer matrix, skipping cells already "
                                     "recorded in the output folder (rerunning resumes).")
    run.add_argument("config", metavar="CONFIG.yaml", help="the run config")
    run.add_argument("--out", metavar="DIR", help="output folder (default: results/<name>)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local: this machine (process pool on CPU, one cell at a time on a GPU); "
                          "ray: one Ray task per cell (default: local)")
    run.add_argument("--workers", type=_positive_int, metavar="N",
                     help="local: worker processes on CPU (default: min(cores, 2)); ray: CPUs of the local "
                          "Ray instance started for the run")
    run.add_argument("--threads", type=_positive_int, metavar="T",
                     help="local: torch threads per worker (default: cores // workers)")
    run.add_argument("--retry-failed", action="store_true",
                     help="rerun cells recorded as failed (otherwise they are kept and not rerun)")
    run.add_argument("--supersede", action="store_true",
                     help="the output folder holds a run of another question (different data, model, train "
                          "settings or method parameters): make this config its question anyway (old records "
                          "are kept in cells/ but no longer reported; run.json's history keeps the old config)")
    run.add_argument("--device", metavar="DEV", help="override the config's train.device (cpu, cuda, cuda:N)")
    run.add_argument("--ray-address", metavar="ADDR",
                     help="Ray cluster to join (e.g. 'auto' after 'ray start --head'; default: $RAY_ADDRESS, "
                          "else start a local instance)")
    run.add_argument("--gpus-per-cell", type=_non_negative_float, metavar="G",
                     help="ray: GPUs per cell, may be fractional "
                          "(default: 1 if the cluster has GPUs, else 0)")
    run.add_argument("--cpus-per-cell", type=_non_negative_float, default=1, metavar="C",
                     help="ray: CPUs per cell, also its torch thread count (default: 1)")
    run.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                     help="progress display (default: a bar on a terminal, log lines otherwise)")
    run.add_argument("--track", metavar="mlflow[:URI]",
                     help="log each new cell as one MLflow run: into RUN_DIR/mlruns, or the tracking URI after "
                          "'mlflow:' (see transferlab.tracking; needs transferlab[mlflow])")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="what a run folder holds: cells done, failed, missing",
                            description="Compare a run folder's records with the cells its run.json expects.")
    status.add_argument("run_dir", metavar="RUN_DIR")
    status.set_defaults(func=cmd_status)

    dist = sub.add_parser("distances", help="distances between every domain pair of a config (no training)",
                          description="Compute domain distances on the raw inputs (images flattened) for "
                                      "every pair of the config, print a table and write a CSV.")
    dist.add_argument("config", metavar="CONFIG.yaml")
    dist.add_argument("--out", metavar="FILE|RUN_DIR", help="CSV to write, or a folder (a run's) to write "
                      "distances.csv into, where the report reads it (default: results/<name>/distances.csv)")
    dist.add_argument("--which", metavar="NAMES",
                      help="comma-separated distance names (default: all that apply; see "
                           "analysis.distances.DISTANCES)")
    dist.add_argument("--seed", type=int, default=0, help="seed for subsampling/permutations (default: 0)")
    dist.add_argument("--unlabelled", action="store_true",
                      help="do not pass labels (skips the label-aware distances otdd and class_w2)")
    dist.set_defaults(func=cmd_distances)

    report = sub.add_parser("report", help="build the report of a run folder",
                            description="Build report.md/report.html and figures for a run folder.")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(func=cmd_report)

    predict = sub.add_parser("predict", help="forecast every pair's transfer without training",
                             description="Cheap predictors of each pair's gain (distances, transferability "
                                         "scores of a source model, trivial baselines), a ranked list of "
                                         "sources per target with a help/hurt/unsure verdict; scored against "
                                         "the matrix when the output folder holds it.")
    predict.add_argument("config", metavar="CONFIG.yaml")
    predict.add_argument("--out", metavar="DIR", help="output folder (default: results/<name>/, the run's)")
    predict.add_argument("--seeds", type=_positive_int, metavar="N",
                         help="use the first N of the config's seeds (default: all)")
    predict.set_defaults(func=cmd_predict)

    explain = sub.add_parser("explain", help="measured evidence for every negative-transfer row of a run",
                             description="For each row flagged negative: class-prior shift (BBSE), relabelling "
                                         "gap, domain classifier, per-class accuracy change vs the baseline; "
                                         "writes RUN_DIR/explanations.json for the report.")
    explain.add_argument("run_dir", metavar="RUN_DIR")
    explain.add_argument("--baseline", choices=["scratch", "target-only"], default="scratch",
                         help="the baseline the negative flags and per-class changes are measured against "
                              "(default: scratch)")
    explain.add_argument("--retrain", action="store_true",
                         help="retrain a flagged aligning cell to measure its features after adaptation when the "
                              "run kept no weights (default: no retraining; train.save_models: true keeps them)")
    explain.set_defaults(func=cmd_explain)

    export = sub.add_parser("export", help="a cell's trained network as TorchScript (or ONNX)",
                            description="Write one cell's final network (a run with train.save_models: true) as "
                                        "a module mapping a batch of inputs as the domain loader gives them to "
                                        "logits (transferlab.export).")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--cell", required=True, metavar="KEY",
                        help="the cell's record key (cells/KEY.json), or a unique prefix of it")
    export.add_argument("--out", required=True, metavar="FILE", help="file to write, e.g. model.pt")
    export.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript",
                        help="torchscript (default) or onnx (needs the onnx package)")
    export.set_defaults(func=cmd_export)
    return parser


# ---------------------------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from transferlab.config import load_config
    from transferlab.matrix import run_matrix
    from transferlab.tables import accuracy_table

    config = load_config(args.config)
    track = None
    if args.track:
        from transferlab.tracking import parse_track

        track = parse_track(args.track)
    try:
        result = run_matrix(config, args.out, executor=args.executor, workers=args.workers,
                            retry_failed=args.retry_failed, supersede=args.supersede, ray_address=args.ray_address,
                            gpus_per_cell=args.gpus_per_cell, cpus_per_cell=args.cpus_per_cell,
                            device=args.device, threads=args.threads, progress=args.progress)
    except KeyboardInterrupt:
        out = args.out or f"results/{config.name}"
        print(f"\ntransferlab: interrupted; finished cells are saved in {out}/cells — "
              f"rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED

    print()
    print(accuracy_table(result.records) if result.records else "no records")
    print()
    parts = [f"{result.computed_cells} computed now ({result.computations} computations)",
             f"{result.already_done} already done"]
    if result.reused:
        parts.append(f"{result.reused} reused from records with the same compute key")
    print(f"{result.total} cells: " + ", ".join(parts) + f"; {result.failed_total} failed; "
          f"took {result.elapsed:.1f}s")
    if result.kept_failed:
        print(f"note: {result.kept_failed} cell(s) had failed in an earlier run and were kept, not rerun; "
              f"add --retry-failed to rerun them")
    if result.failed_now:
        print(f"note: {result.failed_now} cell(s) failed in this run (see 'transferlab status "
              f"{result.run_dir}'); rerun them with --retry-failed")
    print(f"results: {result.run_dir}/ (cells/*.json, results.parquet, run.json)")
    if track is not None:
        from transferlab.tracking import log_records

        logged = log_records(result.run_dir, config.name, result.records, track)
        print(f"tracking: {logged} new cell(s) logged to MLflow experiment {config.name!r} at "
              f"{track.resolve_uri(result.run_dir)}")
    print(f"next: transferlab report {result.run_dir}")
    return EXIT_FAILED_CELLS if result.failed_total else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from transferlab.status import run_status, status_rows
    from transferlab.tables import format_table

    st = run_status(args.run_dir)
    info = st.info
    last = (info.get("invocations") or [{}])[-1]
    git = info.get("git") or {}
    commit = (git.get("commit") or "")[:10] + (" (dirty)" if git.get("dirty") else "") if git else "-"
    print(f"run {info.get('name')!r} in {st.run_dir}")
    print(f"  config: {info.get('config_path') or '-'}")
    print(f"  last run: {last.get('started_at', '-')} → {last.get('status', '-')}"
          f" on {(info.get('machine') or {}).get('host', '-')}, commit {commit or '-'}")
    print(f"  domains: {', '.join(info.get('domains') or [])}; {len(info.get('pairs') or [])} pairs")
    history = [h for h in info.get("history") or [] if isinstance(h, dict)]
    if history:
        print(f"  history: {len(history)} earlier config(s) of this folder; the last was {history[-1].get('change')} "
              f"at {history[-1].get('until')} (run.json 'history')")
    print(f"cells: {len(st.expected)} expected — {len(st.done)} done, {len(st.failed)} failed, "
          f"{len(st.missing)} missing")
    print()
    print(format_table(status_rows(st), [("method", "method"), ("budget", "budget"), ("expected", "cells"),
                                         ("done", "done"), ("failed", "failed"), ("missing", "missing"),
                                         ("mean_accuracy", "mean acc")]))
    if st.failed:
        print()
        print("failed cells:")
        for rec in st.failed[:20]:
            print(f"  {rec.get('source')}->{rec.get('target')} {rec.get('method')} seed={rec.get('seed')} "
                  f"budget={rec.get('budget')}: {rec.get('reason')}")
        if len(st.failed) > 20:
            print(f"  ... and {len(st.failed) - 20} more")
    if st.extra:
        print(f"note: {st.extra} record(s) in cells/ belong to cells not in the current config (kept)")
    if st.unreadable:
        print(f"note: {len(st.unreadable)} file(s) in cells/ are not valid records: "
              f"{', '.join(st.unreadable[:3])}")
    config_path = info.get("config_path") or "CONFIG.yaml"
    if st.missing:
        print(f"next: transferlab run {config_path} --out {st.run_dir}   "
              f"(resumes the {len(st.missing)} missing)")
    elif st.failed:
        print(f"next: transferlab run {config_path} --out {st.run_dir} --retry-failed")
    else:
        print(f"next: transferlab report {st.run_dir}")
    return EXIT_OK


def cmd_distances(args: argparse.Namespace) -> int:
    from transferlab.config import load_config
    from transferlab.distances import DISTANCES_FILE, distance_rows, write_table
    from transferlab.plan import default_run_dir, plan_distances
    from transferlab.tables import format_table

    config = load_config(args.config)
    which = [w.strip() for w in args.which.split(",") if w.strip()] if args.which else None
    domains, pairs = plan_distances(config)
    rows = distance_rows(domains, pairs, which=which, seed=args.seed, labels=not args.unlabelled,
                         log=lambda msg: print(msg, file=sys.stderr, flush=True))
    columns = [("source", "source"), ("target", "target")] + [(k, k) for k in rows[0] if k not in
                                                                 ("source", "target")]
    print(format_table(rows, columns, float_format="{:.4g}"))
    negative = [f"{r['source']}->{r['target']}" for r in rows if r.get("mmd2", 0) < 0]
    if negative:
        print(f"mmd2 < 0 for {', '.join(negative)}: the unbiased estimate dips below 0 when the two samples are no "
              f"more different than two draws of one distribution (read it as 0; mmd_pvalue tests it)")
    # the run's folder by default (run --out puts it elsewhere: pass that folder, or a file name, as --out)
    out = Path(args.out) if args.out else default_run_dir(config) / DISTANCES_FILE
    if out.is_dir() or (args.out and args.out.endswith(("/", "\\"))):
        out = out / DISTANCES_FILE
    write_table(rows, out)
    print(f"wrote {out}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "run.json").is_file():
        raise TransferlabError(f"{run_dir}: not a run folder (no run.json); "
                               f"'transferlab run CONFIG' creates one")
    try:
        from analysis.report import build_report
    except ImportError as err:
        raise TransferlabError(f"report needs analysis.report, which cannot be imported here ({err})") \
            from None
    import json
    import time

    t0 = time.perf_counter()
    from transferlab.distances import ensure_run_distances

    print(ensure_run_distances(run_dir))  # where the data is: analysis reads distances.csv, never the data
    path = build_report(run_dir)
    took = time.perf_counter() - t0
    print(f"report: {path}")
    print(f"report: {path.with_suffix('.html')}")
    try:
        ran = _run_seconds(json.loads((run_dir / "run.json").read_text()))
    except (OSError, ValueError):
        ran = None
    share = f" ({100 * took / ran:.0f}% of the run's {ran:.0f} s)" if ran else ""
    print(f"built in {took:.1f} s{share}")
    from transferlab.tracking import read_tracking, update_verdicts

    if read_tracking(run_dir) is not None:
        print(f"tracking: verdict tags set on {update_verdicts(run_dir)} MLflow run(s)")
    return EXIT_OK


def _run_seconds(run_info: Mapping) -> float | None:
    """Wall time of the run's finished invocations (``run.json``), the yardstick for the report's own time."""
    from datetime import datetime

    total = 0.0
    for inv in run_info.get("invocations") or []:
        try:
            total += (datetime.fromisoformat(inv["finished_at"]) - datetime.fromisoformat(inv["started_at"])
                      ).total_seconds()
        except (KeyError, TypeError, ValueError):
            continue
    return total or None


def cmd_predict(args: argparse.Namespace) -> int:
    from transferlab.config import load_config
    from transferlab.plan import default_run_dir, plan_distances
    from transferlab.tables import format_table
    from transferlab.predict import predict_matrix

    config = load_config(args.config)
    domains, pairs = plan_distances(config)
    out = Path(args.out) if args.out else default_run_dir(config)
    _check_scored_run(out, config, domains)
    seeds = config.seeds[: args.seeds] if args.seeds else None
    result = predict_matrix(config, domains, pairs, out, seeds=seeds)
    table = result["table"]
    cols = [("target", "target"), ("budget", "budget"), ("rank", "rank"), ("source", "source"),
            ("predicted_gain", "predicted gain"), ("pooled_gain", "pooled gain"),
            ("target_only_acc", "target-only acc"), ("evidence", "own test"), ("verdict", "verdict")]
    print(format_table(table.to_dict("records"), cols))
    print(f"predictors took {result['seconds']['total']:.1f} s; wrote {result['predictions']}")
    checked = result.get("verdicts")
    if checked is None:
        print("verdicts: all unsure — a hurt/help verdict needs the predictor checked on measured rows of other "
              "targets (run the matrix, or part of it, then predict again)")
    else:
        print(verdict_line(checked))
    evaluation = result["evaluation_table"]
    if evaluation is not None:
        from analysis.forecast import trivial_comparison

        cols = [("predictor", "predictor"), ("kind", "kind"), ("auroc", "AUROC (negative)"),
                ("auroc_null_high", "chance ≤"), ("mean_tau_w", "mean tau_w"), ("tau_null_high", "chance ≤"),
                ("beats_trivial", "beats trivial")]
        print(format_table(evaluation.to_dict("records"), cols))
        for line in trivial_comparison(evaluation):
            print(line)
        print(f"the matrix took {result.get('matrix_seconds')} s of cell time; wrote {result['evaluation']}")
    else:
        print(f"next: transferlab run {args.config} --out {out}, then predict again to score the forecast")
    return EXIT_OK


def verdict_line(checked: dict) -> str:
    """How many hurt/help verdicts predict gave and how many of their measured rows agreed, beside the base rate."""
    parts = []
    for call, side in (("hurt", "below"), ("help", "above")):
        c = checked[call]
        right = (f"{c['right']}/{c['rows']} rows measured {side} {checked['baseline']}" if c["rows"] else
                 "no measured rows")
        parts.append(f"{c['pairs']} {call} ({right})")
    base = checked["rows_below_baseline"] / checked["rows"] if checked["rows"] else float("nan")
    return (f"verdicts: {', '.join(parts)}, {checked['unsure_pairs']} unsure; for comparison {base:.0%} of all "
            f"measured rows are below {checked['baseline']} (what always saying hurt would score)")


def _check_scored_run(out: Path, config, domains: dict) -> None:
    """``predict`` scores its forecast against a run already in ``out``: it must be this config's question on
    this data (the checks ``run`` makes before extending a folder), else the scores would describe another run."""
    import json

    from transferlab.identity import question_differences, verify_fingerprints

    info_path = out / "run.json"
    if not info_path.is_file():
        return
    try:
        info = json.loads(info_path.read_text())
    except ValueError:
        raise TransferlabError(f"{info_path}: not valid JSON; predict into a new --out") from None
    verify_fingerprints(domains, info.get("fingerprints"), str(out),
                        "the forecast would be scored against other data; predict into a new --out")
    prints = {name: d.fingerprint() for name, d in domains.items()}
    diffs = question_differences(info, config.to_dict(), prints)
    if diffs:
        raise TransferlabError(f"{out}: holds a run of another question ({', '.join(diffs[:3])}); the forecast "
                               f"would be scored against it — predict into a new --out")


def cmd_explain(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from transferlab.config import parse_config
    from transferlab.identity import verify_fingerprints
    from transferlab.plan import plan_distances
    from transferlab.explain import EXPLANATIONS_FILE, explain_run

    run_dir = Path(args.run_dir)
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise TransferlabError(f"{run_dir}: not a run folder (no run.json); 'transferlab run CONFIG' creates one")
    info = json.loads(info_path.read_text())
    config = parse_config(dict(info.get("config") or {}), source=f"{info_path} (config)")
    if info.get("config_path"):   # relative data paths resolve against the config's folder
        config = dataclasses.replace(config, path=Path(info["config_path"]))
    domains, _ = plan_distances(config)
    verify_fingerprints(domains, info.get("fingerprints"), str(run_dir),
                        "explanations would describe other data than the records")
    import time

    t0 = time.perf_counter()
    entries = explain_run(run_dir, config, domains, baseline=args.baseline, retrain=args.retrain)
    took = time.perf_counter() - t0
    for e in entries:
        print(f"{e['source']} -> {e['target']}, {e['method']}, budget {e['budget']}: {e['reading']}")
    ran = _run_seconds(info)
    share = f" ({100 * took / ran:.0f}% of the run's {ran:.0f} s)" if ran else ""
    print(f"{len(entries)} negative row(s) explained in {took:.1f} s{share}; wrote {run_dir / EXPLANATIONS_FILE}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from transferlab.export import export_model

    path = export_model(args.run_dir, args.cell, args.out, args.format)
    print(f"wrote {path} ({args.format}): loader-format inputs -> logits")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- entry
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``transferlab`` console script; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments and 0 on --help/--version
        return int(exc.code or 0)
    debug = getattr(args, "debug", False)
    try:
        return args.func(args)
    except TransferlabError as err:
        if debug:
            traceback.print_exc()
        print(f"transferlab: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ntransferlab: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly; point stdout at devnull so that the interpreter's
        # final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as err:  # noqa: BLE001 - a bug, not bad input: one line unless --debug
        if debug:
            traceback.print_exc()
        first = " ".join(str(err).split())[:300]
        print(f"transferlab: internal error: {type(err).__name__}: {first} (rerun with --debug for the "
              f"traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
